"""The fleet file (stores.toml): many stores, their targets and schedules, one typed model.

Secrets never appear in it: a store names the environment variable (or Prefect Secret
block) holding its API key; a target's password comes from the worker's environment
(PGPASSWORD, ~/.pgpass). See magsync.example.stores.toml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.engine import make_url

from magsync.load.layout import check_store_name
from magsync.transform.cron import check_cron
from magsync.transform.errors import ConfigError

STRICT = ConfigDict(extra="forbid")


class FleetSource(BaseModel):
    """A store's source: what `[source]` of magsync.toml holds, without secrets."""

    model_config = STRICT
    kind: Literal["csv", "soap"]
    input: Path | None = None
    encoding: str | None = None
    delimiter: str | None = None
    url: str | None = None
    api: Literal["v1", "v2", "wsi", "auto"] | None = None
    api_user: str | None = None
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    api_key_block: str | None = None
    ca_bundle: Path | None = None
    timeout_s: float | None = Field(None, gt=0)
    retries: int | None = Field(None, ge=0)
    backoff_base_s: float | None = Field(None, ge=0)
    concurrency: int | None = Field(None, ge=1, le=16)

    @model_validator(mode="after")
    def _complete(self) -> FleetSource:
        if self.kind == "csv" and self.input is None:
            raise ValueError("a CSV source needs input (a file or folder)")
        if self.kind == "soap":
            if not self.url or not self.api_user:
                raise ValueError("a SOAP source needs url and api_user")
            if not self.api_key_env and not self.api_key_block:
                raise ValueError("a SOAP source needs api_key_env (the environment "
                                 "variable holding the key) or api_key_block")
        return self


class FleetTarget(BaseModel):
    """A target several stores write to, and how many may write at once."""

    model_config = STRICT
    url: str
    max_writers: int = Field(4, ge=1, description="syncs writing to it at once")

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str) -> str:
        try:
            url = make_url(value)
        except Exception:  # noqa: BLE001 - SQLAlchemy raises several types for a bad URL
            raise ValueError("not a SQLAlchemy URL") from None
        if url.password:
            raise ValueError("no password in the fleet file: give it to the workers in "
                             "their environment (PGPASSWORD, ~/.pgpass)")
        return value

    @model_validator(mode="after")
    def _sqlite_alone(self) -> FleetTarget:
        if self.url.startswith("sqlite") and self.max_writers != 1:
            raise ValueError("a SQLite target needs max_writers = 1: its run lock is a "
                             "local file and SQLite takes one writer at a time")
        return self


class FleetStore(BaseModel):
    """One store: its name (the `source` column), source, target and schedules."""

    model_config = STRICT
    name: str
    source: FleetSource
    target: str
    schedule: str | None = None  # incremental syncs (cron, in `timezone`)
    full_schedule: str | None = None  # full snapshots: the only runs that see deletions
    timezone: str = "UTC"
    website_codes: dict[str, int] | None = None
    gender_labels: dict[str, int] | None = None

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: str) -> str:
        return check_store_name(value)

    @field_validator("schedule", "full_schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)


class Fleet(BaseModel):
    """The whole fleet file."""

    model_config = STRICT
    # shared: each store writes under source=<name>; a folder, or a URL (s3://bucket/prefix)
    # whose local working copy each worker keeps (load/remote.py)
    output_dir: str = "data/out"
    targets: dict[str, FleetTarget]
    stores: list[FleetStore] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Fleet:
        seen: set[str] = set()
        for store in self.stores:
            if store.name in seen:
                raise ValueError(f"store {store.name!r} is listed twice")
            seen.add(store.name)
            if store.target not in self.targets:
                raise ValueError(f"store {store.name!r}: no target named {store.target!r} "
                                 f"(targets: {', '.join(sorted(self.targets))})")
        return self

    @property
    def sqlite_targets(self) -> list[str]:
        """The targets whose run lock is a local file."""
        return sorted(n for n, t in self.targets.items() if t.url.startswith("sqlite"))

    def store(self, name: str) -> FleetStore:
        """The named store, or ConfigError listing the known ones."""
        for store in self.stores:
            if store.name == name:
                return store
        raise ConfigError(f"no store {name!r} in the fleet file (stores: "
                          f"{', '.join(s.name for s in self.stores)})")
