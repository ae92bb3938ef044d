"""Verifying a migration: re-read the target and compare it with the source, field by field.

The source is read and de-duplicated exactly as a migration reads it
(load/migration.py::read_batch). Each source customer is found on the target through the
id map, else by (website, lower(email)); its target record and addresses are read back
and typed by the same normalisation, then compared on every schema field except those
transform.compare.NOT_COMPARED names. Target addresses are kept in a temporary on-disk
table until the end, where those no source address matched are reported (as differences
when magsync wrote them).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from magsync.extract.soap_source import raw_frame
from magsync.load.idmap import IdMap
from magsync.load.magento_target import MagentoTarget, StoreMaps, address_payload
from magsync.load.migration import read_batch
from magsync.load.migration_plan import same_address
from magsync.transform.batch import RawBatch
from magsync.transform.compare import (
    NOT_IN_SOURCE_KIND,
    Difference,
    compare_record,
    unknowable_fields,
)
from magsync.transform.prepare import prepare
from magsync.transform.schema import ADDRESS, CUSTOMER, GROUP, KEY_COL, Entity

Report = Callable[[Difference], None]


@dataclass
class VerifyResult:
    """What verify compared and every difference it found."""

    customers: int = 0
    addresses: int = 0
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_in_source: Counter[tuple[str, str]] = field(default_factory=Counter)  # (entity, field)
    why_not: dict[tuple[str, str], str] = field(default_factory=dict)


class _Scratch:
    """Target addresses read so far (a private temporary SQLite file) and which customer
    each source customer key landed on."""

    def __init__(self) -> None:
        self.db = sqlite3.connect("")
        self.db.executescript(
            "CREATE TABLE addr (id INTEGER PRIMARY KEY, customer INTEGER, row TEXT, "
            "matched INTEGER DEFAULT 0); CREATE INDEX addr_c ON addr (customer);"
            "CREATE TABLE cust (key TEXT PRIMARY KEY, id INTEGER);")

    def put(self, keys: dict[str, int], listed: dict[int, list[dict[str, Any]]]) -> None:
        rows = [(int(r["customer_address_id"]), cid, json.dumps(r, default=str))
                for cid, addrs in listed.items() for r in addrs]
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO cust VALUES (?, ?)", keys.items())
            self.db.executemany("INSERT OR IGNORE INTO addr (id, customer, row) "
                                "VALUES (?, ?, ?)", rows)

    def customer(self, key: str) -> int | None:
        row = self.db.execute("SELECT id FROM cust WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def open_addresses(self, customer: int) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT row FROM addr WHERE customer = ? AND matched = 0 "
                               "ORDER BY id", (customer,))
        return [json.loads(r[0]) for r in rows]

    def match(self, address_id: int) -> None:
        with self.db:
            self.db.execute("UPDATE addr SET matched = 1 WHERE id = ?", (address_id,))

    def unmatched(self) -> list[tuple[int, int]]:
        return [(int(a), int(c)) for a, c in
                self.db.execute("SELECT id, customer FROM addr WHERE matched = 0 ORDER BY id")]


def _typed(entity: Entity, rows: list[dict[str, Any]], source: str,
           gender_labels: Mapping[str, int]) -> tuple[dict[int, dict[str, Any]], dict[int, str]]:
    """Target records typed by the source's normalisation, by target id; and the ids of
    those the normalisation rejects, with why."""
    if not rows:
        return {}, {}
    frame = raw_frame(entity, rows, source, [0] * len(rows))
    prepared = prepare(RawBatch(entity, frame), gender_labels)
    id_col = entity.id_key[0]
    typed = {int(r[id_col]): {str(k): v for k, v in r.items()}
             for r in prepared.frame.to_dict("records")}
    bad = {int(json.loads(f.key)[0]): f.message for f in prepared.faults if f.key}
    return typed, bad


class Verifier:
    """Compares source batches with the target as they come."""

    def __init__(self, target: MagentoTarget, idmap: IdMap, maps: StoreMaps,
                 gender_labels: Mapping[str, int], report: Report,
                 formats: Iterable[str] = ()) -> None:
        self.target, self.idmap, self.maps, self.report = target, idmap, maps, report
        self.gender_labels = gender_labels
        self.unknowable = {e.name: unknowable_fields(formats, e) for e in (CUSTOMER, ADDRESS)}
        self.result = VerifyResult()
        self.scratch = _Scratch()

    def differ(self, diffs: Iterable[Difference]) -> None:
        """Keeps and reports differences; counts fields the source cannot express."""
        for diff in diffs:
            if diff.kind == NOT_IN_SOURCE_KIND and diff.field:
                self.result.not_in_source[(diff.entity, diff.field)] += 1
                self.result.why_not[(diff.entity, diff.field)] = diff.note or ""
                continue
            self.result.differences.append(diff)
            self.report(diff)

    def customers(self, frame: pd.DataFrame) -> None:
        """Compares a batch of source customers with their target records."""
        rows = frame.to_dict("records")
        ids, taken = self._target_ids(rows)
        actual, bad = _typed(CUSTOMER, self.target.customers(ids.values()),
                             self.target.describe(), self.gender_labels)
        for row in rows:
            key = str(row[KEY_COL])
            tid = ids.get(key)
            self.result.customers += 1
            if tid is None or tid not in actual:
                note = f"unreadable on the target: {bad[tid]}" if tid in bad else \
                    taken.get(key)
                self.differ([Difference(CUSTOMER.name, key, tid, None, "missing", note=note)])
                continue
            self.differ(compare_record(CUSTOMER, key, tid, self._expected(row), actual[tid],
                                       self.unknowable[CUSTOMER.name]))
        found = {k: t for k, t in ids.items() if t in actual}
        self.scratch.put(found, self.target.addresses(found.values()))

    def _expected(self, row: dict[Any, Any]) -> dict[str, Any]:
        """The source record with website, store and group ids mapped to the target's."""
        expected = {str(k): v for k, v in row.items()}
        expected["email"] = str(row["email"]).lower()  # Magento compares it so, too
        expected["website_id"] = self.maps.website(int(row["website_id"]))
        if not pd.isna(row["store_id"]):
            expected["store_id"] = self.maps.store(int(row["store_id"]))
        if not pd.isna(row["group_id"]):
            expected["group_id"] = self.maps.group(int(row["group_id"]))[0]
        return expected

    def _target_ids(self, rows: list[dict[Any, Any]]) -> tuple[dict[str, int], dict[str, str]]:
        """Source key -> target customer id (the id map's, else found by email); and why
        a customer found by email is not its counterpart (another record owns it)."""
        keys = [str(r[KEY_COL]) for r in rows]
        mapped = {k: e.target_id for k, e in self.idmap.get(CUSTOMER.name, keys).items()
                  if e.done and e.target_id is not None}
        rest = [r for r in rows if str(r[KEY_COL]) not in mapped]
        taken: dict[str, str] = {}
        if rest:
            found = {(int(c["website_id"]), str(c["email"]).lower()): int(c["customer_id"])
                     for c in self.target.find_customers(str(r["email"]).lower() for r in rest)}
            owners = self.idmap.owners(CUSTOMER.name, found.values())
            for r in rest:
                ident = (self.maps.website(int(r["website_id"])), str(r["email"]).lower())
                tid = found.get(ident)
                if tid is not None and tid in owners:
                    taken[str(r[KEY_COL])] = (f"its email belongs to target customer {tid}, "
                                              f"migrated from source record {owners[tid]}")
                elif tid is not None:
                    mapped[str(r[KEY_COL])] = tid
        return mapped, taken

    def addresses(self, frame: pd.DataFrame) -> None:
        """Compares a batch of source addresses with the target addresses they match."""
        mapped = self.idmap.get(ADDRESS.name, frame[KEY_COL].tolist())
        pairs: list[tuple[str, dict[Any, Any], int, dict[str, Any]]] = []
        for row in frame.to_dict("records"):
            key = str(row[KEY_COL])
            self.result.addresses += 1
            customer = self.scratch.customer(str(row["customer_key"]))
            candidates = [] if customer is None else self.scratch.open_addresses(customer)
            entry = mapped.get(key)
            chosen = next((c for c in candidates if entry is not None
                           and c["customer_address_id"] == entry.target_id), None)
            if chosen is None:
                payload = address_payload(row)
                chosen = next((c for c in candidates if same_address(payload, c)), None)
            if chosen is None:
                why = "its customer is not on the target" if customer is None else \
                    "no address of the target customer matches it"
                self.differ([Difference(ADDRESS.name, key, None, None, "missing", note=why)])
                continue
            self.scratch.match(int(chosen["customer_address_id"]))
            pairs.append((key, row, customer or 0, chosen))
        typed, bad = _typed(ADDRESS, [{**c, "customer_id": cid} for _, _, cid, c in pairs],
                            self.target.describe(), self.gender_labels)
        for key, row, _, chosen in pairs:
            aid = int(chosen["customer_address_id"])
            if aid in bad:
                self.differ([Difference(ADDRESS.name, key, aid, None, "missing",
                                        note=f"unreadable on the target: {bad[aid]}")])
                continue
            self.differ(compare_record(ADDRESS, key, aid, {str(k): v for k, v in row.items()},
                                       typed[aid], self.unknowable[ADDRESS.name]))

    def finish(self) -> VerifyResult:
        """Target addresses no source address matched."""
        left = self.scratch.unmatched()
        owners = self.idmap.owners(ADDRESS.name, [a for a, _ in left])
        ours = [(a, c) for a, c in left if a in owners]
        self.differ(Difference(ADDRESS.name, owners[a], a, None, "extra",
                               note=f"on target customer {c}, written by magsync, not in "
                                    "the source (--delete-missing removes it)")
                    for a, c in ours)
        for (entity, name), count in sorted(self.result.not_in_source.items()):
            self.result.notes.append(
                f"{count} {entity}(s): {name} not in the source, not compared: "
                f"{self.result.why_not[(entity, name)]}")
        if len(left) > len(ours):
            self.result.notes.append(
                f"{len(left) - len(ours)} address(es) of migrated customers exist only on "
                "the target and were not written by magsync: left alone, not compared")
        return self.result




def verify_batches(verifier: Verifier, batches: Iterable[RawBatch], idmap: IdMap,
                   gender_labels: Mapping[str, int]) -> VerifyResult:
    """Compares every source batch with the target; the result once all are read."""
    for raw in batches:
        batch = read_batch(raw, idmap, None, gender_labels)
        entity = batch.prepared.entity
        verifier.differ(Difference(
            f.entity, f.key or "", None, f.column, "unreadable",
            note=f"in the source, line {f.source_line} ({f.rule}): not compared")
            for f in batch.faults)
        if entity is GROUP:
            verifier.maps.learn_groups(batch.frame)
        elif entity is CUSTOMER:
            verifier.customers(batch.frame)
        else:
            verifier.addresses(batch.frame)
    return verifier.finish()
