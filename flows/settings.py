"""One typed settings object: defaults < magsync.toml < MAGSYNC_* environment < CLI."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from magsync.flows.export_settings import ExportSettings
from magsync.flows.layered import LayeredSettings, load_layered
from magsync.flows.secret_url import SecretUrl
from magsync.load.layout import check_store_name, is_url

CONFIG_FILE = Path("magsync.toml")
REMOTE_COPIES = Path("data/out/remote")  # local working copies of remote outputs
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


class LimitSettings(BaseModel):
    """Prefect global concurrency limits a tracked sync takes (set by `magsync deploy`)."""

    target: str | None = None  # held while writing to the target (merge and export)
    store: str | None = None  # held for the whole run: one run per store host


class RemoteSettings(BaseModel):
    """Where the output is published beyond this machine (load/remote.py). Credentials
    never live here: the file system reads its own (for S3: AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role)."""

    url: str | None = Field(None, description="fsspec URL of the output, e.g. "
                            "s3://bucket/prefix; output_dir is then its local working copy")
    endpoint_url: str | None = Field(None, description="an S3-compatible server (default: "
                                     "AWS_ENDPOINT_URL, else AWS)")
    # where output_dir = "<url>" keeps its working copy: <local_dir>/<scheme>/<bucket>/...
    local_dir: Path = REMOTE_COPIES

    @field_validator("url")
    @classmethod
    def _a_url(cls, value: str | None) -> str | None:
        if value is not None and not is_url(value):
            raise ValueError(f"{value!r} is not a URL (scheme://bucket/prefix)")
        return value.rstrip("/") if value else None


class TargetSettings(BaseModel):
    """Where records go."""

    url: SecretUrl | None = None  # default: SQLite under output_dir; its password masked
    store_secrets: bool = False
    wait_lock_s: float = 0.0


class RunSettings(LayeredSettings):
    """The knobs a sync and a migration share: the source, the output and the checks."""

    source: SourceSettings = SourceSettings()
    output_dir: Path = Path("data/out")
    csv_block_bytes: int = Field(8 << 20, ge=64)
    dry_run: bool = False
    allow_mass_delete: bool = False
    max_delete_ratio: float = Field(0.10, ge=0, le=1)
    max_fault_ratio: float = Field(0.05, ge=0, le=1)
    keep_reports_days: int = Field(30, ge=0)
    # Versions per run under exports/history/ (load/history.py); off: current exports only.
    history: bool = True
    gender_labels: dict[str, int] = {"Male": 1, "Female": 2}
    website_codes: dict[str, int] = {"admin": 0, "base": 1}
    expectations_dir: Path | None = None
    log_level: str = "INFO"
    progress: bool = True  # the reading progress line on a terminal; --quiet: off

    @field_validator("output_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()


class Settings(RunSettings):
    """Every knob of a run, typed."""

    model_config = SettingsConfigDict(env_prefix="MAGSYNC_", env_nested_delimiter="__",
                                      toml_file=CONFIG_FILE, extra="forbid")

    target: TargetSettings = TargetSettings()
    # output_dir = "s3://bucket/prefix" is short for remote.url = that URL with output_dir
    # its local working copy, data/out/remote/s3/bucket/prefix (remote.local_dir)
    remote: RemoteSettings = RemoteSettings()
    exports: ExportSettings = ExportSettings()  # the PII policy of the Parquet exports
    limits: LimitSettings = LimitSettings()
    batch_size: int = Field(50_000, ge=1)
    full: bool = False
    hard_delete: bool = False
    validation_chunk_rows: int = Field(100_000, ge=1)  # bounds the buffer's memory (bench)
    # validate unchanged records too, and those still faulted (else re-reported: load/refault.py)
    revalidate: bool = False
    # leave out records whose raw values did not change before typing them (load/raw_skip.py);
    # off only to compare with and measure the full road (tests, bench)
    skip_unchanged: bool = True
    validation: bool = True  # off only to measure what validation costs (bench)

    @model_validator(mode="before")
    @classmethod
    def _remote_output_dir(cls, data: Any) -> Any:
        """An output_dir that is a URL becomes remote.url, with its local working copy."""
        out = data.get("output_dir") if isinstance(data, dict) else None
        if isinstance(out, str) and is_url(out):
            remote = dict(data.get("remote") or {})
            remote["url"] = out
            base = Path(remote.get("local_dir") or REMOTE_COPIES)
            local = base / out.replace("://", "/", 1).rstrip("/")
            return {**data, "remote": remote, "output_dir": local}
        return data

    @property
    def target_url(self) -> str:
        """The target URL, defaulting to a SQLite file under output_dir."""
        url = self.target.url.get_secret_value() if self.target.url else None
        return url or f"sqlite:///{self.output_dir / 'magsync.sqlite'}"

def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the layers, with `overrides` (CLI arguments) on top."""
    return load_layered(Settings, config_file, **overrides)
