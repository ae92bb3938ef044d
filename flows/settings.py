"""One typed settings object: defaults < magsync.toml < MAGSYNC_* environment < CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from magsync.flows.export_settings import ExportSettings
from magsync.flows.layered import LayeredSettings, load_layered
from magsync.flows.remote_settings import RemoteSettings, remote_output_dir
from magsync.flows.secret_url import SecretUrl
from magsync.flows.source_settings import SourceSettings

CONFIG_FILE = Path("magsync.toml")


class LimitSettings(BaseModel):
    """Prefect global concurrency limits a tracked sync takes (set by `magsync deploy`)."""

    target: str | None = None  # held while writing to the target (merge and export)
    store: str | None = None  # held for the whole run: one run per store host


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
        return remote_output_dir(data)

    @property
    def target_url(self) -> str:
        """The target URL, defaulting to a SQLite file under output_dir."""
        url = self.target.url.get_secret_value() if self.target.url else None
        return url or f"sqlite:///{self.output_dir / 'magsync.sqlite'}"

def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the layers, with `overrides` (CLI arguments) on top."""
    return load_layered(Settings, config_file, **overrides)
