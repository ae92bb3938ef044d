"""Staging: every batch read, normalised, diffed, checked, validated, and put aside.

Rows that would be written (created, updated, restored) wait in a per-entity buffer until
it holds `validation_chunk_rows`, because Great Expectations costs ~85 ms per run whatever
the size. Buffers flush parents first (groups, customers, addresses), so an address is
never checked before the customer it belongs to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from magsync.flows.crash import pause_point
from magsync.flows.unprovided import keep_stored
from magsync.transform.batch import RawBatch
from magsync.transform.diff import WRITES, Action, changed_fields
from magsync.transform.faults import Fault, Stage
from magsync.transform.integrity import (
    addresses_of_replaced_customers,
    addresses_with_known_customer,
    customers_with_known_group,
    last_of_each_key,
    row_faults,
    winners,
)
from magsync.transform.prepare import Prepared, prepare
from magsync.transform.schema import (
    ADDRESS,
    CUSTOMER,
    EXTRA_COL,
    GROUP,
    KEY_COL,
    LOAD_ORDER,
    Entity,
)
from magsync.transform.validate import DERIVED_COL

if TYPE_CHECKING:
    from magsync.flows.pipeline import Run

CHANGED_COL = "_changed"


@dataclass
class Pending:
    """Rows of one entity waiting for validation."""

    frames: list[pd.DataFrame] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    rows: int = 0


def stage_all(run: Run, batches: Iterable[RawBatch], *, has_groups: bool) -> None:
    """Reads, normalises, diffs, validates and stages every batch; plans deletions."""
    from magsync.flows.pipeline import EntityPlan, plan_deletes

    with run.report.timed("index"):
        run.plans = {e.name: EntityPlan(run.target.key_index(e)) for e in LOAD_ORDER}
    run.groups_listed = has_groups
    with run.report.timed("stage"):
        for raw in batches:
            with run.report.timed("normalise"):
                prepared = keep_stored(run, raw, prepare(raw, run.settings.gender_labels,
                                                         run.codes))
            stage_batch(run, prepared)
            pause_point("first-batch")
        if not has_groups:
            stage_batch(run, derived_groups(run.group_ids))
        flush(run)
    plan_deletes(run)


def derived_groups(group_ids: set[int]) -> Prepared:
    """Groups made up from the ids customers refer to, with a null code."""
    ids = sorted(group_ids)
    raw = pd.DataFrame({"customer_group_id": pd.Series([str(i) for i in ids], dtype="str")})
    return prepare(RawBatch(GROUP, raw, derived=True), {})


def stage_batch(run: Run, prepared: Prepared) -> None:
    """Diffs one prepared batch; unchanged rows are counted, the rest wait for validation."""
    entity = prepared.entity
    plan = run.plans[entity.name]
    plan.derived = plan.derived or prepared.derived
    plan.keyless_faults += prepared.keyless_faults
    plan.index.mark_present(prepared.faulted_keys)
    for name, n in prepared.received.items():
        run.report.receive(name, n)
    for name, n in prepared.faulted_records.items():
        run.report.count(name, Action.FAULTED.value, n)
    record_faults(run, prepared.faults)
    frame = prepared.frame
    if entity is CUSTOMER:
        run.faulted_customers.update(f.key for f in prepared.faults
                                     if f.key and f.entity == CUSTOMER.name)
        run.group_ids.update(int(g) for g in frame["group_id"].dropna().unique())
    with run.report.timed("diff"):
        actions = plan.index.classify(frame[KEY_COL], frame["row_hash"].to_numpy(),
                                      create_only=prepared.derived)
    unchanged = actions == Action.UNCHANGED.value
    waiting = np.ones(len(frame), bool) if run.settings.revalidate else ~unchanged
    run.report.count(entity.name, Action.UNCHANGED.value, int((unchanged & ~waiting).sum()))
    if entity is GROUP:
        frame = frame.assign(**{DERIVED_COL: prepared.derived})
    pending = run.pending.setdefault(entity.name, Pending())
    pending.frames.append(_where(frame, waiting))
    pending.actions.append(actions[waiting])
    pending.rows += int(waiting.sum())
    if pending.rows >= run.settings.validation_chunk_rows:
        flush(run)


def flush(run: Run) -> None:
    """Validates and stages every buffered row, parents first."""
    for entity in LOAD_ORDER:
        pending = run.pending.pop(entity.name, None)
        if pending and pending.rows:
            frame = pd.concat(pending.frames)
            frame.index = pd.RangeIndex(len(frame))
            check_and_stage(run, entity, frame, np.concatenate(pending.actions))


def check_and_stage(run: Run, entity: Entity, frame: pd.DataFrame, actions: np.ndarray) -> None:
    """Duplicates, cross-entity checks, the suite; good rows staged, bad ones faulted."""
    good, faults = last_of_each_key(entity, frame)
    if entity is CUSTOMER and not good.all():  # their addresses must not join the winner
        run.replaced_customers.update(winners(frame, good))
    duplicates = len(faults)  # a duplicate's key is its winner's: it must not fault that
    with run.report.timed("integrity"):
        ok, more = _integrity(run, entity, _where(frame, good))
        good[np.flatnonzero(good)[~ok]] = False
        faults += more
    if run.validator is not None:
        with run.report.timed("validate"):
            _validate(run, entity, frame, good, faults)
    if entity is CUSTOMER:
        run.faulted_customers.update(f.key for f in faults[duplicates:] if f.key)
    run.report.count(entity.name, Action.FAULTED.value, int((~good).sum()))
    record_faults(run, faults)
    stage_rows(run, entity, _where(frame, good), actions[good])


def _validate(run: Run, entity: Entity, frame: pd.DataFrame, good: np.ndarray,
              faults: list[Fault]) -> None:
    """Runs the entity's suite on the rows still good; unsets `good` for those failing."""
    assert run.validator is not None
    checked = _where(frame, good).drop(columns=entity.secret_names, errors="ignore")
    outcome = run.validator.validate(entity, checked)
    good[np.flatnonzero(good)[~outcome.good.to_numpy(dtype=bool)]] = False
    faults += outcome.faults
    if outcome.failed:
        run.outcomes.append(outcome)


def _integrity(run: Run, entity: Entity, frame: pd.DataFrame) -> tuple[np.ndarray, list[Fault]]:
    """Addresses need a known, unfaulted customer (and not one of its replaced records);
    customers a known group."""
    if entity is ADDRESS:
        ok, faults = addresses_of_replaced_customers(frame, run.replaced_customers)
        more_ok, more = _address_parents(run, _where(frame, ok))
        ok[np.flatnonzero(ok)[~more_ok]] = False
        return ok, faults + more
    if entity is CUSTOMER and run.groups_listed:
        groups = run.plans[GROUP.name].index
        ids = pd.Index([int(k.strip("[]")) for k in groups.keys[~groups.deleted | groups.seen]]
                       + [int(k.strip("[]")) for k in groups.new_keys])
        known, faults = customers_with_known_group(frame, ids)
        return known.to_numpy(dtype=bool), faults
    return np.ones(len(frame), bool), []


def _address_parents(run: Run, frame: pd.DataFrame) -> tuple[np.ndarray, list[Fault]]:
    """Addresses whose customer is known and did not fault."""
    parents = frame["customer_key"]
    faulted = run.faulted_customers
    orphan = np.fromiter((k in faulted for k in parents.tolist()), bool, len(parents))
    faults = row_faults(ADDRESS, Stage.INTEGRITY, frame[orphan], rule="customer_faulted",
                        column="customer_key",
                        message="its customer record faulted, so the address is not loaded")
    known = run.plans[CUSTOMER.name].index.exists(parents) | orphan
    ok, more = addresses_with_known_customer(frame, known)
    return ok.to_numpy(dtype=bool) & ~orphan, faults + more


def stage_rows(run: Run, entity: Entity, frame: pd.DataFrame, actions: np.ndarray) -> None:
    """Stages rows to write and lists them in the report (unchanged rows are only counted)."""
    writes = np.isin(actions, [a.value for a in WRITES])
    run.report.count(entity.name, Action.UNCHANGED.value, int((~writes).sum()))
    if not writes.any():
        return
    staged = _where(frame, writes).drop(columns=[DERIVED_COL], errors="ignore")
    staged_actions = pd.Series(actions[writes], index=staged.index)
    for action in WRITES:
        run.report.count(entity.name, action.value, int((staged_actions == action.value).sum()))
    changed = pd.Series(None, index=staged.index, dtype="str")
    updated = (staged_actions == Action.UPDATED.value).to_numpy()
    if updated.any():
        changed[updated] = _changed_fields(run, entity, staged[updated])
    run.staging.add(entity, staged, staged_actions)
    run.records.write({
        "entity": entity.name,
        "key": staged[KEY_COL],
        "action": staged_actions.astype("str"),
        "changed_fields": changed,
        "source": staged.get("_source"),
        "source_line": staged.get("_line"),
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


def _where(frame: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    """The rows of `frame` where `mask` holds; `frame` itself when it holds everywhere
    (the common case: a boolean take copies every column)."""
    return frame if mask.all() else frame[mask]


def record_faults(run: Run, faults: list[Fault]) -> None:
    """Writes faults to the report as they come (the callers count the faulted records:
    a record failing two rules has two faults)."""
    if not faults:
        return
    run.faults.extend(faults)
    run.records.write_faults(faults)
