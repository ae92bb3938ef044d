"""The steps of a sync as plain functions: stage, guard, merge, export, report.

The Prefect flow in flows/sync.py wraps each step in a task; tests may call them directly.
Composition only: the computing lives in extract/, transform/ and load/.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pyarrow as pa
from sqlalchemy.engine import Connection

from magsync.flows.crash import crash_point
from magsync.flows.settings import Settings
from magsync.flows.stage import Pending
from magsync.load import history
from magsync.load.lock import RunLock
from magsync.load.parquet_export import RunDelta, refresh_export
from magsync.load.report import RecordsWriter, RunReport, prune_reports
from magsync.load.report_page import write_page
from magsync.load.runs import magsync_version, new_run_id
from magsync.load.sql_store import SqlTarget, utc_now
from magsync.load.staging import Staging
from magsync.transform.codes import StoreCodes
from magsync.transform.diff import Action, KeyIndex
from magsync.transform.errors import ConservationError, GuardRefusedError
from magsync.transform.faults import Fault
from magsync.transform.schema import LOAD_ORDER, Entity
from magsync.transform.validate import (
    BUNDLED_SUITES,
    SuiteValidator,
    ValidationOutcome,
    build_data_docs,
)

log = logging.getLogger("magsync")
@dataclass
class EntityPlan:
    """What staging found for one entity."""

    index: KeyIndex
    deletes: list[str] = field(default_factory=list)
    keyless_faults: int = 0
    derived: bool = False


@dataclass
class Run:
    """Everything one run carries from step to step."""

    settings: Settings
    run_id: str
    started: datetime
    report: RunReport
    report_dir: Path
    records: RecordsWriter
    target: SqlTarget
    staging: Staging
    validator: SuiteValidator | None
    lock: RunLock | None
    codes: StoreCodes = field(default_factory=lambda: StoreCodes.given({}))
    plans: dict[str, EntityPlan] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    faulted_customers: set[str] = field(default_factory=set)
    # customer key -> (source, line) of the record that won over earlier ones
    replaced_customers: dict[str, tuple[object, object]] = field(default_factory=dict)
    group_ids: set[int] = field(default_factory=set)
    groups_listed: bool = False
    pending: dict[str, Pending] = field(default_factory=dict)
    outcomes: list[ValidationOutcome] = field(default_factory=list)
    cursors: dict[str, str] = field(default_factory=dict)  # entity -> new cursor value


def _lean_arrow_memory() -> None:
    """jemalloc returns freed Arrow buffers to the system; the default pool keeps them
    (measured: 1M first-load peak 1,268 MB -> 866 MB). With no decay it returns them at
    once rather than seconds later (1M re-sync peak 941 -> 902 MB, no time measurable)."""
    with contextlib.suppress(NotImplementedError):
        pa.set_memory_pool(pa.jemalloc_memory_pool())
        pa.jemalloc_set_decay_ms(0)


def open_run(settings: Settings, input_description: str) -> Run:
    """Creates the run's folders, report and target handle; migrates unless dry-run."""
    _lean_arrow_memory()
    started = datetime.now(UTC)
    run_id = new_run_id(started)
    out = settings.output_dir
    report_dir = out / "reports" / run_id
    target = SqlTarget(settings.target_url, source=settings.source.name,
                       store_secrets=settings.target.store_secrets)
    report = RunReport(run_id=run_id, source=settings.source.name, input=input_description,
                       target=target.describe(), version=magsync_version(),
                       mode="full" if settings.full else "incremental",
                       dry_run=settings.dry_run, started_at=started, output_dir=str(out))
    log.info("run %s: output folder %s", run_id, out)
    validator = None
    if settings.validation:
        with report.timed("validate"):  # a bad suite stops the run before it takes the lock
            validator = SuiteValidator(settings.expectations_dir or BUNDLED_SUITES, started)
    else:
        report.notes.append("validation switched off (validation = false)")
    lock = None
    if not settings.dry_run:
        lock = RunLock(target.engine, settings.source.name, run_id)
        lock.acquire(settings.target.wait_lock_s)
        try:
            _remove_stale_staging(out / "staging")
            _migrate(target, lock, report, run_id, started)
        except BaseException:
            lock.release()
            raise
    return Run(settings, run_id, started, report, report_dir,
               RecordsWriter(report_dir, run_id), target,
               Staging(out / "staging" / run_id, with_secrets=settings.target.store_secrets),
               validator, lock, StoreCodes.given(settings.website_codes))


def _remove_stale_staging(staging_root: Path) -> None:
    """Staging left by killed runs (this run holds the lock, so none is in use)."""
    if staging_root.is_dir():
        for folder in staging_root.iterdir():
            shutil.rmtree(folder, ignore_errors=True)


def _migrate(target: SqlTarget, lock: RunLock, report: RunReport, run_id: str,
             started: datetime) -> None:
    """Migrates the target, records the lock holder and the run as running."""
    with report.timed("migrate"):
        target.migrate()
    lock.record_holder()
    with target.begin() as conn:
        target.record_run(conn, run_id, "running", started.replace(tzinfo=None), None, None)


def plan_deletes(run: Run) -> None:
    """With --full: the stored keys this snapshot lacks, unless keyless faults forbid it."""
    if not run.settings.full:
        return
    for entity in LOAD_ORDER:
        plan = run.plans[entity.name]
        if plan.derived:
            run.report.notes.append(f"{entity.name}: no delete detection (derived from "
                                    "references, not a full list)")
            continue
        if plan.keyless_faults:
            run.report.notes.append(
                f"{entity.name}: delete detection skipped: {plan.keyless_faults} faulted "
                "record(s) without a key might be stored ones")
            continue
        crash_point("delete-detection")
        plan.deletes = plan.index.absent()
        run.report.count(entity.name, Action.DELETED.value, len(plan.deletes))
        run.records.write({"entity": entity.name, "key": plan.deletes,
                           "action": Action.DELETED.value})


def check_conservation(run: Run) -> None:
    """Fails the run, before any write, unless every record read is accounted for once."""
    problems = run.report.unbalanced()
    run.report.conservation = "; ".join(problems) if problems else "ok"
    if problems:
        raise ConservationError("records read and records accounted for differ: "
                                + "; ".join(problems))


def check_guards(run: Run) -> None:
    """Checks conservation, then refuses the run before any write when deletes or faults
    exceed their limits."""
    check_conservation(run)
    s = run.settings
    total = sum(sum(c.values()) - c["deleted"] for c in run.report.counts.values())
    faulted = run.report.faulted
    if total and faulted / total > s.max_fault_ratio:
        raise GuardRefusedError(
            f"fault ratio {faulted / total:.1%} ({faulted} of {total} records) exceeds "
            f"max_fault_ratio {s.max_fault_ratio:.1%}: nothing was written")
    if s.allow_mass_delete:
        return
    for name, plan in run.plans.items():
        active = plan.index.active_count
        if active and len(plan.deletes) / active > s.max_delete_ratio:
            raise GuardRefusedError(
                f"{name}: {len(plan.deletes)} of {active} stored records would be deleted "
                f"({len(plan.deletes) / active:.1%} > {s.max_delete_ratio:.0%}); rerun with "
                "--allow-mass-delete if that is intended: nothing was written")


def merge(run: Run) -> None:
    """Applies deletes, then staged upserts, each batch in its own transaction."""
    now = utc_now()
    target = run.target
    with run.report.timed("merge"):
        for entity in LOAD_ORDER if run.settings.history else ():
            _history_before_merge(run, entity)
        with target.begin() as conn:
            for entity in LOAD_ORDER:
                deletes = run.plans[entity.name].deletes
                if deletes:
                    target.delete(conn, entity, deletes, run.run_id, now,
                                  hard=run.settings.hard_delete)
        for entity in LOAD_ORDER:
            _merge_entity(run, entity, now)
        crash_point("after-commit")
        with target.begin() as conn:
            target.write_faults(conn, run.faults, run.run_id, now)
            for entity in LOAD_ORDER:  # advanced only with the data they describe
                if entity.name in run.cursors:
                    target.save_state(conn, entity, run.cursors[entity.name], run.run_id, now)
            corrected, again = _clear_corrected_faults(run, conn)
            if corrected:
                run.report.notes.append(f"{corrected} earlier fault(s) cleared by corrected "
                                        "records")
            if again:
                run.report.notes.append(f"{again} earlier fault(s) superseded: their records "
                                        "faulted again in this run")


def _history_before_merge(run: Run, entity: Entity) -> None:
    plan = run.plans[entity.name]
    parents = run.plans[entity.parent].deletes if entity.parent else []
    history.before_merge(run.settings.output_dir / "exports", entity, plan.index,
                         partial(run.staging.parts, entity), plan.deletes, parents,
                         run_id=run.run_id, at=run.started)


def _merge_entity(run: Run, entity: Entity, now: datetime) -> None:
    """Upserts the staged parts: into a populated table a transaction per part (a rerun
    carries on); into an empty SQLite table one bulk transaction (a rerun starts over)."""
    target = run.target
    parts = run.staging.parts(entity)
    if target.can_bulk_load(entity):
        target.bulk_load(entity, parts, run.staging.root / f"{entity.name}-merge.sqlite",
                         run.run_id, now, before_commit=partial(crash_point, "merge-transaction"))
        return
    for part in parts:
        with target.begin() as conn:
            target.upsert(conn, entity, part, run.run_id, now)
            crash_point("merge-transaction")


def _clear_corrected_faults(run: Run, conn: Connection) -> tuple[int, int]:
    """Clears earlier open faults that this run supersedes: their record came in again
    (corrected, or faulted anew under this run's id), or they had no key at all (this run
    re-read the whole input and re-reported whatever is still unreadable). Returns how
    many were corrected and how many faulted again."""
    open_faults = run.target.open_faults(conn, before_run=run.run_id)
    refaulted = {(f.entity, f.key) for f in run.faults}  # key None: a keyless fault again
    corrected: list[int] = []
    again: list[int] = []
    for entity, rows in open_faults.items():
        plan = run.plans.get(entity)
        keyed = [(fid, key) for fid, key in rows if key is not None]
        superseded: list[tuple[int, str | None]] = [
            (fid, None) for fid, key in rows if key is None and run.settings.full]
        if plan is not None and keyed:
            received = plan.index.received([key for _, key in keyed])
            superseded += [pair for pair, ok in zip(keyed, received, strict=True)
                           if ok or (entity, pair[1]) in refaulted]
        for fid, key in superseded:
            (again if (entity, key) in refaulted else corrected).append(fid)
    run.target.clear_faults(conn, corrected + again, run.run_id)
    return len(corrected), len(again)


def export(run: Run) -> None:
    """Brings the Parquet exports up to date with the target's active rows."""
    exports = run.settings.output_dir / "exports"
    with run.report.timed("export"):
        for entity in LOAD_ORDER:
            plan = run.plans[entity.name]
            parent = run.plans[entity.parent].deletes if entity.parent else []
            delta = RunDelta(plan.index, plan.deletes, parent,
                             partial(run.staging.parts, entity))
            if run.settings.history:
                note = history.after_merge(exports, entity, run.run_id, run.started, partial(
                    run.target.iter_active, entity, run.settings.batch_size))
                run.report.notes.extend([note] if note else [])
            path = refresh_export(
                entity, delta, partial(run.target.iter_active, entity, run.settings.batch_size),
                exports, batch_rows=run.settings.batch_size,
                before_rename=lambda: crash_point("export-before-rename"))
            run.report.exports[entity.name] = str(path)


def finish(run: Run, status: str, error: str | None = None) -> RunReport:
    """Closes the report, records the run (unless dry-run) and prunes old reports."""
    report = run.report
    report.status = status
    report.error = error
    report.finished_at = datetime.now(UTC)
    crash_point("report")
    run.records.close()
    run.staging.remove()
    with report.timed("report"):
        if run.outcomes:
            docs = build_data_docs(run.outcomes, run.report_dir / "data_docs")
            report.data_docs = str(docs) if docs else None
        report.write_summary(run.report_dir)
        if not run.settings.dry_run:
            with run.target.begin() as conn:
                run.target.record_run(conn, run.run_id, status,
                                      run.started.replace(tzinfo=None),
                                      report.finished_at.replace(tzinfo=None),
                                      report.to_dict())
        prune_reports(run.settings.output_dir / "reports", run.settings.keep_reports_days)
    report.write_summary(run.report_dir)
    if run.lock is not None:
        run.lock.release()
    run.target.dispose()
    write_page(run.report_dir)  # every run's index.html; after the lock is released
    return report
