"""The steps of a sync as plain functions: stage, guard, merge, export, report.

The Prefect flow in flows/sync.py wraps each step in a task; tests may call them directly.
Composition only: the computing lives in extract/, transform/ and load/.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd

from flows.settings import Settings
from load.parquet_export import write_export
from load.report import RecordsWriter, RunReport, prune_reports
from load.sql_store import SqlTarget, utc_now
from load.staging import Staging
from transform.batch import RawBatch
from transform.diff import WRITES, Action, KeyIndex, changed_fields
from transform.errors import GuardRefusedError
from transform.faults import Fault, Stage
from transform.prepare import Prepared, prepare
from transform.schema import ADDRESS, CUSTOMER, EXTRA_COL, GROUP, KEY_COL, LOAD_ORDER, Entity

log = logging.getLogger("magsync")


def magsync_version() -> str:
    """The installed magsync version."""
    try:
        return version("magsync")
    except PackageNotFoundError:
        return "unknown"


def new_run_id(now: datetime) -> str:
    """A sortable, unique run id."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


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
    plans: dict[str, EntityPlan] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    faulted_customers: set[str] = field(default_factory=set)
    group_ids: set[int] = field(default_factory=set)


def open_run(settings: Settings, input_description: str) -> Run:
    """Creates the run's folders, report and target handle; migrates unless dry-run."""
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
    if not settings.dry_run:
        with report.timed("migrate"):
            target.migrate()
            with target.begin() as conn:
                target.record_run(conn, run_id, "running", started.replace(tzinfo=None),
                                  None, None)
    return Run(settings, run_id, started, report, report_dir,
               RecordsWriter(report_dir, run_id), target,
               Staging(out / "staging" / run_id, with_secrets=settings.target.store_secrets))


def stage_all(run: Run, batches: Iterable[RawBatch], *, has_groups: bool) -> None:
    """Reads, normalises, diffs and stages every batch; plans deletions."""
    with run.report.timed("index"):
        run.plans = {e.name: EntityPlan(run.target.key_index(e)) for e in LOAD_ORDER}
    with run.report.timed("stage"):
        for raw in batches:
            with run.report.timed("normalise"):
                prepared = prepare(raw, run.settings.gender_labels)
            stage_batch(run, prepared)
        if not has_groups:
            stage_batch(run, derived_groups(run.group_ids))
    plan_deletes(run)


def derived_groups(group_ids: set[int]) -> Prepared:
    """Groups made up from the ids customers refer to, with a null code."""
    ids = sorted(group_ids)
    raw = pd.DataFrame({"customer_group_id": pd.Series([str(i) for i in ids], dtype="str")})
    prepared = prepare(RawBatch(GROUP, raw, derived=True), {})
    prepared.derived = True
    return prepared


def stage_batch(run: Run, prepared: Prepared) -> None:
    """Diffs one prepared batch against the store and stages what must be written."""
    entity = prepared.entity
    plan = run.plans[entity.name]
    plan.derived = plan.derived or prepared.derived
    plan.keyless_faults += prepared.keyless_faults
    plan.index.mark_present(prepared.faulted_keys)
    faults = list(prepared.faults)
    frame = prepared.frame
    if entity is ADDRESS and run.faulted_customers:
        frame, orphaned = _split_faulted_parents(run, frame)
        faults.extend(orphaned)
    with run.report.timed("diff"):
        actions, duplicate = plan.index.classify(frame[KEY_COL], frame["row_hash"].to_numpy(),
                                                 create_only=prepared.derived)
    if duplicate.any():
        faults.extend(_duplicates(entity, frame[duplicate]))
        frame, actions = frame[~duplicate], actions[~duplicate]
    if entity is CUSTOMER:
        run.faulted_customers.update(f.key for f in faults if f.key)
        run.group_ids.update(int(g) for g in frame["group_id"].dropna().unique())
    _record_faults(run, faults)
    _record_actions(run, entity, frame, actions)


def _split_faulted_parents(run: Run, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Fault]]:
    """Addresses whose customer faulted are faulted too (their key still counts present)."""
    orphan = frame["customer_key"].isin(run.faulted_customers).to_numpy(dtype=bool)
    if not orphan.any():
        return frame, []
    bad = frame[orphan]
    run.plans[ADDRESS.name].index.mark_present(bad[KEY_COL].tolist())
    faults = [Fault(entity=ADDRESS.name, stage=Stage.INTEGRITY, rule="customer_faulted",
                    message="its customer record faulted, so the address is not loaded",
                    key=str(row[KEY_COL]), source=row.get("_source"),
                    source_line=None if pd.isna(row.get("_line")) else int(row["_line"]))
              for _, row in bad.iterrows()]
    return frame[~orphan], faults


def _duplicates(entity: Entity, frame: pd.DataFrame) -> list[Fault]:
    return [Fault(entity=entity.name, stage=Stage.INTEGRITY, rule="duplicate_key",
                  message="a record with the same key came earlier in this run",
                  key=str(key), source=str(src), source_line=int(line))
            for key, src, line in zip(frame[KEY_COL], frame["_source"].fillna(""),
                                      frame["_line"].fillna(0), strict=True)]


def _record_faults(run: Run, faults: list[Fault]) -> None:
    for fault in faults:
        run.report.count(fault.entity, Action.FAULTED.value)
    run.faults.extend(faults)
    run.records.write_faults(faults)


def _record_actions(run: Run, entity: Entity, frame: pd.DataFrame, actions: np.ndarray) -> None:
    for action in Action:
        run.report.count(entity.name, action.value, int((actions == action.value).sum()))
    writes = np.isin(actions, [a.value for a in WRITES])
    if not writes.any():
        return
    staged = frame[writes]
    staged_actions = pd.Series(actions[writes], index=staged.index)
    changed = pd.Series(None, index=staged.index, dtype="str")
    updated = (staged_actions == Action.UPDATED.value).to_numpy()
    if updated.any():
        changed[updated] = _changed_fields(run, entity, staged[updated])
    run.staging.add(entity, staged, staged_actions)
    run.records.write({
        "entity": [entity.name] * len(staged),
        "key": staged[KEY_COL].tolist(),
        "action": staged_actions.tolist(),
        "changed_fields": changed.tolist(),
        "source": staged["_source"].tolist() if "_source" in staged else None,
        "source_line": staged["_line"].tolist() if "_line" in staged else None,
    })


def _changed_fields(run: Run, entity: Entity, new: pd.DataFrame) -> list[str]:
    """Names of the public columns that differ from the stored row; secrets as one name."""
    old = run.target.fetch_rows(entity, new[KEY_COL].tolist())
    aligned = old.reindex(new[KEY_COL].to_numpy())
    aligned.index = new.index
    columns = [c.name for c in entity.public_columns] + [EXTRA_COL]
    names = changed_fields(new.reindex(columns=columns), aligned.reindex(columns=columns),
                           columns)
    return [n if n else "secret attributes" for n in names]


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
        plan.deletes = plan.index.absent()
        run.report.count(entity.name, Action.DELETED.value, len(plan.deletes))
        run.records.write({"entity": [entity.name] * len(plan.deletes), "key": plan.deletes,
                           "action": [Action.DELETED.value] * len(plan.deletes)})


def check_guards(run: Run) -> None:
    """Refuses the run before any write when deletes or faults exceed their limits."""
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
        with target.begin() as conn:
            for entity in LOAD_ORDER:
                deletes = run.plans[entity.name].deletes
                if deletes:
                    target.delete(conn, entity, deletes, run.run_id, now,
                                  hard=run.settings.hard_delete)
        for entity in LOAD_ORDER:
            for part in run.staging.parts(entity):
                with target.begin() as conn:
                    target.upsert(conn, entity, part, run.run_id, now)
        with target.begin() as conn:
            target.write_faults(conn, run.faults, run.run_id, now)


def export(run: Run) -> None:
    """Rewrites the Parquet exports from the target's active rows."""
    exports = run.settings.output_dir / "exports"
    with run.report.timed("export"):
        for entity in LOAD_ORDER:
            batches = run.target.iter_active(entity, run.settings.batch_size)
            path = write_export(entity, batches, exports)
            run.report.exports[entity.name] = str(path)


def finish(run: Run, status: str, error: str | None = None) -> RunReport:
    """Closes the report, records the run (unless dry-run) and prunes old reports."""
    report = run.report
    report.status = status
    report.error = error
    report.finished_at = datetime.now(UTC)
    run.records.close()
    run.staging.remove()
    with report.timed("report"):
        report.write_summary(run.report_dir)
        if not run.settings.dry_run:
            with run.target.begin() as conn:
                run.target.record_run(conn, run.run_id, status,
                                      run.started.replace(tzinfo=None),
                                      report.finished_at.replace(tzinfo=None),
                                      report.to_dict())
        prune_reports(run.settings.output_dir / "reports", run.settings.keep_reports_days)
    report.write_summary(run.report_dir)
    run.target.dispose()
    return report
