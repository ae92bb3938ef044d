"""Upserting customers and addresses into a Magento target: plan, write, record, resume.

Per batch: look each source key up in the id map; a mapped record with the same payload
hash is unchanged, with another one it is updated; an unmapped customer is looked for on
the target by (website, lower(email)) and, when found, updated, skipped or faulted as
the `on_existing` policy says; what is left is created. An address is matched against
its target customer's addresses by content before one is created (the customer may have
been adopted, or a create may have landed before a crash).

Creates are written ahead into the id map as `pending`; the store's answers are recorded
per multiCall. A create whose outcome is unknown (the request failed in transit) is
looked up on the target before it is sent again, once; updates and deletes carry the
same values again, so they are resent once. Store faults are data: one Fault each,
with the store's code and message; the other records go on.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from magsync.load.equality import customer_unchanged
from magsync.load.guards import check_delete_ratio
from magsync.load.idmap import DONE, PENDING, Entry, IdMap
from magsync.load.magento_target import (
    ADDRESS_WRITTEN,
    MagentoTarget,
    OutcomeUnknown,
    field_digests,
    update_payload,
)
from magsync.load.regions import same_region
from magsync.magento.errors import MagentoCallFault
from magsync.transform.faults import Fault, Stage
from magsync.transform.schema import ADDRESS, CUSTOMER, Entity

Policy = Literal["update", "skip", "fault"]
Hook = Callable[[str, int], None]  # (entity, answers just received): tests stop runs here
Sink = Callable[["Outcome"], None]  # takes outcomes as they are recorded
NOT_EXISTS = 102  # update, info or delete of a missing id
NO_CUSTOMER = 101  # customer_address.create for a missing customer
_MATCHED = tuple(f for f in ADDRESS_WRITTEN if f not in (
    "is_default_billing", "is_default_shipping", "created_at", "region", "region_id"))


@dataclass
class Item:
    """One record on its way to the target."""

    key: str
    payload: dict[str, Any]
    hash: int
    source: str | None = None
    line: int | None = None
    email: str | None = None  # customer: lower-case email
    website: int | None = None  # customer: target website id
    parent_key: str | None = None  # address: its customer's source key
    parent_id: int | None = None  # address: its target customer id
    target_id: int | None = None
    entry: Entry | None = None
    call: str | None = None  # create, update, delete, or None (no write)
    action: str = ""  # what the report says: created, updated, unchanged, skipped, deleted
    record: bool = False  # record it as done in the id map even without a call
    unknown: str | None = None  # why the last write's outcome is unknown
    message: str | None = None
    changed: str | None = None


@dataclass
class Outcome:
    """What a batch did: one report row per record, and the faults."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    def add(self, entity: Entity, item: Item, action: str) -> None:
        """A report row for an item."""
        message = item.message
        if message is None and item.target_id is not None:
            message = f"target id {item.target_id}"
        self.rows.append({"entity": entity.name, "key": item.key, "action": action,
                          "changed_fields": item.changed, "message": message,
                          "source": item.source, "source_line": item.line})

    def fault(self, entity: Entity, item: Item, rule: str, message: str,
              stage: Stage = Stage.LOAD) -> None:
        """A fault for an item."""
        self.faults.append(Fault(entity=entity.name, stage=stage, rule=rule, message=message,
                                 key=item.key, source=item.source, source_line=item.line))


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

    # --- customers ------------------------------------------------------------------------

    def customers(self, items: list[Item]) -> Outcome:
        """Creates, updates, adopts, skips or faults each customer."""
        out = Outcome()
        entries = self.idmap.get(CUSTOMER.name, [i.key for i in items])
        unmapped = []
        for it in items:
            it.entry = entries.get(it.key)
            if it.entry is not None and it.entry.done:
                it.target_id = it.entry.target_id
                self._mapped(CUSTOMER, it)
            else:
                unmapped.append(it)
        if unmapped:
            self._match_customers(unmapped, out)
        self._execute(CUSTOMER, [i for i in items if i.action], out)
        return out

    def _mapped(self, entity: Entity, it: Item) -> None:
        entry = it.entry
        if entry is not None and entry.payload_hash == it.hash:
            it.action = "unchanged"
        else:
            it.call, it.action = "update", "updated"
            it.changed = changed_fields(entity, entry.fields if entry else {}, it.payload)

    def _match_customers(self, items: list[Item], out: Outcome) -> None:
        """Unmapped (or pending) customers: find them on the target, then apply the policy."""
        wanted = {i.email for i in items} | {i.entry.email for i in items
                                              if i.entry is not None and i.entry.email}
        found: dict[tuple[int, str], int] = {}
        rows: dict[int, dict[str, Any]] = {}
        for row in self.target.find_customers(e for e in wanted if e):
            ident = (int(row["website_id"]), str(row["email"]).lower())
            found[ident] = min(found.get(ident, int(row["customer_id"])), int(row["customer_id"]))
            rows[int(row["customer_id"])] = row
        owners = self.idmap.owners(CUSTOMER.name, found.values())
        for it in items:
            pending = it.entry is not None and it.entry.state == PENDING
            tid = found.get((int(it.website or 0), it.email)) if it.email else None
            if tid is None and pending and it.entry is not None:
                tid = found.get((int(it.entry.parent_id or 0), str(it.entry.email)))
            if tid is None:
                it.call, it.action = "create", "created"
                continue
            it.target_id = tid
            owner = owners.get(tid)
            equal = customer_unchanged(it.payload, rows[tid])
            if owner is not None and owner != it.key:
                out.fault(CUSTOMER, it, "duplicate_email",
                          f"This customer email already exists (target customer {tid} was "
                          f"migrated from source record {owner})")
                it.call, it.action = None, ""
                self.faulted.add(it.key)
            elif pending or owner == it.key:  # ours: a create that landed before a crash
                same = equal or (it.entry is not None and it.entry.payload_hash == it.hash)
                it.call, it.action, it.record = (None if same else "update"), "created", True
            elif self.policy == "update" and equal:  # nothing to write: no updated_at moved
                it.call, it.action, it.record = None, "unchanged", True
                it.message = f"matched existing target customer {tid} by email: already equal"
            elif self.policy == "update":
                it.call, it.action = "update", "updated"
                it.message = f"matched existing target customer {tid} by email"
            elif self.policy == "skip":
                it.action = "skipped"
                it.message = f"exists on the target as customer {tid} (--on-existing skip)"
                self.skipped.add(it.key)
            else:
                out.fault(CUSTOMER, it, "exists_on_target",
                          f"a customer with this email exists on the target (id {tid}) "
                          "and --on-existing is fault")
                it.call, it.action = None, ""
                self.faulted.add(it.key)

    # --- addresses ------------------------------------------------------------------------

    def addresses(self, items: list[Item]) -> Outcome:
        """Creates, updates or adopts each address under its migrated customer."""
        out = Outcome()
        ready = self._with_parents(items, out)
        entries = self.idmap.get(ADDRESS.name, [i.key for i in ready])
        unmatched = []
        for it in ready:
            it.entry = entries.get(it.key)
            if it.entry is not None and it.entry.done and it.entry.parent_id == it.parent_id:
                it.target_id = it.entry.target_id
                self._mapped(ADDRESS, it)
            elif it.parent_id is None or it.parent_id in self.created:
                it.call, it.action = "create", "created"  # a new customer has no addresses
            else:
                unmatched.append(it)
        self._match_addresses(unmatched)
        self._execute(ADDRESS, ready, out)
        return out

    def _with_parents(self, items: list[Item], out: Outcome) -> list[Item]:
        """Items whose customer is on the target (or would be, in a dry run)."""
        parents = self.idmap.get(CUSTOMER.name, {str(i.parent_key) for i in items})
        ready = []
        for it in items:
            parent = parents.get(str(it.parent_key))
            if it.parent_key in self.faulted:
                out.fault(ADDRESS, it, "customer_faulted",
                          "its customer faulted, so the address is not written",
                          Stage.INTEGRITY)
            elif it.parent_key in self.skipped:
                it.message = "its customer was skipped (--on-existing skip)"
                out.add(ADDRESS, it, "skipped")
            elif self.dry_run and it.parent_key in self.planned:
                it.parent_id = self.planned[str(it.parent_key)]
                ready.append(it)
            elif parent is not None and parent.done:
                it.parent_id = parent.target_id
                ready.append(it)
            else:
                out.fault(ADDRESS, it, "customer_not_migrated",
                          "its customer is not on the target (faulted earlier, or never read)",
                          Stage.INTEGRITY)
        return ready

    def _match_addresses(self, items: list[Item]) -> None:
        """Adopts target addresses with the same content, else plans a create."""
        if not items:
            return
        listed = self.target.addresses(i.parent_id for i in items if i.parent_id is not None)
        ids = [int(r["customer_address_id"]) for rows in listed.values() for r in rows]
        taken = self.idmap.owners(ADDRESS.name, ids)
        for it in items:
            rows = listed.get(int(it.parent_id or 0), [])
            row = next((r for r in rows if taken.get(int(r["customer_address_id"]), it.key)
                        == it.key and same_address(it.payload, r)), None)
            if row is None:
                it.call, it.action = "create", "created"
                continue
            it.target_id = int(row["customer_address_id"])
            taken[it.target_id] = it.key
            pending = it.entry is not None and it.entry.state == PENDING
            it.call, it.action, it.record = None, ("created" if pending else "unchanged"), True
            flags = ("is_default_billing", "is_default_shipping")
            if any(it.payload.get(f) and not row.get(f) for f in flags) or (
                    "created_at" in it.payload
                    and _text(it.payload["created_at"]) != _text(row.get("created_at"))):
                it.call = "update"  # the content is there, a flag or created_at is not
                it.action = "created" if pending else "updated"

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
                out.add(ADDRESS, Item(e.source_key, {}, 0, target_id=e.target_id,
                                      message="deleted with its customer"), "deleted")
        self._execute(ADDRESS, self._deletes([e for e in addresses
                                              if e.parent_key not in gone]), out)
        if not self.dry_run:
            self.idmap.forget_children(deleted)
        return out

    @staticmethod
    def _deletes(entries: list[Entry]) -> list[Item]:
        return [Item(e.source_key, {}, 0, target_id=e.target_id, entry=e, call="delete",
                     action="deleted") for e in entries]

    # --- writing --------------------------------------------------------------------------

    def _execute(self, entity: Entity, items: list[Item], out: Outcome) -> None:
        """Writes what the items need, records the answers, reports every item."""
        if self.dry_run:
            for it in items:
                if entity is CUSTOMER and it.action in ("created", "updated", "unchanged"):
                    self.planned[it.key] = it.target_id
                if entity is CUSTOMER and it.call == "delete":
                    self.deleted.add(it.key)
                out.add(entity, it, it.action)
            return
        adopted = [i for i in items if i.call is None and i.record]
        self._record(entity, adopted, out)
        for it in items:
            if it.call is None and not it.record:
                out.add(entity, it, it.action)
        todo = [i for i in items if i.call]
        self._intend(entity, [i for i in todo if i.call == "create"])
        for _ in range(2):
            todo = self._send(entity, todo, out)
            if not todo:
                return
            todo = self._resolve(entity, todo, out)
        for it in todo:
            out.fault(entity, it, "outcome_unknown",
                      f"{it.call}: the store's answer was lost twice ({it.unknown}); the "
                      "next run looks for it on the target before writing again")

    def _call(self, entity: Entity, it: Item) -> tuple[str, list[Any]]:
        resource = "customer" if entity is CUSTOMER else "customer_address"
        args: list[Any]
        if it.call == "create":
            args = [it.payload] if entity is CUSTOMER else [it.parent_id, it.payload]
        elif it.call == "update":
            args = [it.target_id, update_payload(entity, it.payload)]
        else:
            args = [it.target_id]
        return f"{resource}.{it.call}", args

    def _send(self, entity: Entity, items: list[Item], out: Outcome) -> list[Item]:
        """One pass of writes; returns the items to look at again."""
        again: list[Item] = []
        for indices, results in self.target.write([self._call(entity, i) for i in items]):
            if self.hook is not None:
                self.hook(entity.name, len(indices))
            landed, refused = [], []
            for index, result in zip(indices, results, strict=True):
                it = items[index]
                if isinstance(result, OutcomeUnknown):
                    it.unknown = result.reason
                    again.append(it)
                elif isinstance(result, MagentoCallFault):
                    if self._vanished(it, result):
                        again.append(it)
                        continue
                    out.fault(entity, it, f"store_fault_{result.code}", result.fault_message)
                    refused.append(it)
                    if entity is ADDRESS and it.call == "create" and result.code == NO_CUSTOMER:
                        # Its customer was deleted on the target: map it afresh next run.
                        self.idmap.forget(CUSTOMER.name, [str(it.parent_key)])
                else:
                    if it.call == "create":
                        it.target_id = int(result)
                    landed.append(it)
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

    def _vanished(self, it: Item, fault: MagentoCallFault) -> bool:
        """An update of a record deleted on the target since: create it again."""
        if it.call == "delete" and fault.code == NOT_EXISTS:
            it.unknown = None  # already gone: resolved as deleted in _resolve
            return True
        if it.call != "update" or fault.code != NOT_EXISTS:
            return False
        it.call, it.target_id, it.entry, it.action = "create", None, None, "created"
        return True

    def _refused(self, entity: Entity, items: list[Item]) -> None:
        if entity is CUSTOMER:
            self.faulted.update(i.key for i in items)
        # A refused create never landed: drop its pending entry.
        self.idmap.forget(entity.name, [i.key for i in items if i.call == "create"])

    def _resolve(self, entity: Entity, items: list[Item], out: Outcome) -> list[Item]:
        """Looks up creates whose outcome is unknown; returns what to send again."""
        gone = [i for i in items if i.call == "delete" and i.unknown is None]
        self._record(entity, gone, out)
        items = [i for i in items if i not in gone]
        lost = [i for i in items if i.call == "create" and i.unknown is not None]
        for it in lost:  # the create may have landed: look for it as a pending one
            it.entry = replace(it.entry or Entry(it.key, PENDING), state=PENDING,
                               payload_hash=it.hash)
        if lost and entity is CUSTOMER:
            self._match_customers(lost, out)
        elif lost:
            self._match_addresses(lost)
        self._record(entity, [i for i in lost if i.call is None and i.record], out)
        self._intend(entity, [i for i in items if i.call == "create" and i.unknown is None])
        return [i for i in items if i.call]

    def _intend(self, entity: Entity, items: list[Item]) -> None:
        """Writes creates ahead as pending, so a crash after the store's answer is found."""
        self.idmap.put(entity.name, [self._entry(i, PENDING) for i in items], self.run_id)

    def _record(self, entity: Entity, items: list[Item], out: Outcome) -> None:
        """Records answered writes as done (deletes: forgotten) and reports them."""
        if not items:
            return
        deleted = [i.key for i in items if i.call == "delete"]
        self.idmap.forget(entity.name, deleted)
        if entity is CUSTOMER:
            self.deleted.update(deleted)
        self.idmap.put(entity.name, [self._entry(i, DONE) for i in items
                                     if i.call != "delete"], self.run_id)
        for it in items:
            if entity is CUSTOMER and it.call == "create" and it.target_id is not None:
                self.created.add(it.target_id)
            out.add(entity, it, it.action)

    def _entry(self, it: Item, state: str) -> Entry:
        if it.parent_key is None:  # a customer: parent_id is its target website
            return Entry(it.key, state, it.target_id, it.website, it.email, None, it.hash,
                         field_digests(it.payload))
        return Entry(it.key, state, it.target_id, it.parent_id, None, it.parent_key, it.hash,
                     field_digests(it.payload))
