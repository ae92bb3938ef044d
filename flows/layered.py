"""Settings in layers: CLI arguments over MAGSYNC_* environment over a TOML file over
defaults; the base of the sync's and the migration's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

T = TypeVar("T", bound="LayeredSettings")


class LayeredSettings(BaseSettings):
    """Base of every settings object: CLI (init) over environment over TOML over defaults."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """CLI (init) over environment over the TOML file over defaults."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_layered(cls: type[T], config_file: Path | None, **overrides: Any) -> T:
    """An instance of `cls` from its layers, reading `config_file` instead of the default
    TOML file when one is given."""
    if config_file is None:
        return cls(**overrides)
    from_file = type(f"{cls.__name__}FromFile", (cls,),
                     {"model_config": SettingsConfigDict(toml_file=config_file)})
    return from_file(**overrides)  # type: ignore[no-any-return]
