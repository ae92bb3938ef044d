"""A URL that carries a password: shown everywhere with the password as `***`."""

from __future__ import annotations

from typing import Any

from pydantic import GetCoreSchemaHandler, SecretStr
from pydantic_core import CoreSchema, core_schema


class SecretUrl(SecretStr):
    """A database URL whose password never shows: str(), repr() and JSON (a settings
    dump, a Prefect flow run's recorded parameters) give it with the password masked;
    get_secret_value() gives the real URL, for the code that connects."""

    def _display(self) -> str:
        from sqlalchemy.engine import make_url  # lazy: settings load before SQLAlchemy
        from sqlalchemy.exc import ArgumentError

        try:
            return make_url(self.get_secret_value()).render_as_string(hide_password=True)
        except ArgumentError:
            return "**********"  # not a URL: nothing of it is shown

    @classmethod
    def __get_pydantic_core_schema__(cls, source: type[Any],
                                     handler: GetCoreSchemaHandler) -> CoreSchema:
        """Validated from a string or a SecretUrl; dumped as itself, or in JSON as the
        masked URL (SecretStr's own JSON is all stars, hiding which database)."""
        from_text = core_schema.no_info_after_validator_function(cls, core_schema.str_schema())
        return core_schema.json_or_python_schema(
            json_schema=from_text,
            python_schema=core_schema.union_schema(
                [core_schema.is_instance_schema(cls), from_text],
                custom_error_type="string_type"),
            serialization=core_schema.plain_serializer_function_ser_schema(
                _shown, info_arg=True, when_used="unless-none"))


def _shown(value: SecretUrl, info: core_schema.SerializationInfo) -> str | SecretUrl:
    return str(value) if info.mode == "json" else value
