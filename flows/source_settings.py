"""Where records come from: a CSV export or a store's SOAP API."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from magsync.load.layout import check_store_name

TAB_NAMES = {"tab": "\t", "\\t": "\t"}  # a tab is hard to type on a command line


class SourceSettings(BaseModel):
    """Where records come from."""

    kind: Literal["csv", "soap"] = "csv"
    name: str = Field("default",
                      description="store name: several stores can share one target")
    input: Path | None = None  # CSV file or folder
    encoding: str | None = Field(None, description="encoding of CSV files without a byte "
                                 "order mark, e.g. cp1252 (default UTF-8)")
    delimiter: str = Field(",", description="CSV field delimiter: one character, or 'tab'")
    url: str | None = None  # SOAP store base URL
    # SOAP dialect: v1 (/api/soap/), v2 or wsi (/api/v2_soap/), auto: v2 or wsi, as the
    # v2 WSDL says
    api: Literal["v1", "v2", "wsi", "auto"] = "v1"
    api_user: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None  # name of the environment variable holding the key
    api_key_block: str | None = None  # name of a Prefect Secret block holding the key
    ca_bundle: Path | None = None
    basic_auth_user: str | None = None
    basic_auth_password: SecretStr | None = None
    timeout_s: float = 60.0
    retries: int = 4
    backoff_base_s: float = 1.0
    window: int = Field(500, ge=1, description="customer ids per customer.list window")
    multicall_size: int = Field(50, ge=1)
    # 4: what a real store bore in the issue 7 measurement (839 customers/s)
    concurrency: int = Field(4, ge=1, le=16)
    lookback_s: int = Field(300, ge=0)
    max_id_gap: int | None = Field(None, ge=1, description="customer ids probed past the "
                                   "highest one seen before a full scan ends (default "
                                   "100 windows)")

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: str) -> str:
        return check_store_name(value)  # it names the store's partition of the output

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            return codecs.lookup(value).name  # 'windows-1252' -> 'cp1252'
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        value = TAB_NAMES.get(value.lower(), value)
        if len(value) != 1 or not value.isascii() or value in '"\r\n':
            raise ValueError(f"a delimiter is one ASCII character other than a quote or a "
                             f"line break (or 'tab'), not {value!r}")
        return value
