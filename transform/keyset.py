"""Exact key lookups over Arrow strings, without a Python object per key.

A pandas string Index materialises every key as a Python str once it is searched (about
140 bytes per key: 400 MB for the 3 million keys of a million-customer store). Here the
keys stay in Arrow buffers; lookups go through a 64-bit digest of each key (computed with
numpy on the Arrow buffers) in a numpy-backed hash index, and every hit is confirmed by
comparing the keys themselves, so a digest collision can never answer wrongly: when two
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
    windows = np.lib.stride_tricks.sliding_window_view(
        np.concatenate([raw, np.zeros(8, np.uint8)]), 8)
    starts = offsets[:-1]
    lengths = offsets[1:] - starts
    with np.errstate(over="ignore"):
        h = lengths.astype(np.uint64) * _MUL + _SEED
        for w in range(0, int(lengths.max()), 8):
            rows = np.flatnonzero(lengths > w)
            word = np.ascontiguousarray(windows[starts[rows] + w]).view(np.uint64).ravel()
            word &= _MASKS[np.minimum(lengths[rows] - w, 8)]
            h[rows] = _mix(h[rows] ^ word)
        return _mix(h)


class KeyLookup:
    """Positions of keys among fixed Arrow keys (the first position of a repeated key)."""

    def __init__(self, keys: pa.Array) -> None:
        self.keys = keys
        own = digests(keys)
        unique, first = np.unique(own, return_index=True)
        self._first = first
        self._index = pd.Index(unique)
        self._fallback: pd.Series | None = None
        if len(unique) < len(own):  # repeated digests: repeated keys, or a collision
            same = pc.equal(keys, keys.take(pa.array(first[np.searchsorted(unique, own)])))
            if not pc.all(same).as_py():  # two different keys, one digest: by string
                by_key = pd.Series(np.arange(len(keys)),
                                   index=pd.Index(keys.to_pandas(), dtype="str"))
                self._fallback = by_key[~by_key.index.duplicated(keep="first")]

    def positions(self, probe: KeysLike) -> np.ndarray:
        """The position of each probe key among the keys, or -1."""
        wanted = as_arrow(probe)
        pos = np.full(len(wanted), -1, np.int64)
        if self._fallback is not None:
            at = self._fallback.index.get_indexer(pd.Index(wanted.to_pandas(), dtype="str"))
            pos[at >= 0] = self._fallback.to_numpy()[at[at >= 0]]
            return pos
        at = self._index.get_indexer(digests(wanted))
        hit = np.flatnonzero(at >= 0)
        if len(hit):  # confirm each digest hit by comparing the keys
            candidate = self._first[at[hit]]
            same = pc.fill_null(pc.equal(self.keys.take(pa.array(candidate)),
                                         wanted.take(pa.array(hit))), False)
            same = same.to_numpy(zero_copy_only=False)
            pos[hit[same]] = candidate[same]
        return pos


class KeySet:
    """A growing set of keys kept as Arrow strings, with exact membership tests."""

    def __init__(self) -> None:
        self._chunks: list[pa.Array] = []
        self._lookup: KeyLookup | None = None

    def update(self, keys: KeysLike) -> None:
        """Adds keys (repeats are harmless)."""
        arr = as_arrow(keys)
        if len(arr):
            self._chunks.append(arr)
            self._lookup = None

    def __iter__(self) -> Iterator[str]:
        for chunk in self._chunks:
            yield from chunk.to_pylist()

    def __len__(self) -> int:
        return sum(len(c) for c in self._chunks)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(self.contains([key])[0])

    def contains(self, keys: KeysLike) -> np.ndarray:
        """Whether each key is in the set."""
        wanted = as_arrow(keys)
        if not self._chunks:
            return np.zeros(len(wanted), bool)
        if self._lookup is None:
            self._lookup = KeyLookup(pa.concat_arrays(self._chunks))
        found: np.ndarray = self._lookup.positions(wanted) >= 0
        return found
