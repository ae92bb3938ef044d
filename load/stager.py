"""Staging: every batch read, normalised, diffed, checked, validated, and put aside.

Rows that would be written (created, updated, restored) wait in a per-entity buffer until
it holds `chunk_rows`, because Great Expectations costs ~85 ms per run whatever the size.
Buffers flush parents first (groups, customers, addresses), so an address is never
checked before the customer it belongs to. The result is a frozen `Staged`, with the
deletes a --full run plans (`plan_deletes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import pandas as pd

from magsync.load.raw_skip import RawSkip, stale_digests
from magsync.load.refault import Refaults, load_refaults
from magsync.load.run_context import RunContext
from magsync.load.suppression import skip_suppressed
from magsync.load.sync_state import DeleteDetection, Staged, StageState, delete_detection
from magsync.load.typing_context import earlier_contexts
from magsync.load.unprovided import keep_stored
from magsync.transform.batch import RawBatch
from magsync.transform.codes import StoreCodes
from magsync.transform.diff import WRITES, Action, KeyIndex, changed_fields
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
from magsync.transform.validate import DERIVED_COL, SuiteValidator

# Rows per validation run for a paced source: small enough that validation overlaps the
# requests still in flight (not all of it after the last answer), large enough that GX's
# fixed ~85 ms per run stays a small share.
PACED_CHUNK_ROWS = 20_000


@dataclass(frozen=True)
class StageOptions:
    """How staging reads and checks records (from the run's settings)."""

    gender_labels: Mapping[str, int]
    codes: StoreCodes
    revalidate: bool = False  # validate unchanged rows too
    chunk_rows: int = 100_000  # rows per validation run
    skip_unchanged: bool = True  # leave out unchanged records before typing (raw_skip.py)

    @classmethod
    def of(cls, settings: StageSettings) -> StageOptions:
        """The options a run's settings give."""
        return cls(settings.gender_labels, StoreCodes.given(settings.website_codes),
                   revalidate=settings.revalidate, chunk_rows=settings.validation_chunk_rows,
                   skip_unchanged=settings.skip_unchanged)


class StageSettings(Protocol):
    """The run settings staging reads (flows/settings.py)."""

    @property
    def gender_labels(self) -> Mapping[str, int]: ...
    @property
    def website_codes(self) -> Mapping[str, int]: ...
    @property
    def revalidate(self) -> bool: ...
    @property
    def validation_chunk_rows(self) -> int: ...
    @property
    def skip_unchanged(self) -> bool: ...


@dataclass
class Pending:
    """Rows of one entity waiting for validation."""

    frames: list[pd.DataFrame] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    rows: int = 0


def stage_all(ctx: RunContext, validator: SuiteValidator | None, options: StageOptions,
              batches: Iterable[RawBatch], *, has_groups: bool, paced: bool = False) -> Staged:
    """Reads, normalises, diffs, validates and stages every batch. A `paced` source (one
    that waits on the network) gets its rows validated as they come, in smaller chunks,
    and Great Expectations loaded while the first answers are awaited."""
    if paced:
        options = replace(options, chunk_rows=min(options.chunk_rows, PACED_CHUNK_ROWS))
    enabled = options.skip_unchanged and not options.revalidate
    with ctx.report.timed("index"):
        indexes = {e.name: ctx.target.key_index(e) for e in LOAD_ORDER}
        refaults = still_faulted(ctx, validator) if enabled else Refaults({})
    state = StageState(indexes, suite_digest=validator.digest if validator else None)
    stager = Stager(ctx, validator, options, state, groups_listed=has_groups, warm=paced)
    batches = skip_suppressed(ctx, batches)  # customers erased on request (magsync forget)
    skip = RawSkip(indexes, ctx.report, stager.state.group_ids, options.gender_labels,
                   options.codes, enabled=enabled, refaults=refaults)
    skip.earlier = earlier_contexts(ctx.target, skip.context)
    with ctx.report.timed("stage"):
        for raw in batches:
            with ctx.report.timed("normalise"):
                prepared = skip.prepare(raw)
                prepared = keep_stored(ctx.target, indexes[prepared.entity.name], ctx.report,
                                       raw, prepared)
            stager.stage_batch(prepared)
            ctx.checkpoint("first-batch")
        if not has_groups:
            stager.stage_batch(derived_groups(stager.state.group_ids))
        stager.flush()
    again = sum(ctx.report.refaulted.values())
    if again:
        ctx.report.notes.append(f"{again} record(s) still faulted (unchanged since the last "
                                "run, not revalidated; --revalidate checks them again)")
    return replace(stager.state.staged(), context=skip.context)


def still_faulted(ctx: RunContext, validator: SuiteValidator | None) -> Refaults:
    """The records this run may re-report from the target's open faults: none without
    validation (a fault is only re-reported under the suites that raised it)."""
    if validator is None:
        return Refaults({})
    return load_refaults(ctx.target.open_keyed_faults(), validator.digest,
                         validator.stable_rules)


def plan_deletes(ctx: RunContext, staged: Staged, *, full: bool) -> Staged:
    """With a full snapshot: the stored keys it lacks, unless keyless faults forbid it."""
    if not full:
        return staged
    plans = dict(staged.plans)
    for entity in LOAD_ORDER:
        plan = plans[entity.name]
        detection = delete_detection(plan, full=full)
        if detection is DeleteDetection.DERIVED:
            ctx.report.notes.append(f"{entity.name}: no delete detection (derived from "
                                    "references, not a full list)")
        elif detection is DeleteDetection.KEYLESS_FAULTS:
            ctx.report.notes.append(
                f"{entity.name}: delete detection skipped: {plan.keyless_faults} faulted "
                "record(s) without a key might be stored ones")
        deletes: list[str] = []
        if detection is DeleteDetection.DETECTED:
            ctx.checkpoint("delete-detection")
            deletes = plan.index.absent()
            ctx.report.count(entity.name, Action.DELETED.value, len(deletes))
            ctx.records.write({"entity": entity.name, "key": deletes,
                               "action": Action.DELETED.value})
        plans[entity.name] = replace(plan, detection=detection, deletes=tuple(deletes))
    return replace(staged, plans=plans)


def derived_groups(group_ids: set[int]) -> Prepared:
    """Groups made up from the ids customers refer to, with a null code."""
    ids = sorted(group_ids)
    raw = pd.DataFrame({"customer_group_id": pd.Series([str(i) for i in ids], dtype="str")})
    return prepare(RawBatch(GROUP, raw, derived=True), {})


def known_group_ids(groups: KeyIndex) -> pd.Index:
    """The group ids that exist after this run (stored and active or seen, or new): a
    group's record key is its id in brackets."""
    stored = groups.keys[~groups.deleted | groups.seen]
    return pd.Index([int(k.strip("[]")) for k in stored]
                    + [int(k.strip("[]")) for k in groups.new_keys])


def where(frame: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    """The rows of `frame` where `mask` holds; `frame` itself when it holds everywhere
    (the common case: a boolean take copies every column)."""
    return frame if mask.all() else frame[mask]


class Stager:
    """Stages one run's batches into `ctx.staging`, gathering `state` as it goes."""

    def __init__(self, ctx: RunContext, validator: SuiteValidator | None,
                 options: StageOptions, state: StageState, *, groups_listed: bool,
                 warm: bool = False) -> None:
        self.ctx = ctx
        self.validator = validator
        # a paced source: Great Expectations loads while later answers are awaited, once
        # a row needs it (an unchanged re-sync never imports it)
        self.warm = warm
        self.options = options
        self.state = state
        self.groups_listed = groups_listed
        self.pending: dict[str, Pending] = {}

    def stage_batch(self, prepared: Prepared) -> None:
        """Diffs one prepared batch; unchanged rows are counted, the rest wait for
        validation."""
        entity, state, report = prepared.entity, self.state, self.ctx.report
        index = state.indexes[entity.name]
        if prepared.derived:
            state.derived.add(entity.name)
        state.keyless_faults[entity.name] += prepared.keyless_faults
        index.mark_present(prepared.faulted_keys)
        for name, n in prepared.received.items():
            report.receive(name, n)
        for name, n in prepared.faulted_records.items():
            report.count(name, Action.FAULTED.value, n)
        self.record_faults(prepared.faults)
        frame = prepared.frame
        if entity is CUSTOMER:
            state.faulted_customers.update(f.key for f in prepared.faults
                                           if f.key and f.entity == CUSTOMER.name)
            state.group_ids.update(int(g) for g in frame["group_id"].dropna().unique())
        with report.timed("diff"):
            actions = index.classify(frame[KEY_COL], frame["row_hash"].to_numpy(),
                                     create_only=prepared.derived)
        unchanged = actions == Action.UNCHANGED.value
        waiting = np.ones(len(frame), bool) if self.options.revalidate else ~unchanged
        report.count(entity.name, Action.UNCHANGED.value, int((unchanged & ~waiting).sum()))
        self.ctx.staging.add_digests(entity, stale_digests(index, where(frame,
                                                                        unchanged & ~waiting)))
        if entity is GROUP:
            frame = frame.assign(**{DERIVED_COL: prepared.derived})
        if self.warm and self.validator is not None and waiting.any():
            self.validator.warm()
        pending = self.pending.setdefault(entity.name, Pending())
        pending.frames.append(where(frame, waiting))
        pending.actions.append(actions[waiting])
        pending.rows += int(waiting.sum())
        if pending.rows >= self.options.chunk_rows:
            self.flush()

    def flush(self) -> None:
        """Validates and stages every buffered row, parents first."""
        for entity in LOAD_ORDER:
            pending = self.pending.pop(entity.name, None)
            if pending and pending.rows:
                frame = pd.concat(pending.frames)
                frame.index = pd.RangeIndex(len(frame))
                self.check_and_stage(entity, frame, np.concatenate(pending.actions))

    def check_and_stage(self, entity: Entity, frame: pd.DataFrame,
                        actions: np.ndarray) -> None:
        """Duplicates, cross-entity checks, the suite; good rows staged, bad ones faulted."""
        report = self.ctx.report
        good, faults = last_of_each_key(entity, frame)
        if entity is CUSTOMER and not good.all():  # their addresses must not join the winner
            self.state.replaced_customers.update(winners(frame, good))
        duplicates = len(faults)  # a duplicate's key is its winner's: it must not fault that
        with report.timed("integrity"):
            ok, more = self._integrity(entity, where(frame, good))
            good[np.flatnonzero(good)[~ok]] = False
            faults += more
        if self.validator is not None:
            with report.timed("validate"):
                self._validate(self.validator, entity, frame, good, faults)
        if entity is CUSTOMER:
            self.state.faulted_customers.update(f.key for f in faults[duplicates:] if f.key)
        report.count(entity.name, Action.FAULTED.value, int((~good).sum()))
        self.record_faults(faults)
        self.stage_rows(entity, where(frame, good), actions[good])

    def _validate(self, validator: SuiteValidator, entity: Entity, frame: pd.DataFrame,
                  good: np.ndarray, faults: list[Fault]) -> None:
        """Runs the entity's suite on the rows still good; unsets `good` for those
        failing."""
        checked = where(frame, good).drop(columns=entity.secret_names, errors="ignore")
        outcome = validator.validate(entity, checked)
        good[np.flatnonzero(good)[~outcome.good.to_numpy(dtype=bool)]] = False
        faults += outcome.faults
        if outcome.failed:
            self.ctx.failed_validations.append(outcome)

    def _integrity(self, entity: Entity, frame: pd.DataFrame) -> tuple[np.ndarray, list[Fault]]:
        """Addresses need a known, unfaulted customer (and not one of its replaced
        records); customers a known group."""
        if entity is ADDRESS:
            ok, faults = addresses_of_replaced_customers(frame, self.state.replaced_customers)
            more_ok, more = self._address_parents(where(frame, ok))
            ok[np.flatnonzero(ok)[~more_ok]] = False
            return ok, faults + more
        if entity is CUSTOMER and self.groups_listed:
            ids = known_group_ids(self.state.indexes[GROUP.name])
            known, faults = customers_with_known_group(frame, ids)
            return known.to_numpy(dtype=bool), faults
        return np.ones(len(frame), bool), []

    def _address_parents(self, frame: pd.DataFrame) -> tuple[np.ndarray, list[Fault]]:
        """Addresses whose customer is known and did not fault."""
        parents = frame["customer_key"]
        faulted = self.state.faulted_customers
        orphan = np.fromiter((k in faulted for k in parents.tolist()), bool, len(parents))
        faults = row_faults(ADDRESS, Stage.INTEGRITY, frame[orphan], rule="customer_faulted",
                            column="customer_key",
                            message="its customer record faulted, so the address is not loaded")
        known = self.state.indexes[CUSTOMER.name].exists(parents) | orphan
        ok, more = addresses_with_known_customer(frame, known)
        return ok.to_numpy(dtype=bool) & ~orphan, faults + more

    def stage_rows(self, entity: Entity, frame: pd.DataFrame, actions: np.ndarray) -> None:
        """Stages rows to write and lists them in the report (unchanged rows are only
        counted)."""
        report = self.ctx.report
        writes = np.isin(actions, [a.value for a in WRITES])
        report.count(entity.name, Action.UNCHANGED.value, int((~writes).sum()))
        self.ctx.staging.add_digests(entity, stale_digests(self.state.indexes[entity.name],
                                                           where(frame, ~writes)))
        if not writes.any():
            return
        staged = where(frame, writes).drop(columns=[DERIVED_COL], errors="ignore")
        staged_actions = pd.Series(actions[writes], index=staged.index)
        for action in WRITES:
            report.count(entity.name, action.value,
                         int((staged_actions == action.value).sum()))
        changed = pd.Series(None, index=staged.index, dtype="str")
        updated = (staged_actions == Action.UPDATED.value).to_numpy()
        if updated.any():
            changed[updated] = self._changed_fields(entity, staged[updated])
        self.ctx.staging.add(entity, staged, staged_actions)
        self.ctx.records.write({
            "entity": entity.name,
            "key": staged[KEY_COL],
            "action": staged_actions.astype("str"),
            "changed_fields": changed,
            "source": staged.get("_source"),
            "source_line": staged.get("_line"),
        })

    def _changed_fields(self, entity: Entity, new: pd.DataFrame) -> list[str]:
        """Names of the public columns that differ from the stored row; secrets as one
        name."""
        old = self.ctx.target.fetch_rows(entity, new[KEY_COL].tolist())
        aligned = old.reindex(new[KEY_COL].to_numpy())
        aligned.index = new.index
        columns = [c.name for c in entity.public_columns] + [EXTRA_COL]
        names = changed_fields(new.reindex(columns=columns),
                               aligned.reindex(columns=columns), columns)
        return [n if n else "secret attributes" for n in names]

    def record_faults(self, faults: list[Fault]) -> None:
        """Writes faults to the report as they come (the callers count the faulted
        records: a record failing two rules has two faults)."""
        if not faults:
            return
        self.state.faults.extend(faults)
        self.ctx.records.write_faults(faults)
