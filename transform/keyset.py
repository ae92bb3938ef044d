"""Exact key lookups over Arrow strings, without a Python object per key.

A pandas string Index materialises every key as a Python str once it is searched (about
140 bytes per key: 400 MB for the 3 million keys of a million-customer store). Here the
keys stay in Arrow buffers; lookups go through a 64-bit digest of each key (computed with
numpy on the Arrow buffers), searched among the sorted digests, and every hit is confirmed
by comparing the keys themselves, so a digest collision can never answer wrongly: when two
different keys share a digest, lookups fall back to comparing strings.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_SEED = np.uint64(0x9E3779B97F4A7C15)
_MUL = np.uint64(0xFF51AFD7ED558CCD)
_MUL2 = np.uint64(0xC4CEB9FE1A85EC53)
_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(8)] + [(1 << 64) - 1], np.uint64)

KeysLike: TypeAlias = pa.Array | pa.ChunkedArray | pd.Series | pd.Index | Sequence[str]


def as_arrow(keys: KeysLike) -> pa.Array:
    """Keys as one Arrow string array."""
    if isinstance(keys, pa.ChunkedArray):
        return keys.combine_chunks() if keys.num_chunks != 1 else keys.chunk(0)
    if isinstance(keys, pa.Array):
        return keys
    if isinstance(keys, pd.Series | pd.Index):
        return as_arrow(pa.array(keys, pa.string(), from_pandas=True))
    return pa.array(list(keys), pa.string())


def _mix(h: np.ndarray) -> np.ndarray:
    h ^= h >> np.uint64(33)
    h *= _MUL
    h ^= h >> np.uint64(29)
    h *= _MUL2
    h ^= h >> np.uint64(32)
    return h


def digests(keys: pa.Array) -> np.ndarray:
    """A 64-bit digest of every string, read 8 bytes at a time from Arrow's buffers."""
    arr = keys.cast(pa.large_string())  # 64-bit offsets
    n = len(arr)
    if n == 0:
        return np.empty(0, np.uint64)
    offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset:arr.offset + n + 1]
    data = arr.buffers()[2]
    raw = np.frombuffer(data, np.uint8) if data is not None else np.empty(0, np.uint8)
    starts = offsets[:-1]
    lengths = offsets[1:] - starts
    with np.errstate(over="ignore"):
        h = lengths.astype(np.uint64) * _MUL + _SEED
        for w in range(0, int(lengths.max()), 8):
            rows = np.flatnonzero(lengths > w)
            word = _words(raw, starts[rows] + w)
            word &= _MASKS[np.minimum(lengths[rows] - w, 8)]
            h[rows] = _mix(h[rows] ^ word)
        return _mix(h)


def _words(raw: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The 8 bytes from each position of `raw` as uint64, zero past its end (only the
    last 8 bytes are copied to pad them, never the whole buffer)."""
    word = np.zeros(len(at), np.uint64)
    inside = at + 8 <= len(raw)
    if len(raw) >= 8:
        windows = np.lib.stride_tricks.sliding_window_view(raw, 8)
        word[inside] = np.ascontiguousarray(windows[at[inside]]).view(np.uint64).ravel()
    if not inside.all():
        tail_start = max(0, len(raw) - 8)
        tail = np.concatenate([raw[tail_start:], np.zeros(8, np.uint8)])
        tail_windows = np.lib.stride_tricks.sliding_window_view(tail, 8)
        word[~inside] = np.ascontiguousarray(
            tail_windows[at[~inside] - tail_start]).view(np.uint64).ravel()
    return word


class KeyLookup:
    """Positions of keys among fixed Arrow keys (the first position of a repeated key).

    The digests are kept sorted, with their positions (16 bytes a key, no hash table);
    a probe is a binary search, then a comparison of the keys themselves."""

    def __init__(self, keys: pa.Array, own: np.ndarray | None = None) -> None:
        self.keys = keys
        own = digests(keys) if own is None else own
        order = np.argsort(own, kind="stable")  # int32 where it fits: 4 bytes a key less
        self._order = order.astype(np.int32) if len(order) < 2**31 else order
        self._sorted = own[self._order]
        self._fallback: pd.Series | None = None
        repeat = np.flatnonzero(self._sorted[1:] == self._sorted[:-1])
        if len(repeat):  # repeated keys, or two different keys with one digest
            first = keys.take(pa.array(self._order[repeat]))
            second = keys.take(pa.array(self._order[repeat + 1]))
            if not pc.all(pc.equal(first, second)).as_py():
                by_key = pd.Series(np.arange(len(keys)),
                                   index=pd.Index(keys.to_pandas(), dtype="str"))
                self._fallback = by_key[~by_key.index.duplicated(keep="first")]

    def positions(self, probe: KeysLike, sought: np.ndarray | None = None) -> np.ndarray:
        """The position of each probe key among the keys, or -1 (`sought`: the probe's
        digests, when already known)."""
        wanted = as_arrow(probe)
        pos = np.full(len(wanted), -1, np.int64)
        if self._fallback is not None:  # rare: compare strings
            at = self._fallback.index.get_indexer(pd.Index(wanted.to_pandas(), dtype="str"))
            pos[at >= 0] = self._fallback.to_numpy()[at[at >= 0]]
            return pos
        if not len(self._sorted) or not len(wanted):
            return pos
        sought = digests(wanted) if sought is None else sought
        at = np.minimum(np.searchsorted(self._sorted, sought), len(self._sorted) - 1)
        hit = np.flatnonzero(self._sorted[at] == sought)
        if len(hit):  # confirm each digest hit by comparing the keys
            candidate = self._order[at[hit]]
            same = pc.fill_null(pc.equal(self.keys.take(pa.array(candidate)),
                                         wanted.take(pa.array(hit))), False)
            same = same.to_numpy(zero_copy_only=False)
            pos[hit[same]] = candidate[same]
        return pos


class KeySet:
    """A growing set of keys kept as Arrow strings, with exact membership tests.

    Keys added since the last test become a new lookup segment; a segment no larger than
    the next is merged into it (sizes roughly double from segment to segment), so a key
    is digested once, re-sorted a logarithmic number of times, and a test searches a
    logarithmic number of segments."""

    def __init__(self) -> None:
        self._pending: list[pa.Array] = []
        self._segments: list[tuple[pa.Array, np.ndarray, KeyLookup]] = []

    def update(self, keys: KeysLike) -> None:
        """Adds keys (repeats are harmless)."""
        arr = as_arrow(keys)
        if len(arr):
            self._pending.append(arr)

    def __iter__(self) -> Iterator[str]:
        for keys, _, _ in self._segments:
            yield from keys.to_pylist()
        for chunk in self._pending:
            yield from chunk.to_pylist()

    def __len__(self) -> int:
        return sum(len(k) for k, _, _ in self._segments) + sum(len(c) for c in self._pending)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(self.contains([key])[0])

    def contains(self, keys: KeysLike) -> np.ndarray:
        """Whether each key is in the set."""
        wanted = as_arrow(keys)
        self._settle()
        found = np.zeros(len(wanted), bool)
        sought = digests(wanted)
        for _, _, lookup in self._segments:
            found |= lookup.positions(wanted, sought) >= 0
        return found

    def _settle(self) -> None:
        """Turns the pending keys into a segment, merging smaller segments into it."""
        if not self._pending:
            return
        keys = pa.concat_arrays(self._pending)
        own = digests(keys)
        self._pending = []
        while self._segments and len(self._segments[-1][0]) <= len(keys):
            older, older_digests, _ = self._segments.pop()
            keys = pa.concat_arrays([older, keys])
            own = np.concatenate([older_digests, own])
        self._segments.append((keys, own, KeyLookup(keys, own)))
