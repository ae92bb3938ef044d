"""Applies a staged sync to the target, then to the exports.

Deletes first, then the staged upserts (each batch in its own transaction), then in one
transaction the faults, the cursors (advanced only with the data they describe) and the
clearing of earlier faults this run supersedes.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from pathlib import Path

from sqlalchemy.engine import Connection

from magsync.load import history
from magsync.load.parquet_export import RunDelta, policy_changed, refresh_export
from magsync.load.run_context import RunContext
from magsync.load.sql_store import utc_now
from magsync.load.sync_state import DeleteDetection, Staged
from magsync.load.typing_context import save_context
from magsync.transform.faults import Fault
from magsync.transform.pii import KEEP_ALL, PiiPolicy
from magsync.transform.schema import LOAD_ORDER, Entity


def merge(ctx: RunContext, staged: Staged, *, hard_delete: bool, full: bool,
          history_in: Path | None = None, policy: PiiPolicy = KEEP_ALL) -> None:
    """Applies deletes, then staged upserts, then faults, cursors and cleared faults; with
    `history_in` (the exports folder), the run's versions are written there first, pending
    until the merge commits (load/history.py), transformed by the PII `policy`."""
    now = utc_now()
    target = ctx.target
    with ctx.report.timed("merge"):
        if history_in is not None:
            for entity in LOAD_ORDER:
                _history_before_merge(ctx, staged, entity, history_in, policy)
        with target.begin() as conn:
            for entity in LOAD_ORDER:
                deletes = staged.plans[entity.name].deletes
                if deletes:
                    target.delete(conn, entity, deletes, ctx.run_id, now, hard=hard_delete)
        for entity in LOAD_ORDER:
            merge_entity(ctx, entity, now)
        ctx.checkpoint("after-commit")
        with target.begin() as conn:
            for entity in LOAD_ORDER:  # unchanged rows: their raw digest only
                target.refresh_raw_digests(conn, entity, ctx.staging.digests(entity))
            target.write_faults(conn, staged.faults, ctx.run_id, now, staged.suite_digest)
            for entity in LOAD_ORDER:  # advanced only with the data they describe
                if entity.name in staged.cursors:
                    target.save_state(conn, entity, staged.cursors[entity.name], ctx.run_id,
                                      now)
            save_contexts(conn, ctx, staged, now)
            corrected, again = clear_superseded_faults(ctx, staged, conn, full=full)
            if corrected:
                ctx.report.notes.append(f"{corrected} earlier fault(s) cleared by corrected "
                                        "records")
            if again:
                ctx.report.notes.append(f"{again} earlier fault(s) superseded: their records "
                                        "faulted again in this run")


def save_contexts(conn: Connection, ctx: RunContext, staged: Staged, now: datetime) -> None:
    """Records the run's typing context per entity; a full run that detected deletes typed
    every active row under it, so the earlier ones are forgotten (load/typing_context.py)."""
    if not staged.context:
        return
    for entity in LOAD_ORDER:
        detected = staged.plans[entity.name].detection is DeleteDetection.DETECTED
        save_context(conn, ctx.target.source, entity.name, staged.context, ctx.run_id, now,
                     forget_earlier=detected)


def _history_before_merge(ctx: RunContext, staged: Staged, entity: Entity,
                          exports: Path, policy: PiiPolicy) -> None:
    plan = staged.plans[entity.name]
    parents = staged.plans[entity.parent].deletes if entity.parent else ()
    note = history.before_merge(exports, entity, plan.index,
                                partial(ctx.staging.parts, entity), plan.deletes, parents,
                                run_id=ctx.run_id, at=ctx.report.started_at, policy=policy)
    ctx.report.notes.extend([note] if note else [])


def merge_entity(ctx: RunContext, entity: Entity, now: datetime) -> None:
    """Upserts the staged parts: into a populated table a transaction per part (a rerun
    carries on); into an empty SQLite table one bulk transaction (a rerun starts over)."""
    target = ctx.target
    parts = ctx.staging.parts(entity)
    if target.can_bulk_load(entity):
        target.bulk_load(entity, parts, ctx.staging.root / f"{entity.name}-merge.sqlite",
                         ctx.run_id, now,
                         before_commit=partial(ctx.checkpoint, "merge-transaction"))
        return
    for part in parts:
        with target.begin() as conn:
            target.upsert(conn, entity, part, ctx.run_id, now)
            ctx.checkpoint("merge-transaction")


def clear_superseded_faults(ctx: RunContext, staged: Staged, conn: Connection, *,
                            full: bool) -> tuple[int, int]:
    """Clears earlier open faults that this run supersedes: their record came in again
    (corrected, or faulted anew under this run's id), or they had no key at all (a full
    run re-read the whole input and re-reported whatever is still unreadable). Returns
    how many were corrected and how many faulted again."""
    open_faults = ctx.target.open_faults(conn, before_run=ctx.run_id)
    refaulted = _fault_keys(staged.faults)  # key None: a keyless fault again
    corrected: list[int] = []
    again: list[int] = []
    for entity, rows in open_faults.items():
        plan = staged.plans.get(entity)
        keyed = [(fid, key) for fid, key in rows if key is not None]
        superseded: list[tuple[int, str | None]] = [
            (fid, None) for fid, key in rows if key is None and full]
        if plan is not None and keyed:
            received = plan.index.received([key for _, key in keyed])
            superseded += [pair for pair, ok in zip(keyed, received, strict=True)
                           if ok or (entity, pair[1]) in refaulted]
        for fid, key in superseded:
            (again if (entity, key) in refaulted else corrected).append(fid)
    ctx.target.clear_faults(conn, corrected + again, ctx.run_id)
    return len(corrected), len(again)


def _fault_keys(faults: tuple[Fault, ...]) -> set[tuple[str, str | None]]:
    return {(f.entity, f.key) for f in faults}


def export(ctx: RunContext, staged: Staged, exports: Path, batch_rows: int, *,
           history_on: bool = False, policy: PiiPolicy = KEEP_ALL) -> None:
    """Brings the Parquet exports up to date with the target's active rows, transformed
    by the PII `policy` (a changed policy rewrites them, once, with a note); a child's
    delta includes the deletes of its parent (its rows went with it). With `history_on`,
    publishes the run's versions first (or seeds history where it has not begun)."""
    with ctx.report.timed("export"):
        for entity in LOAD_ORDER:
            if history_on:
                note = history.after_merge(exports, entity, ctx.run_id, ctx.report.started_at,
                                           partial(ctx.target.iter_active, entity, batch_rows),
                                           policy)
                ctx.report.notes.extend([note] if note else [])
            plan = staged.plans[entity.name]
            parent = staged.plans[entity.parent].deletes if entity.parent else ()
            delta = RunDelta(plan.index, plan.deletes, parent,
                             partial(ctx.staging.parts, entity))
            if policy_changed(entity, exports, policy):
                ctx.report.notes.append(f"{entity.name} export rewritten: the PII policy "
                                        "changed")
            path = refresh_export(
                entity, delta, partial(ctx.target.iter_active, entity, batch_rows),
                exports, batch_rows=batch_rows,
                before_rename=partial(ctx.checkpoint, "export-before-rename"), policy=policy)
            ctx.report.exports[entity.name] = str(path)
