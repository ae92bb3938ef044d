"""The exports' settings: the PII policy of the analysts' Parquet files (transform/pii.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from magsync.transform.pii import PiiPolicy, rule_error

PII_KEY_MIN = 16  # characters: an HMAC key shorter than this is guessable


class ExportSettings(BaseModel):
    """What the exports (current and history) hold of each column; never the SQL target."""

    # entity -> column -> rule; unnamed columns are kept ('record_key': keep or hash)
    pii: dict[str, dict[str, Literal["keep", "hash", "mask", "drop"]]] = {}
    pii_key: SecretStr | None = Field(None, description="HMAC key of the hashed columns "
                                      "(MAGSYNC_EXPORTS__PII_KEY); changing it rewrites them")

    @model_validator(mode="after")
    def _known_and_keyed(self) -> ExportSettings:
        for entity, columns in self.pii.items():
            for column, rule in columns.items():
                error = rule_error(entity, column, rule)
                if error:
                    raise ValueError(f"exports.pii: {error}")
        hashed = sorted(f"{e}.{c}" for e, cols in self.pii.items()
                        for c, r in cols.items() if r == "hash")
        key = self.pii_key.get_secret_value() if self.pii_key else ""
        if hashed and not key:
            raise ValueError(f"exports.pii hashes {', '.join(hashed)}: set "
                             "MAGSYNC_EXPORTS__PII_KEY (exports.pii_key)")
        if key and len(key) < PII_KEY_MIN:
            raise ValueError(f"exports.pii_key: at least {PII_KEY_MIN} characters")
        return self

    def policy(self) -> PiiPolicy:
        """The policy the exports apply."""
        key = self.pii_key.get_secret_value().encode() if self.pii_key else None
        return PiiPolicy(self.pii, key or None)
