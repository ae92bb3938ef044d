"""Change detection: each record against the stored row hashes of its entity.

The index holds, per stored key, only its row hash and whether it is soft-deleted: a
compact view of the target, not the target's rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

import numpy as np
import pandas as pd
import pyarrow as pa

from magsync.transform.keyset import KeyLookup, KeySet, KeysLike, as_arrow


class Action(StrEnum):
    """What happened, or would happen, to a record."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    RESTORED = "restored"
    DELETED = "deleted"
    FAULTED = "faulted"


WRITES = (Action.CREATED, Action.UPDATED, Action.RESTORED)


class KeyIndex:
    """Stored keys with their row hashes; remembers which keys this run has seen.

    Keys stay in Arrow buffers (see transform.keyset): a pandas string index would hold a
    Python str per key once searched, 400 MB for a million-customer store."""

    def __init__(self, keys: KeysLike, hashes: np.ndarray, deleted: np.ndarray,
                 raw: np.ndarray | None = None, raw_known: np.ndarray | None = None) -> None:
        self._arrow = as_arrow(keys)
        self.keys = pd.Index(self._arrow.to_pandas(), dtype="str")  # shares the buffers
        self.hashes = np.asarray(hashes, dtype=np.int64)
        self.deleted = np.asarray(deleted, dtype=bool)
        self.seen = np.zeros(len(self.keys), dtype=bool)
        self.written = np.zeros(len(self.keys), dtype=bool)  # stored keys planned a write
        self.new_keys = KeySet()
        self._lookup: KeyLookup | None = None
        # the stored raw digests (transform/rawdigest.py); raw_known: not null
        self.raw = np.zeros(len(self.hashes), np.int64) if raw is None else np.asarray(
            raw, dtype=np.int64)
        self.raw_known = np.zeros(len(self.hashes), bool) if raw_known is None else \
            np.asarray(raw_known, dtype=bool)
        self._raw_lookup: tuple[np.ndarray, np.ndarray] | None = None
        # stored rows received again with the same raw values, digested under an earlier
        # typing context: a change of their typed values is a re-typing (load/typing_context)
        self.raw_before = np.zeros(len(self.hashes), bool)

    @classmethod
    def empty(cls) -> KeyIndex:
        """An index of an empty store."""
        return cls([], np.empty(0, np.int64), np.empty(0, bool))

    @property
    def active_count(self) -> int:
        """Stored keys that are not soft-deleted."""
        return int((~self.deleted).sum())

    def positions(self, keys: KeysLike) -> np.ndarray:
        """The position of each key among the stored keys, or -1."""
        if self._lookup is None:
            self._lookup = KeyLookup(self._arrow)
        return self._lookup.positions(keys)

    def key_array(self, positions: np.ndarray) -> pa.Array:
        """The stored keys at `positions`, as Arrow strings."""
        return self._arrow.take(pa.array(positions, pa.int64()))

    def classify(self, keys: pd.Series, hashes: np.ndarray, *,
                 create_only: bool = False) -> np.ndarray:
        """The action per row; marks the keys seen (a repeated key is classified again:
        the pipeline keeps its last occurrence). A stored key already planned a write in
        this run is an update even when it matches the stored hash: an earlier record of
        it may be staged already, and the last record must be the one that stays."""
        pos = self.positions(keys)
        known = pos >= 0
        actions = np.full(len(keys), Action.CREATED.value, dtype=object)
        stored = pos[known]
        same = self.hashes[stored] == hashes[known]
        same &= ~self.written[stored]
        known_actions = np.where(same, Action.UNCHANGED.value, Action.UPDATED.value)
        known_actions = np.where(self.deleted[stored], Action.RESTORED.value, known_actions)
        if create_only:
            known_actions[:] = Action.UNCHANGED.value
        actions[known] = known_actions
        self.seen[stored] = True
        self.written[stored[known_actions != Action.UNCHANGED.value]] = True
        self.new_keys.update(keys[~known])
        return actions

    def same_raw(self, raw: np.ndarray) -> np.ndarray:
        """For each raw digest, the position of the stored row it can stand for, or -1:
        an active stored row with that raw digest, not seen in this run yet, and only for
        the first of the digests that name it (a repeated record is never skipped twice).
        A digest two stored rows share (a collision) names none. Marks nothing seen."""
        if self._raw_lookup is None:
            known = np.flatnonzero(self.raw_known & ~self.deleted)
            order = known[np.argsort(self.raw[known], kind="stable")]
            ordered = self.raw[order]
            shared = np.zeros(len(order), bool)
            twice = ordered[1:] == ordered[:-1]
            shared[1:] |= twice
            shared[:-1] |= twice
            self._raw_lookup = (ordered[~shared], order[~shared])
        ordered, order = self._raw_lookup
        pos = np.full(len(raw), -1, np.int64)
        if not len(ordered) or not len(raw):
            return pos
        at = np.minimum(np.searchsorted(ordered, raw), len(ordered) - 1)
        hit = np.flatnonzero(ordered[at] == raw)
        candidate = order[at[hit]].astype(np.int64)
        fresh = ~self.seen[candidate] & ~self.deleted[candidate]
        hit, candidate = hit[fresh], candidate[fresh]
        _, first = np.unique(candidate, return_index=True)  # hits are in row order
        pos[hit[first]] = candidate[first]
        return pos

    def stored_raw(self, keys: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """The stored raw digest of each key, and whether there is one (a stored key
        with a non-null digest)."""
        pos = self.positions(keys)
        known = np.zeros(len(pos), bool)
        raw = np.zeros(len(pos), np.int64)
        hit = pos >= 0
        known[hit] = self.raw_known[pos[hit]]
        raw[hit] = self.raw[pos[hit]]
        return raw, known

    def exists(self, keys: pd.Series) -> np.ndarray:
        """Whether each key names a row that exists after this run (stored and active or
        seen again, or new in this run)."""
        pos = self.positions(keys)
        hit = pos >= 0
        out = np.zeros(len(keys), bool)
        out[hit] = ~self.deleted[pos[hit]] | self.seen[pos[hit]]
        result: np.ndarray = out | self.new_keys.contains(keys)
        return result

    def mark_present(self, keys: Iterable[str]) -> None:
        """Marks keys present in the snapshot even though their records faulted."""
        pos = self.positions(list(keys))
        self.seen[pos[pos >= 0]] = True

    def received(self, keys: list[str]) -> np.ndarray:
        """Whether each key came in this run (stored and seen, or new)."""
        pos = self.positions(keys)
        seen = np.zeros(len(keys), bool)
        seen[pos >= 0] = self.seen[pos[pos >= 0]]
        out: np.ndarray = seen | self.new_keys.contains(keys)
        return out

    def absent(self) -> list[str]:
        """Active stored keys this run has not seen: candidates for deletion."""
        absent: list[str] = self.keys[~self.seen & ~self.deleted].tolist()
        return absent


def changed_fields(new: pd.DataFrame, old: pd.DataFrame, columns: list[str]) -> pd.Series:
    """For rows aligned by index, the names of the columns whose values differ."""
    diffs = []
    for col in columns:
        a, b = new[col], old[col]
        differs = ~((a == b).fillna(False) | (a.isna() & b.isna()))
        diffs.append(differs.to_numpy(dtype=bool))
    matrix = np.column_stack(diffs) if diffs else np.zeros((len(new), 0), bool)
    names = np.array(columns, dtype=object)
    return pd.Series([",".join(names[row]) for row in matrix], index=new.index, dtype="str")
