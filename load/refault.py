"""Re-reporting records that are still faulted, without typing or validating them.

Every fault is stored with its record's raw digest (transform/rawdigest.py) and the run's
suite digest (transform/suite_identity.py). A record of a later run is re-reported from
its key's open faults, as the same faults at the record's current file and line, when:

- its raw digest is the one stored on every open fault of its key (one record's faults),
  all of them written under this run's suite digest;
- each of those faults came from the record alone: a normalise fault (the context of the
  raw digest holds what typing depends on), or a validation fault of an expectation that
  judges each row by itself (`SuiteValidator.stable_rules`). A key with an integrity
  fault (a duplicate, an unknown or faulted parent, a website or store code) takes the
  usual road, as does a keyless record;
- its key has not come in already in this run, and no other record of the batch has it.

So a run validates only records that are new, changed, or faulted for reasons beyond
themselves: an unchanged re-sync does not import Great Expectations at all. `--revalidate`
(or `revalidate = true`), or any edit of a suite, takes every record the usual road.

Known gap: a record re-reported here is not checked against the records that come after it
in the run (a later record of its key, in the same validation chunk, would have made it a
`duplicate_key` fault), nor against its parent (an address whose customer vanished or
faulted since gets its stored fault, not `customer_faulted`). The counts are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from magsync.transform.diff import KeyIndex
from magsync.transform.faults import Fault, Stage
from magsync.transform.schema import LINE_COL, SOURCE_COL
from magsync.transform.values import opt_int, opt_str

Rules = Callable[[str], frozenset[tuple[str, str | None]]]


@dataclass(frozen=True)
class StillFaulted:
    """The open faults of one key, all raised by one record (its raw digest)."""

    key: str
    faults: tuple[Fault, ...]  # without source location: the record's current one is set
    validated: bool  # faulted by its suite: it was typed, and its group id counted


def _stored_fault(row: Mapping[str, Any]) -> Fault:
    return Fault(entity=str(row["entity"]), stage=Stage(row["stage"]), rule=str(row["rule"]),
                 message=str(row["message"]), key=str(row["record_key"]),
                 column=row["column_name"], value=row["value"],
                 raw_digest=int(row["raw_digest"]))


def _from_record_alone(row: Mapping[str, Any], suite_digest: str, stable: Rules) -> bool:
    if row["raw_digest"] is None or row["suite_digest"] != suite_digest:
        return False
    if row["stage"] == Stage.NORMALISE.value:
        return True
    return (row["stage"] == Stage.VALIDATE.value
            and (row["rule"], row["column_name"]) in stable(str(row["entity"])))


def still_faulted(rows: Iterable[Mapping[str, Any]], suite_digest: str,
                  stable: Rules) -> dict[str, dict[int, StillFaulted]]:
    """Per entity, raw digest -> the key's faults, for the keys that may be re-reported.
    A digest that two keys' faults share names neither."""
    by_key: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        by_key.setdefault((str(row["entity"]), str(row["record_key"])), []).append(row)
    out: dict[str, dict[int, StillFaulted]] = {}
    shared: set[tuple[str, int]] = set()
    for (entity, key), faults in by_key.items():
        digests = {r["raw_digest"] for r in faults}
        if len(digests) != 1 or not all(_from_record_alone(r, suite_digest, stable)
                                        for r in faults):
            continue
        digest = int(faults[0]["raw_digest"])
        entries = out.setdefault(entity, {})
        if digest in entries:
            shared.add((entity, digest))
        validated = all(r["stage"] == Stage.VALIDATE.value for r in faults)
        entries[digest] = StillFaulted(key, tuple(_stored_fault(r) for r in faults), validated)
    for entity, digest in shared:
        del out[entity][digest]
    return out


@dataclass
class Refaults:
    """The run's re-reportable records, and the keys it re-reported so far."""

    stored: dict[str, dict[int, StillFaulted]]
    reported: dict[str, set[str]] = field(default_factory=dict)

    def match(self, entity: str, digests: np.ndarray, index: KeyIndex) -> list[StillFaulted | None]:
        """Per record, what it is re-reported as, or None: its digest names no open
        faults, or its key came in already in this run, or came earlier in the batch."""
        stored = self.stored.get(entity)
        if not stored:
            return [None] * len(digests)
        found = [stored.get(d) for d in digests.tolist()]
        keys = [f.key for f in found if f is not None]
        if not keys:
            return found
        pos = index.positions(keys)
        met = index.new_keys.contains(keys)
        met[pos >= 0] |= index.seen[pos[pos >= 0]]
        met |= np.fromiter((k in self.reported.get(entity, ()) for k in keys), bool, len(keys))
        met |= pd.Series(keys).duplicated().to_numpy(dtype=bool)
        late = iter(met.tolist())
        return [None if f is None or next(late) else f for f in found]

    def faults(self, entity: str, rows: pd.DataFrame, again: list[StillFaulted]) -> list[Fault]:
        """The stored faults of `again`, located at `rows` (their records, in order)."""
        sources = rows[SOURCE_COL].tolist() if SOURCE_COL in rows.columns else [None] * len(rows)
        lines = rows[LINE_COL].tolist() if LINE_COL in rows.columns else [None] * len(rows)
        self.reported.setdefault(entity, set()).update(s.key for s in again)
        return [replace(f, source=opt_str(src), source_line=opt_int(line))
                for s, src, line in zip(again, sources, lines, strict=True) for f in s.faults]


def load_refaults(rows: list[dict[str, Any]], suite_digest: str | None,
                  stable: Rules) -> Refaults:
    """The re-reportable records among a target's open faults (none when not validating)."""
    if suite_digest is None:
        return Refaults({})
    return Refaults(still_faulted(rows, suite_digest, stable))
