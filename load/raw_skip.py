"""Skipping unchanged records before they are typed.

Every raw batch gets its raw digests (transform/rawdigest.py), carried to staging in the
`raw_digest` column. A record whose raw digest is that of an active stored row this run
has not seen yet is unchanged: it is counted received and unchanged, its stored row is
marked seen (delete detection and fault clearing see it), and it leaves the batch before
normalisation, validation and hashing. Everything else takes the usual road.

What typing a record would have done beyond its own row is done for skipped records too:
a customer's website and store codes are checked (and learned, in input order) over the
whole batch, and a record whose codes fault is not skipped; a skipped customer's group id
still makes a derived group. A soft-deleted stored row is never skipped (it must be
restored), nor is a second record of a key in one run (its row is seen already).

A skipped record ends as the diff would have left it, even beside another record of its
key: across batches the later record is never skipped (see above), and within a batch
`KeyIndex.classify` compares every record with the stored row alone, so a record equal to
it is unchanged there too, whatever the batch's other records of its key do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from magsync.load.refault import Refaults, StillFaulted
from magsync.load.report import RunReport
from magsync.transform.batch import RawBatch
from magsync.transform.codes import StoreCodes
from magsync.transform.diff import Action, KeyIndex
from magsync.transform.normalise import normalise
from magsync.transform.prepare import Prepared, prepare
from magsync.transform.rawdigest import context_digest, raw_digests
from magsync.transform.schema import CUSTOMER, KEY_COL, RAW_DIGEST_COL

# The columns a skipped customer still needs typed: its codes, and its group (derived groups)
CUSTOMER_COLUMNS = ("website_code", "website_id", "store_code", "store_id", "group_id")


@dataclass
class RawSkip:
    """Prepares a run's batches, leaving out the unchanged records when `enabled`, and
    re-reporting those still faulted from `refaults` (load/refault.py)."""

    indexes: Mapping[str, KeyIndex]
    report: RunReport
    group_ids: set[int]  # the stager's: groups that customers refer to
    gender_labels: Mapping[str, int]
    codes: StoreCodes | None
    enabled: bool = True
    # per entity, the earlier typing contexts its stored rows may have been typed under
    earlier: Mapping[str, Sequence[str]] = field(default_factory=dict)
    refaults: Refaults = field(default_factory=lambda: Refaults({}))

    def __post_init__(self) -> None:
        websites = self.codes.websites.ids if self.codes is not None else {}
        self.context = context_digest(self.gender_labels, websites)

    def prepare(self, raw: RawBatch) -> Prepared:
        """prepare() of the batch's records, less the unchanged ones (counted here) and
        those still faulted (re-reported here)."""
        with self.report.timed("raw digest"):
            digests = raw_digests(raw.frame, self.context)
            before = [] if raw.derived else [raw_digests(raw.frame, context) for context
                                             in self.earlier.get(raw.entity.name, ())]
        full = replace(raw, frame=raw.frame.assign(**{RAW_DIGEST_COL: digests}))
        index = self.indexes[raw.entity.name]
        if not self.enabled or raw.derived:
            return mark_raw_before(index, raw, self._prepare(full, self.codes), before)
        again = self.refaults.match(raw.entity.name, digests, index)
        faulted = np.array([a is not None for a in again], bool)
        pos = index.same_raw(digests)
        skip = (pos >= 0) & ~faulted
        if not skip.any() and not faulted.any():
            return mark_raw_before(index, raw, self._prepare(full, self.codes), before)
        codes = self.codes
        group_ids: list[int] = []
        if raw.entity is CUSTOMER:
            frame = full.frame
            typed = normalise(CUSTOMER, frame[[c for c in CUSTOMER_COLUMNS
                                               if c in frame.columns]], {}).frame
            if codes is not None:
                wrong = frame.index.isin(list(codes.check(typed)))  # learns, in input order
                skip &= ~wrong
                faulted &= ~wrong
                codes = codes.learned()
            validated = faulted & np.array([a is not None and a.validated for a in again])
            group_ids = typed["group_id"][skip | validated].dropna().astype(int).tolist()
        rest, faulted = self._prepare_rest(full, skip, faulted, again, codes)
        index.seen[pos[skip]] = True
        n = int(skip.sum())
        rest.received[raw.entity.name] += n
        self.report.count(raw.entity.name, Action.UNCHANGED.value, n)
        self.report.skipped[raw.entity.name] += n
        self.group_ids.update(group_ids)
        return mark_raw_before(index, raw, rest, before)

    def _prepare_rest(self, full: RawBatch, skip: np.ndarray, faulted: np.ndarray,
                      again: list[StillFaulted | None], codes: StoreCodes | None,
                      ) -> tuple[Prepared, np.ndarray]:
        """prepare() of the records neither skipped nor re-reported, then the re-reported
        ones added as faulted; a key that another record of the batch has is typed too."""
        first = ~(skip | faulted)
        rest = self._prepare(replace(full, frame=full.frame[first]), codes)
        if faulted.any():
            keys = [a.key if a is not None and f else None for a, f in zip(again, faulted,
                                                                         strict=True)]
            met = set(rest.frame[KEY_COL].tolist()) | set(rest.faulted_keys)
            clash = np.array([k is not None and k in met for k in keys], bool)
            if clash.any():  # typed after all, beside the other record(s) of its key
                self.report.typed[full.entity.name] -= int(first.sum())
                faulted &= ~clash
                rest = self._prepare(replace(full, frame=full.frame[~(skip | faulted)]), codes)
            self._add_refaulted(full, rest, faulted, again)
        return rest, faulted

    def _add_refaulted(self, full: RawBatch, rest: Prepared, faulted: np.ndarray,
                       again: list[StillFaulted | None]) -> None:
        name = full.entity.name
        chosen = [a for a, f in zip(again, faulted, strict=True) if a is not None and f]
        rest.faults.extend(self.refaults.faults(name, full.frame[faulted], chosen))
        rest.faulted_keys.extend(a.key for a in chosen)
        rest.received[name] += len(chosen)
        rest.faulted_records[name] += len(chosen)
        self.report.refaulted[name] += len(chosen)

    def _prepare(self, batch: RawBatch, codes: StoreCodes | None) -> Prepared:
        self.report.typed[batch.entity.name] += len(batch.frame)
        return prepare(batch, self.gender_labels, codes)


def mark_raw_before(index: KeyIndex, raw: RawBatch, prepared: Prepared,
                    before: Sequence[np.ndarray]) -> Prepared:
    """Marks, in `index.raw_before`, the stored rows whose record came in with the raw
    digest they hold under one of the earlier typing contexts (`before`: the batch's raw
    digests under each): raw values unchanged, so a change of their typed values is a
    re-typing (load/typing_context.py). Returns `prepared`."""
    frame = prepared.frame
    if not before or frame.empty or not raw.frame.index.is_unique:
        return prepared
    rows = raw.frame.index.get_indexer(frame.index)  # each typed row's raw row
    pos = index.positions(frame[KEY_COL])
    mine = (rows >= 0) & (pos >= 0)
    rows, pos = rows[mine], pos[mine]
    known = index.raw_known[pos]
    same = np.zeros(len(pos), bool)
    for digests in before:
        same |= known & (digests[rows] == index.raw[pos])
    index.raw_before[pos[same]] = True
    return prepared


def stale_digests(index: KeyIndex, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of `frame` (found unchanged) whose stored raw digest is missing or
    another: the target must learn theirs (none for rows without one, derived groups)."""
    if frame.empty or RAW_DIGEST_COL not in frame.columns:
        return frame.iloc[:0]
    stored, known = index.stored_raw(frame[KEY_COL])
    mine = frame[RAW_DIGEST_COL].to_numpy(dtype=np.int64)
    stale: pd.DataFrame = frame[~known | (stored != mine)]
    return stale
