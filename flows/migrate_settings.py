"""A migration's settings: defaults < magsync-migrate.toml < MAGSYNC_* < CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from magsync.flows.layered import load_layered
from magsync.flows.settings import RunSettings
from magsync.load import migration
from magsync.load.magento_target import MagentoTarget

MIGRATE_CONFIG = Path("magsync-migrate.toml")


class MagentoTargetSettings(BaseModel):
    """The store written to. Its key comes from MAGSYNC_TARGET__API_KEY only."""

    model_config = ConfigDict(extra="ignore")  # a sync's MAGSYNC_TARGET__* are not ours
    url: str | None = None
    api_user: str | None = None
    api_key: SecretStr | None = None
    ca_bundle: Path | None = None
    basic_auth_user: str | None = None
    basic_auth_password: SecretStr | None = None
    timeout_s: float = 60.0
    retries: int = Field(4, ge=0, description="for reads; writes are never resent blindly")
    backoff_base_s: float = 1.0
    multicall_size: int = Field(50, ge=1)
    concurrency: int = Field(2, ge=1, le=16)


class MigrateSettings(RunSettings):
    """Every knob of a migration: defaults < magsync-migrate.toml < MAGSYNC_* < CLI."""

    model_config = SettingsConfigDict(env_prefix="MAGSYNC_", env_nested_delimiter="__",
                                      toml_file=MIGRATE_CONFIG, extra="forbid")

    target: MagentoTargetSettings = MagentoTargetSettings()
    state_path: Path | None = None  # default: <output_dir>/migrate-state.sqlite
    batch_size: int = Field(5_000, ge=1)
    on_existing: Literal["update", "skip", "fault"] = "update"
    website_map: dict[int, int] = {}
    store_map: dict[int, int] = {}
    group_map: dict[int, int] = {}
    same_group_ids: bool = False
    delete_missing: bool = False

    @property
    def state_file(self) -> Path:
        """The id map's SQLite file."""
        return self.state_path or self.output_dir / "migrate-state.sqlite"

    def options(self, target: MagentoTarget) -> migration.MigrationOptions:
        """What the migration's steps take from these settings."""
        return migration.MigrationOptions(
            self.output_dir, self.state_file, migration.id_map_scope(self.source.name, target),
            self.source.name, self.dry_run, self.on_existing, self.max_fault_ratio,
            self.expectations_dir, self.gender_labels)


def load_migrate_settings(config_file: Path | None = None, **overrides: Any) -> MigrateSettings:
    """Settings from the layers, with `overrides` (CLI arguments) on top."""
    return load_layered(MigrateSettings, config_file, **overrides)
