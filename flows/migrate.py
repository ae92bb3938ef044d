"""A store migration: customers from a source (CSV export or SOAP store) into a Magento
store through its SOAP API: a thin Prefect flow (`migrate_flow`) over the steps in
load/migration.py; its settings are flows/migrate_settings.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed
from pydantic import ValidationError

from magsync.extract.sources import ReadOptions, Source, build_source
from magsync.flows.artifacts import publish_run
from magsync.flows.migrate_settings import MigrateSettings, load_migrate_settings
from magsync.flows.watch import watched
from magsync.load import migration
from magsync.load.magento_target import StoreMaps
from magsync.load.magento_upsert import Hook
from magsync.load.migration import MISSING_TARGET_KEY, open_target  # noqa: F401 (the CLI's)
from magsync.transform.errors import ConfigError, GuardRefusedError, MagsyncError

TASK_OPTIONS: dict[str, Any] = {"persist_result": False, "cache_policy": NO_CACHE}


def open_source(settings: MigrateSettings) -> Source:
    """The configured source (the sync's sources, always read in full)."""
    from magsync.flows.source_setup import api_key

    read = ReadOptions(settings.batch_size, settings.csv_block_bytes,
                       dict(settings.website_codes), full=True)
    return build_source(settings.source, read, api_key=lambda: api_key(settings.source))


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
