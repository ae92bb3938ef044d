"""Parquet exports for analysts: one file per entity, replaced atomically.

An export holds the target's active rows (public columns plus `extra`, never secrets), in
no particular order. Beside it, `.magsync/<table>.keys.arrow` (Arrow IPC) holds the
record_key and row_hash of every exported row in the same order, and
`.magsync/<table>.json` the export's fingerprint and row count. With them a run
patches the previous export instead of reading every active row back from the target:
when the previous export holds exactly the (record_key, row_hash) pairs the target held
before the run (checked against the key index read under the run lock), the new export is
its rows minus those the run deleted (with their children) or rewrote, plus the rows the
run wrote, taken from the same staging parts the merge wrote (the merge holds the run lock:
nothing else writes these tables meanwhile). A run that wrote nothing leaves the export
untouched. Otherwise the export is rewritten from the target.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from magsync.transform.diff import KeyIndex
from magsync.transform.pii import KEEP_ALL, PiiPolicy
from magsync.transform.schema import EXTRA_COL, HASH_COL, KEY_COL, Entity

STATE_DIR = ".magsync"
KEYS_SCHEMA = pa.schema([pa.field(KEY_COL, pa.string()), pa.field(HASH_COL, pa.int64())])
KEYS_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


# The analysts' format, in every export's and history file's Parquet metadata; raised when
# a column, its meaning or the layout changes (README, "Exports: change log").
EXPORT_VERSION_KEY, EXPORT_VERSION = b"magsync.export_version", b"2"


def export_schema(entity: Entity, policy: PiiPolicy = KEEP_ALL) -> pa.Schema:
    """The exported columns: public attributes plus `extra`; never secrets, nor the
    columns the PII policy drops. The format's version rides in the metadata."""
    columns = entity.arrow_schema().append(pa.field(EXTRA_COL, pa.string()))
    return policy.schema(entity.name, columns.with_metadata({EXPORT_VERSION_KEY: EXPORT_VERSION}))


def keyed_schema(entity: Entity, policy: PiiPolicy = KEEP_ALL) -> pa.Schema:
    """record_key and row_hash, then the exported columns: what `write_export` takes."""
    return pa.schema([*KEYS_SCHEMA, *export_schema(entity, policy)])


def policy_changed(entity: Entity, exports_dir: Path, policy: PiiPolicy) -> bool:
    """Whether the previous export was written under another PII policy (or key)."""
    try:
        manifest = json.loads(_Paths(entity, exports_dir).manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(manifest.get("pii", "") != policy.fingerprint(entity.name))


@dataclass
class RunDelta:
    """What a run wrote to one entity's table: the patch for its export."""

    before: KeyIndex  # the stored keys, row hashes and soft-delete flags before the run
    deleted: Sequence[str]  # keys the run deleted
    parent_deleted: Sequence[str]  # keys of deleted parents: their children went too
    staged: Callable[..., Iterable[pa.Table]]  # (columns=None): the rows the run upserted


class _Paths:
    """An export file and its key and manifest files."""

    def __init__(self, entity: Entity, exports_dir: Path) -> None:
        state = exports_dir / STATE_DIR
        self.export = exports_dir / f"{entity.table}.parquet"
        self.keys = state / f"{entity.table}.keys.arrow"
        self.manifest = state / f"{entity.table}.json"
        self.tmp_export = exports_dir / f".{entity.table}.parquet.tmp"
        self.tmp_keys = state / f".{entity.table}.keys.arrow.tmp"


def refresh_export(entity: Entity, delta: RunDelta,
                   active_rows: Callable[[], Iterable[pa.RecordBatch]], exports_dir: Path,
                   *, batch_rows: int, before_rename: Callable[[], None] | None = None,
                   policy: PiiPolicy = KEEP_ALL) -> Path:
    """Brings `<exports_dir>/<table>.parquet` up to date: patched when the previous export
    provably matches the target's state before the run, else rewritten from `active_rows`
    (keyed batches of the target's active rows). Rows written are transformed by `policy`
    on the way; the previous export's were already (its manifest records the policy)."""
    paths = _Paths(entity, exports_dir)
    rows = _previous_rows(entity, paths, delta.before, policy)
    if rows is None and delta.before.active_count:
        return write_export(entity, (policy.apply(entity.name, b) for b in active_rows()),
                            exports_dir, before_rename, policy)
    wrote = bool(delta.deleted) or bool(delta.parent_deleted) \
        or any(t.num_rows for t in delta.staged(columns=[KEY_COL]))
    if rows is not None and not wrote:
        return paths.export  # the run changed nothing: the export is current
    batches = _patched(entity, paths, rows, delta, batch_rows, policy)
    return write_export(entity, batches, exports_dir, before_rename, policy)


def write_export(entity: Entity, batches: Iterable[pa.RecordBatch], exports_dir: Path,
                 before_rename: Callable[[], None] | None = None,
                 policy: PiiPolicy = KEEP_ALL) -> Path:
    """Streams keyed batches (already transformed by `policy`, which the manifest records)
    to `<exports_dir>/<table>.parquet` and its key file, each via a temporary file and
    rename."""
    paths = _Paths(entity, exports_dir)
    paths.keys.parent.mkdir(parents=True, exist_ok=True)
    schema = export_schema(entity, policy)
    rows = 0
    with pq.ParquetWriter(paths.tmp_export, schema, compression="zstd") as writer, \
            pa.ipc.new_file(paths.tmp_keys, KEYS_SCHEMA, options=KEYS_OPTIONS) as keys:
        for batch in batches:
            writer.write_batch(batch.select(schema.names))
            keys.write_batch(batch.select(KEYS_SCHEMA.names))
            rows += batch.num_rows
    for tmp in (paths.tmp_export, paths.tmp_keys):
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
    if before_rename is not None:
        before_rename()
    paths.manifest.unlink(missing_ok=True)  # no manifest: the pair is not trusted
    paths.tmp_export.replace(paths.export)
    paths.tmp_keys.replace(paths.keys)
    manifest = {"rows": rows, "fingerprint": fingerprint(paths.export),
                "pii": policy.fingerprint(entity.name)}
    tmp_manifest = paths.manifest.with_suffix(".json.tmp")
    tmp_manifest.write_text(json.dumps(manifest), encoding="utf-8")
    tmp_manifest.replace(paths.manifest)
    return paths.export


def fingerprint(path: Path) -> str:
    """The file's size and a digest of its Parquet footer (which records every row group's
    offsets, sizes and statistics): another file, or an edited one, gets another; a copy
    keeps it, whatever its mtime."""
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - 8))
        tail = fh.read(8)
        footer = int.from_bytes(tail[:4], "little") if len(tail) == 8 else 0
        fh.seek(max(0, size - 8 - footer))
        digest = blake2b(fh.read(footer + 8), digest_size=16).hexdigest()
    return f"{size}:{digest}"


def _previous_rows(entity: Entity, paths: _Paths, before: KeyIndex,
                   policy: PiiPolicy) -> np.ndarray | None:
    """For each row of the previous export, the position of its key in the key index,
    when the export holds exactly the target's active keys and row hashes before the run
    (each once), written under the same PII policy; None when there is no such export."""
    try:
        manifest = json.loads(paths.manifest.read_text(encoding="utf-8"))
        if fingerprint(paths.export) != manifest["fingerprint"] \
                or manifest.get("pii", "") != policy.fingerprint(entity.name):
            return None
        metadata = pq.read_metadata(paths.export)
        if not metadata.schema.to_arrow_schema().equals(export_schema(entity, policy)) \
                or not metadata.num_rows == manifest["rows"] == before.active_count:
            return None
        with pa.memory_map(str(paths.keys)) as source:
            reader = pa.ipc.open_file(source)
            if not reader.schema.equals(KEYS_SCHEMA):
                return None
            locate = policy.locator(entity.name, before)
            chunks = [_positions(reader.get_batch(i), before, locate)
                      for i in range(reader.num_record_batches)]
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowInvalid):
        return None
    if any(c is None for c in chunks):
        return None
    rows = np.concatenate([np.empty(0, np.int64), *chunks])  # type: ignore[list-item]
    claimed = np.zeros(len(before.keys), bool)
    claimed[rows] = True
    return rows if len(rows) == metadata.num_rows == int(claimed.sum()) else None


def _positions(batch: pa.RecordBatch, before: KeyIndex,
               locate: Callable[[pa.Array], np.ndarray]) -> np.ndarray | None:
    """The index positions of a batch of (record_key, row_hash), if every key is stored,
    active and has that row hash (`locate` finds keys as the key file holds them)."""
    pos = locate(batch.column(KEY_COL))
    if (pos < 0).any():
        return None
    hashes = batch.column(HASH_COL).to_numpy()
    ok = (~before.deleted[pos]).all() and (before.hashes[pos] == hashes).all()
    return pos if ok else None


def _patched(entity: Entity, paths: _Paths, rows: np.ndarray | None, delta: RunDelta,
             batch_rows: int, policy: PiiPolicy) -> Iterator[pa.RecordBatch]:
    """The previous export's rows the run left alone (transformed already), then the rows
    it wrote (keyed, transformed now). `rows` gives each previous row's position in the
    key index, which supplies its key and hash: the key file is read only to check it."""
    schema = keyed_schema(entity, policy)
    if rows is not None and len(rows):
        before = delta.before
        rewritten = np.zeros(len(before.keys), bool)
        for keys in (delta.deleted,
                     *(t.column(KEY_COL) for t in delta.staged(columns=[KEY_COL]))):
            pos = before.positions(keys)
            rewritten[pos[pos >= 0]] = True
        parents = pa.array(list(delta.parent_deleted), pa.string())
        if entity.parent_key_col:  # as the export holds them
            parents = policy.column_array(entity.name, entity.parent_key_col, parents)
        offset = 0
        for batch in pq.ParquetFile(paths.export).iter_batches(batch_rows):
            at = rows[offset:offset + batch.num_rows]
            offset += batch.num_rows
            mask = pa.array(~rewritten[at])
            if len(parents) and entity.parent_key_col:  # the delete cascaded to children
                gone_with_parent = pc.is_in(batch.column(entity.parent_key_col),
                                            value_set=parents)
                mask = pc.and_(mask, pc.invert(gone_with_parent))
            columns = [policy.key_array(entity.name, before.key_array(at)),
                       pa.array(before.hashes[at]), *batch.columns]
            yield pa.RecordBatch.from_arrays(columns, schema=schema).filter(mask)
    names = keyed_schema(entity).names  # the raw columns, before any is dropped
    for table in delta.staged():
        keyed = policy.apply(entity.name, table.select(names))
        yield from keyed.cast(schema).to_batches(batch_rows)
