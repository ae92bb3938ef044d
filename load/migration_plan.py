"""A migration's plan: what each source record needs on the target, decided without a store.

The caller (load/magento_upsert.py) reads what the plan needs (the id map's entries, the
target's customers found by email, the target addresses of the customers concerned) and
hands it in; these functions only decide, each record becoming one frozen `Step`:

- a record mapped in the id map with the same payload hash is unchanged, with another one
  it is updated;
- an unmapped customer found on the target by (website, lower(email)) is adopted (a
  create of ours that landed before a crash), updated, skipped or faulted as the
  `on_existing` policy says; otherwise it is created;
- an address waits for its customer: a faulted customer faults it, a skipped one skips
  it; one under a customer created in this run is created; the others are matched by
  content against their customer's target addresses before one is created.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from magsync.load.equality import customer_unchanged
from magsync.load.idmap import PENDING, Entry
from magsync.load.magento_target import ADDRESS_WRITTEN, field_digests
from magsync.load.regions import same_region
from magsync.transform.faults import Fault, Stage
from magsync.transform.schema import ADDRESS, CUSTOMER, Entity

Policy = Literal["update", "skip", "fault"]
_MATCHED = tuple(f for f in ADDRESS_WRITTEN if f not in (
    "is_default_billing", "is_default_shipping", "created_at", "region", "region_id"))
_FLAGS = ("is_default_billing", "is_default_shipping")


class Call(StrEnum):
    """The write a record needs."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class Action(StrEnum):
    """What the report says of a record."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    DELETED = "deleted"


@dataclass(frozen=True)
class Record:
    """One source record's payload on its way to the target."""

    key: str
    payload: Mapping[str, Any]
    hash: int
    source: str | None = None
    line: int | None = None
    email: str | None = None  # customer: lower-case email
    website: int | None = None  # customer: target website id
    parent_key: str | None = None  # address: its customer's source key


@dataclass(frozen=True)
class Step:
    """A record and what the target needs for it."""

    record: Record
    action: Action
    call: Call | None = None  # None: nothing to write
    target_id: int | None = None
    parent_id: int | None = None  # address: its target customer id
    entry: Entry | None = None  # the id map's entry when the plan was made
    adopt: bool = False  # recorded as done in the id map even without a call
    message: str | None = None
    changed: str | None = None  # names of the fields an update changes
    unknown: str | None = None  # why the last write's outcome is unknown

    @property
    def key(self) -> str:
        """The source key."""
        return self.record.key


@dataclass(frozen=True)
class Plan:
    """Steps to execute, and the records faulted instead."""

    steps: tuple[Step, ...] = ()
    faults: tuple[Fault, ...] = ()

    def faulted_keys(self) -> set[str]:
        """Keys of the faulted records."""
        return {f.key for f in self.faults if f.key is not None}

    def skipped_keys(self) -> set[str]:
        """Keys of the records skipped."""
        return {s.key for s in self.steps if s.action is Action.SKIPPED}


@dataclass(frozen=True)
class TargetCustomers:
    """Target customers found by email, and the source key owning each migrated one."""

    found: Mapping[tuple[int, str], int] = field(default_factory=dict)  # lowest id
    rows: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    owners: Mapping[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: Iterable[Mapping[str, Any]]) -> TargetCustomers:
        """From customer.list rows (owners still unknown: see `with_owners`)."""
        found: dict[tuple[int, str], int] = {}
        by_id: dict[int, Mapping[str, Any]] = {}
        for row in rows:
            ident, cid = (int(row["website_id"]), str(row["email"]).lower()), \
                int(row["customer_id"])
            found[ident] = min(found.get(ident, cid), cid)
            by_id[cid] = row
        return cls(found, by_id)

    def with_owners(self, owners: Mapping[int, str]) -> TargetCustomers:
        """The same customers with their owners in the id map."""
        return replace(self, owners=owners)


@dataclass(frozen=True)
class TargetAddresses:
    """Target addresses per target customer, and the source key owning each migrated one."""

    listed: Mapping[int, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    owners: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunState:
    """What earlier batches of this run decided about customers."""

    faulted: Set[str] = frozenset()  # customer keys that faulted
    skipped: Set[str] = frozenset()  # customer keys skipped by the policy
    created: Set[int] = frozenset()  # target customers created
    planned: Mapping[str, int | None] | None = None  # dry run: customer key -> target id


def fault(entity: Entity, record: Record, rule: str, message: str,
          stage: Stage = Stage.LOAD) -> Fault:
    """A fault for a record."""
    return Fault(entity=entity.name, stage=stage, rule=rule, message=message,
                 key=record.key, source=record.source, source_line=record.line)


def changed_fields(entity: Entity, before: Mapping[str, str], payload: Mapping[str, Any]
                   ) -> str:
    """Names of the written fields whose digest changed; secrets as one name."""
    after = field_digests(payload)
    names = sorted(n for n in set(before) | set(after) if before.get(n) != after.get(n))
    secret = set(entity.secret_names)
    shown = [n for n in names if n not in secret]
    if any(n in secret for n in names):
        shown.append("secret attributes")
    return ",".join(shown)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = "\n".join(str(v).strip() for v in value)
    return unicodedata.normalize("NFC", str(value).strip()).casefold()


def same_address(payload: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    """Whether a target address holds the payload's content (defaults aside); the
    region by id where both have one, else by name (load/regions.py)."""
    return all(_text(payload.get(f)) == _text(row.get(f)) for f in _MATCHED) and \
        same_region(payload, row)


def mapped(entity: Entity, record: Record, entry: Entry, parent_id: int | None = None
           ) -> Step:
    """A record the id map holds as done: unchanged with the same hash, else updated."""
    if entry.payload_hash == record.hash:
        return Step(record, Action.UNCHANGED, None, entry.target_id, parent_id, entry)
    return Step(record, Action.UPDATED, Call.UPDATE, entry.target_id, parent_id, entry,
                changed=changed_fields(entity, entry.fields, record.payload))


# --- customers ------------------------------------------------------------------------------


def unmapped_customers(records: Iterable[Record], entries: Mapping[str, Entry]
                       ) -> list[Record]:
    """Customers the id map does not hold as done: to look for on the target."""
    return [r for r in records if not ((e := entries.get(r.key)) is not None and e.done)]


def emails_to_find(steps: Iterable[tuple[Record, Entry | None]]) -> set[str]:
    """The emails to look up on the target: each record's, and a pending create's."""
    wanted = {r.email for r, _ in steps} | {e.email for _, e in steps
                                            if e is not None and e.email}
    return {e for e in wanted if e}


def match_customer(record: Record, entry: Entry | None, target: TargetCustomers,
                   policy: Policy, step: Step | None = None) -> Step | Fault:
    """An unmapped (or pending) customer against the target's customers: the policy's
    step, or a fault. `step`: the step whose write was lost, looked up again."""
    pending = entry is not None and entry.state == PENDING
    tid = target.found.get((int(record.website or 0), record.email)) if record.email else None
    if tid is None and pending and entry is not None:
        tid = target.found.get((int(entry.parent_id or 0), str(entry.email)))
    if tid is None:
        created = Step(record, Action.CREATED, Call.CREATE, entry=entry)
        return created if step is None else replace(step, call=Call.CREATE,
                                                    action=Action.CREATED, entry=entry)
    owner = target.owners.get(tid)
    equal = customer_unchanged(record.payload, target.rows[tid])
    if owner is not None and owner != record.key:
        return fault(CUSTOMER, record, "duplicate_email",
                     f"This customer email already exists (target customer {tid} was "
                     f"migrated from source record {owner})")
    base = step or Step(record, Action.CREATED, entry=entry)
    base = replace(base, target_id=tid, entry=entry)
    if pending or owner == record.key:  # ours: a create that landed before a crash
        same = equal or (entry is not None and entry.payload_hash == record.hash)
        return replace(base, call=None if same else Call.UPDATE, action=Action.CREATED,
                       adopt=True)
    if policy == "update" and equal:  # nothing to write: no updated_at moved
        return replace(base, call=None, action=Action.UNCHANGED, adopt=True,
                       message=f"matched existing target customer {tid} by email: already "
                               "equal")
    if policy == "update":
        return replace(base, call=Call.UPDATE, action=Action.UPDATED,
                       message=f"matched existing target customer {tid} by email")
    if policy == "skip":
        return replace(base, call=None, action=Action.SKIPPED,
                       message=f"exists on the target as customer {tid} (--on-existing skip)")
    return fault(CUSTOMER, record, "exists_on_target",
                 f"a customer with this email exists on the target (id {tid}) and "
                 "--on-existing is fault")


def plan_customers(records: Sequence[Record], entries: Mapping[str, Entry],
                   target: TargetCustomers, policy: Policy) -> Plan:
    """Creates, updates, adoptions, skips and faults of a batch of customers. `target`
    holds what the target has for `emails_to_find` of the unmapped ones."""
    steps: list[Step] = []
    faults: list[Fault] = []
    for record in records:
        entry = entries.get(record.key)
        if entry is not None and entry.done:
            steps.append(mapped(CUSTOMER, record, entry))
            continue
        decided = match_customer(record, entry, target, policy)
        if isinstance(decided, Fault):
            faults.append(decided)
        else:
            steps.append(decided)
    return Plan(tuple(steps), tuple(faults))


# --- addresses ------------------------------------------------------------------------------


def with_parents(records: Iterable[Record], parents: Mapping[str, Entry], run: RunState
                 ) -> tuple[list[tuple[Record, int | None]], list[Step], list[Fault]]:
    """Addresses whose customer is on the target (or would be, in a dry run), with its
    target id; the steps of those whose customer was skipped; faults for the rest."""
    ready: list[tuple[Record, int | None]] = []
    skipped: list[Step] = []
    faults: list[Fault] = []
    for r in records:
        parent = parents.get(str(r.parent_key))
        if r.parent_key in run.faulted:
            faults.append(fault(ADDRESS, r, "customer_faulted",
                                "its customer faulted, so the address is not written",
                                Stage.INTEGRITY))
        elif r.parent_key in run.skipped:
            skipped.append(Step(r, Action.SKIPPED,
                                message="its customer was skipped (--on-existing skip)"))
        elif run.planned is not None and r.parent_key in run.planned:
            ready.append((r, run.planned[str(r.parent_key)]))
        elif parent is not None and parent.done:
            ready.append((r, parent.target_id))
        else:
            faults.append(fault(ADDRESS, r, "customer_not_migrated",
                                "its customer is not on the target (faulted earlier, or "
                                "never read)", Stage.INTEGRITY))
    return ready, skipped, faults


def needs_match(entry: Entry | None, parent_id: int | None, created: Set[int]) -> bool:
    """Whether an address is looked for among its customer's target addresses."""
    if entry is not None and entry.done and entry.parent_id == parent_id:
        return False
    return not (parent_id is None or parent_id in created)


def match_addresses(steps: Sequence[Step], target: TargetAddresses) -> list[Step]:
    """Adopts target addresses with the same content, else plans a create."""
    taken = dict(target.owners)
    out = []
    for s in steps:
        rows = target.listed.get(int(s.parent_id or 0), [])
        row = next((r for r in rows if taken.get(int(r["customer_address_id"]), s.key)
                    == s.key and same_address(s.record.payload, r)), None)
        if row is None:
            out.append(replace(s, call=Call.CREATE, action=Action.CREATED))
            continue
        tid = int(row["customer_address_id"])
        taken[tid] = s.key
        pending = s.entry is not None and s.entry.state == PENDING
        payload = s.record.payload
        differs = any(payload.get(f) and not row.get(f) for f in _FLAGS) or (
            "created_at" in payload and _text(payload["created_at"]) != _text(
                row.get("created_at")))
        # Content there, a flag or created_at not: update.
        action = Action.CREATED if pending else (
            Action.UPDATED if differs else Action.UNCHANGED)
        out.append(replace(s, target_id=tid, adopt=True, action=action,
                           call=Call.UPDATE if differs else None))
    return out


def plan_addresses(records: Sequence[Record], parents: Mapping[str, Entry],
                   entries: Mapping[str, Entry], target: TargetAddresses, run: RunState
                   ) -> Plan:
    """Creates, updates, adoptions, skips and faults of a batch of addresses. `target`
    lists the addresses of the customers `needs_match` names."""
    ready, skipped, faults = with_parents(records, parents, run)
    steps: list[Step] = []
    unmatched: list[int] = []  # positions in `steps`, kept in input order: creates go so
    for record, parent_id in ready:
        entry = entries.get(record.key)
        if entry is not None and entry.done and entry.parent_id == parent_id:
            steps.append(mapped(ADDRESS, record, entry, parent_id))
        elif not needs_match(entry, parent_id, run.created):  # a new customer: none yet
            steps.append(Step(record, Action.CREATED, Call.CREATE, parent_id=parent_id,
                              entry=entry))
        else:
            unmatched.append(len(steps))
            steps.append(Step(record, Action.CREATED, parent_id=parent_id, entry=entry))
    matched = match_addresses([steps[i] for i in unmatched], target)
    for i, step in zip(unmatched, matched, strict=True):
        steps[i] = step
    return Plan(tuple(skipped + steps), tuple(faults))
