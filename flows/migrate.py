"""A store migration: customers from a source (CSV export or SOAP store) into a Magento
store through its SOAP API. Its settings, then a thin Prefect flow (`migrate_flow`) over
the steps in load/migration.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from magsync.extract.sources import ReadOptions, Source, build_source
from magsync.flows.artifacts import publish_run
from magsync.flows.settings import RunSettings, load_layered
from magsync.flows.watch import watched
from magsync.load import migration
from magsync.load.magento_target import MagentoTarget, StoreMaps
from magsync.load.magento_upsert import Hook
from magsync.load.migration import MISSING_TARGET_KEY, open_target  # noqa: F401 (the CLI's)
from magsync.transform.errors import ConfigError, GuardRefusedError, MagsyncError

MIGRATE_CONFIG = Path("magsync-migrate.toml")
TASK_OPTIONS: dict[str, Any] = {"persist_result": False, "cache_policy": NO_CACHE}


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


def open_source(settings: MigrateSettings) -> Source:
    """The configured source (the sync's sources, always read in full)."""
    from magsync.flows.sync_steps import _api_key

    read = ReadOptions(settings.batch_size, settings.csv_block_bytes,
                       dict(settings.website_codes), full=True)
    return build_source(settings.source, read, api_key=lambda: _api_key(settings.source))


def store_maps(settings: MigrateSettings, groups: dict[str, int] | None = None) -> StoreMaps:
    """Id maps from the settings plus the target's groups (code -> id)."""
    return StoreMaps(websites=settings.website_map, stores=settings.store_map,
                     group_ids=settings.group_map, target_groups=groups or {},
                     same_group_ids=settings.same_group_ids)


def migrate_step(m: migration.Migration, source: Source, progress: bool) -> Any:
    """Every source batch through the migration, its progress shown as it reads."""
    batches = watched(source, run_id=m.run_id, command="migrate",  # terminal line, UI
                      source_name=m.options.source_name, progress=progress)
    return migration.migrate_batches(m, batches)


migrate_task = task(name="migrate", **TASK_OPTIONS)(migrate_step)
delete_task = task(name="delete-missing", **TASK_OPTIONS)(migration.delete_missing)


def run_migrate(settings: MigrateSettings, hook: Hook | None = None, *,
                tasks: bool = True) -> dict[str, Any]:
    """One migration, step by step; the report as a dict. Raises MagsyncError with the
    report attached (`err.report`) when it fails. `tasks=False` runs without Prefect."""
    source = open_source(settings)
    store_maps(settings).check_group_source(bool(getattr(source, "has_groups", True)))
    with open_target(settings.target) as target:
        m = migration.open_migration(settings.options(target), target, source.describe(),
                                     store_maps(settings, target.groups()), hook)
        migrate, delete = (migrate_task, delete_task) if tasks else \
            (migrate_step, migration.delete_missing)
        keep = settings.keep_reports_days
        try:
            keyless = migrate(m, source, settings.progress)
            if settings.delete_missing:
                delete(m, keyless, settings.max_delete_ratio, settings.allow_mass_delete)
            migration.check_end(m)
        except MagsyncError as err:
            status = "refused" if isinstance(err, GuardRefusedError) else "failed"
            err.report = migration.finish(m, status, str(err), keep).to_dict()
            raise
        except BaseException as err:
            migration.finish(m, "failed", f"{type(err).__name__}: {err}", keep)
            raise
        return migration.finish(m, "dry-run" if settings.dry_run else "done", None,
                                keep).to_dict()


@flow(name="magsync-migrate", persist_result=False, log_prints=False)
def migrate_flow(overrides: dict[str, Any] | None = None,
                 config_file: str | None = None) -> Any:
    """Migrate customers into a Magento store. Secrets come from the environment only."""
    try:
        settings = load_migrate_settings(Path(config_file) if config_file else None,
                                         **(overrides or {}))
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return Failed(message=f"invalid settings: {where}: {first.get('msg')}",
                      data={"exit_code": ConfigError.exit_code})
    try:
        return publish_run(run_migrate(settings), "migrate")  # artifacts, then the report
    except MagsyncError as err:
        report = dict(getattr(err, "report", None) or {})
        publish_run(report, "migrate")  # artifacts: counts and report link, faults
        report["exit_code"] = err.exit_code
        return Failed(message=str(err), data=report)
