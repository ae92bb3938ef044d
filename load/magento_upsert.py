"""Upserting customers and addresses into a Magento target: read, plan, write, record, resume.

Per batch: read what the plan needs (the id map's entries, the target's customers found
by (website, lower(email)), the target addresses of the customers concerned), let
load/migration_plan.py decide each record's step, then write.

Creates are written ahead into the id map as `pending`; the store's answers are recorded
per multiCall. A create whose outcome is unknown (the request failed in transit) is
looked up on the target before it is sent again, once; updates and deletes carry the
same values again, so they are resent once. Store faults are data: one Fault each,
with the store's code and message; the other records go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from magsync.load.guards import check_delete_ratio
from magsync.load.idmap import DONE, PENDING, Entry, IdMap
from magsync.load.magento_target import (
    MagentoTarget,
    OutcomeUnknown,
    field_digests,
    update_payload,
)
from magsync.load.migration_plan import (
    Action,
    Call,
    Plan,
    Policy,
    Record,
    RunState,
    Step,
    TargetAddresses,
    TargetCustomers,
    emails_to_find,
    fault,
    match_addresses,
    match_customer,
    needs_match,
    plan_addresses,
    plan_customers,
    unmapped_customers,
    with_parents,
)
from magsync.magento.errors import MagentoCallFault
from magsync.transform.faults import Fault
from magsync.transform.schema import ADDRESS, CUSTOMER, Entity

Hook = Callable[[str, int], None]  # (entity, answers just received): tests stop runs here
Sink = Callable[["Outcome"], None]  # takes outcomes as they are recorded
NOT_EXISTS = 102  # update, info or delete of a missing id
NO_CUSTOMER = 101  # customer_address.create for a missing customer


@dataclass
class Outcome:
    """What a batch did: one report row per record, and the faults."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    def add(self, entity: Entity, step: Step) -> None:
        """A report row for a step."""
        message = step.message
        if message is None and step.target_id is not None:
            message = f"target id {step.target_id}"
        self.rows.append({"entity": entity.name, "key": step.key,
                          "action": step.action.value, "changed_fields": step.changed,
                          "message": message, "source": step.record.source,
                          "source_line": step.record.line})


class Upserter:
    """Writes prepared customers and addresses, batch by batch, into one target."""

    def __init__(self, target: MagentoTarget, idmap: IdMap, run_id: str, *,
                 policy: Policy = "update", dry_run: bool = False,
                 hook: Hook | None = None, sink: Sink | None = None) -> None:
        self.target, self.idmap, self.run_id = target, idmap, run_id
        self.policy, self.dry_run, self.hook, self.sink = policy, dry_run, hook, sink
        self.faulted: set[str] = set()  # customer keys that faulted in this run
        self.skipped: set[str] = set()  # customer keys skipped by the policy
        self.created: set[int] = set()  # target customers created in this run
        self.planned: dict[str, int | None] = {}  # dry run: customer key -> target id
        self.deleted: set[str] = set()  # customer keys deleted (dry run: would be)

    def state(self) -> RunState:
        """What this run decided about customers so far (the address plan's input)."""
        return RunState(frozenset(self.faulted), frozenset(self.skipped),
                        frozenset(self.created), self.planned if self.dry_run else None)

    def customers(self, records: Sequence[Record]) -> Outcome:
        """Creates, updates, adopts, skips or faults each customer."""
        entries = self.idmap.get(CUSTOMER.name, [r.key for r in records])
        unmapped = unmapped_customers(records, entries)
        found = self._customers_on_target([(r, entries.get(r.key)) for r in unmapped]) \
            if unmapped else TargetCustomers()
        plan = plan_customers(records, entries, found, self.policy)
        return self._apply(CUSTOMER, plan)

    def addresses(self, records: Sequence[Record]) -> Outcome:
        """Creates, updates or adopts each address under its migrated customer."""
        parents = self.idmap.get(CUSTOMER.name, {str(r.parent_key) for r in records})
        run = self.state()
        ready, _, _ = with_parents(records, parents, run)
        entries = self.idmap.get(ADDRESS.name, [r.key for r, _ in ready])
        listed = [parent for r, parent in ready
                  if needs_match(entries.get(r.key), parent, run.created)]
        found = self._addresses_on_target(listed) if listed else TargetAddresses()
        return self._apply(ADDRESS, plan_addresses(records, parents, entries, found, run))

    def _apply(self, entity: Entity, plan: Plan) -> Outcome:
        out = Outcome(faults=list(plan.faults))
        if entity is CUSTOMER:
            self.faulted.update(plan.faulted_keys())
            self.skipped.update(plan.skipped_keys())
        self._execute(entity, list(plan.steps), out)
        return out

    def _customers_on_target(self, wanted: Iterable[tuple[Record, Entry | None]]
                             ) -> TargetCustomers:
        found = TargetCustomers.of(self.target.find_customers(emails_to_find(list(wanted))))
        return found.with_owners(self.idmap.owners(CUSTOMER.name, found.found.values()))

    def _addresses_on_target(self, parent_ids: Iterable[int | None]) -> TargetAddresses:
        listed = self.target.addresses(i for i in parent_ids if i is not None)
        ids = [int(r["customer_address_id"]) for rows in listed.values() for r in rows]
        return TargetAddresses(listed, self.idmap.owners(ADDRESS.name, ids))

    # --- deletes --------------------------------------------------------------------------

    def delete_missing(self, max_ratio: float, allow_mass: bool) -> Outcome:
        """Deletes what this migration wrote and the source no longer has."""
        customers = self.idmap.unseen(CUSTOMER.name)
        total = self.idmap.count(CUSTOMER.name)
        check_delete_ratio(len(customers), total, max_ratio, allow_mass=allow_mass,
                           what="migrated customers", unwritten="deleted")
        out = Outcome()
        self._execute(CUSTOMER, self._deletes(customers), out)
        deleted = self.deleted
        gone = {e.source_key for e in customers}
        addresses = self.idmap.unseen(ADDRESS.name)
        for e in addresses:
            if e.parent_key in deleted:  # Magento deletes them with their customer
                out.add(ADDRESS, Step(Record(e.source_key, {}, 0), Action.DELETED,
                                      target_id=e.target_id,
                                      message="deleted with its customer"))
        self._execute(ADDRESS, self._deletes([e for e in addresses
                                              if e.parent_key not in gone]), out)
        if not self.dry_run:
            self.idmap.forget_children(deleted)
        return out

    @staticmethod
    def _deletes(entries: list[Entry]) -> list[Step]:
        return [Step(Record(e.source_key, {}, 0), Action.DELETED, Call.DELETE,
                     target_id=e.target_id, entry=e) for e in entries]

    # --- writing --------------------------------------------------------------------------

    def _execute(self, entity: Entity, steps: list[Step], out: Outcome) -> None:
        """Writes what the steps need, records the answers, reports every step."""
        if self.dry_run:
            for s in steps:
                if entity is CUSTOMER and s.action in (Action.CREATED, Action.UPDATED,
                                                       Action.UNCHANGED):
                    self.planned[s.key] = s.target_id
                if entity is CUSTOMER and s.call is Call.DELETE:
                    self.deleted.add(s.key)
                out.add(entity, s)
            return
        self._record(entity, [s for s in steps if s.call is None and s.adopt], out)
        for s in steps:
            if s.call is None and not s.adopt:
                out.add(entity, s)
        todo = [s for s in steps if s.call]
        self._intend(entity, [s for s in todo if s.call is Call.CREATE])
        for _ in range(2):
            todo = self._send(entity, todo, out)
            if not todo:
                return
            todo = self._resolve(entity, todo, out)
        for s in todo:
            out.faults.append(fault(
                entity, s.record, "outcome_unknown",
                f"{s.call}: the store's answer was lost twice ({s.unknown}); the next run "
                "looks for it on the target before writing again"))

    def _call(self, entity: Entity, s: Step) -> tuple[str, list[Any]]:
        resource = "customer" if entity is CUSTOMER else "customer_address"
        args: list[Any]
        if s.call is Call.CREATE:
            args = [dict(s.record.payload)] if entity is CUSTOMER else \
                [s.parent_id, dict(s.record.payload)]
        elif s.call is Call.UPDATE:
            args = [s.target_id, update_payload(entity, s.record.payload)]
        else:
            args = [s.target_id]
        return f"{resource}.{s.call}", args

    def _send(self, entity: Entity, steps: list[Step], out: Outcome) -> list[Step]:
        """One pass of writes; returns the steps to look at again."""
        again: list[Step] = []
        for indices, results in self.target.write([self._call(entity, s) for s in steps]):
            if self.hook is not None:
                self.hook(entity.name, len(indices))
            landed, refused = [], []
            for index, result in zip(indices, results, strict=True):
                s = steps[index]
                if isinstance(result, OutcomeUnknown):
                    again.append(replace(s, unknown=result.reason))
                elif isinstance(result, MagentoCallFault):
                    retry = _vanished(s, result)
                    if retry is not None:
                        again.append(retry)
                        continue
                    out.faults.append(fault(entity, s.record, f"store_fault_{result.code}",
                                            result.fault_message))
                    refused.append(s)
                    if entity is ADDRESS and s.call is Call.CREATE and \
                            result.code == NO_CUSTOMER:
                        # Its customer was deleted on the target: map it afresh next run.
                        self.idmap.forget(CUSTOMER.name, [str(s.record.parent_key)])
                else:
                    landed.append(replace(s, target_id=int(result))
                                  if s.call is Call.CREATE else s)
            self._record(entity, landed, out)
            self._refused(entity, refused)
            self._flush(out)
        return again

    def _flush(self, out: Outcome) -> None:
        """Hands what is recorded so far to the sink, so a killed run's report keeps it."""
        if self.sink is not None and (out.rows or out.faults):
            self.sink(Outcome(list(out.rows), list(out.faults)))
            out.rows.clear()
            out.faults.clear()

    def _refused(self, entity: Entity, steps: list[Step]) -> None:
        if entity is CUSTOMER:
            self.faulted.update(s.key for s in steps)
        # A refused create never landed: drop its pending entry.
        self.idmap.forget(entity.name, [s.key for s in steps if s.call is Call.CREATE])

    def _resolve(self, entity: Entity, steps: list[Step], out: Outcome) -> list[Step]:
        """Looks up creates whose outcome is unknown; returns what to send again."""
        gone = [s for s in steps if s.call is Call.DELETE and s.unknown is None]
        self._record(entity, gone, out)
        steps = [s for s in steps if not (s.call is Call.DELETE and s.unknown is None)]
        lost = {i: replace(s, entry=replace(s.entry or Entry(s.key, PENDING), state=PENDING,
                                            payload_hash=s.record.hash))
                for i, s in enumerate(steps) if s.call is Call.CREATE and s.unknown}
        # The creates may have landed: look for them as pending ones.
        looked = dict(zip(lost, self._look_up(entity, list(lost.values()), out), strict=True))
        self._record(entity, [s for s in looked.values() if s is not None and s.call is None
                              and s.adopt], out)
        kept = [s for s in (looked.get(i, s) for i, s in enumerate(steps))
                if s is not None]
        self._intend(entity, [s for s in kept if s.call is Call.CREATE and s.unknown is None])
        return [s for s in kept if s.call]

    def _look_up(self, entity: Entity, lost: list[Step], out: Outcome
                 ) -> list[Step | None]:
        """Lost creates matched again on the target (None: faulted instead)."""
        if not lost:
            return []
        if entity is not CUSTOMER:
            return list(match_addresses(
                lost, self._addresses_on_target(s.parent_id for s in lost)))
        found = self._customers_on_target([(s.record, s.entry) for s in lost])
        looked: list[Step | None] = []
        for s in lost:
            decided = match_customer(s.record, s.entry, found, self.policy, s)
            if isinstance(decided, Fault):
                out.faults.append(decided)
                self.faulted.add(s.key)
                looked.append(None)
            else:
                if decided.action is Action.SKIPPED:
                    self.skipped.add(s.key)
                looked.append(decided)
        return looked

    def _intend(self, entity: Entity, steps: list[Step]) -> None:
        """Writes creates ahead as pending, so a crash after the store's answer is found."""
        self.idmap.put(entity.name, [_entry(s, PENDING) for s in steps], self.run_id)

    def _record(self, entity: Entity, steps: list[Step], out: Outcome) -> None:
        """Records answered writes as done (deletes: forgotten) and reports them."""
        if not steps:
            return
        deleted = [s.key for s in steps if s.call is Call.DELETE]
        self.idmap.forget(entity.name, deleted)
        if entity is CUSTOMER:
            self.deleted.update(deleted)
        self.idmap.put(entity.name, [_entry(s, DONE) for s in steps
                                     if s.call is not Call.DELETE], self.run_id)
        for s in steps:
            if entity is CUSTOMER and s.call is Call.CREATE and s.target_id is not None:
                self.created.add(s.target_id)
            out.add(entity, s)


def _vanished(s: Step, fault: MagentoCallFault) -> Step | None:
    """A write to send again after a 'not exists' fault: a delete of a record already
    gone (resolved as deleted), an update of one deleted on the target since (created
    again); None for any other fault."""
    if fault.code != NOT_EXISTS:
        return None
    if s.call is Call.DELETE:
        return replace(s, unknown=None)
    if s.call is Call.UPDATE:
        return replace(s, call=Call.CREATE, target_id=None, entry=None,
                       action=Action.CREATED)
    return None


def _entry(s: Step, state: str) -> Entry:
    r = s.record
    if r.parent_key is None:  # a customer: parent_id is its target website
        return Entry(r.key, state, s.target_id, r.website, r.email, None, r.hash,
                     field_digests(r.payload))
    return Entry(r.key, state, s.target_id, s.parent_id, None, r.parent_key, r.hash,
                 field_digests(r.payload))
