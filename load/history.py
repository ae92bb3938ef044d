"""Change history for analysts: one row per version of a record, appended per run.

`<exports>/history/<table>/run_id=<run id>.parquet` holds the versions one run opened or
closed: `record_key`, `valid_from` (the run's start), `valid_to` (null while the version
is current), `run_id`, `action` (created, updated, retyped, restored, deleted, seeded),
`row_hash`,
then the record's exported values (never secrets). Files are never rewritten by a sync: a
version's end is the next version's `valid_from`, which readers take with a window
function (README, "History"); `magsync compact` merges the files into one and writes that
end into `valid_to`. A `deleted` row closes its key's version and opens nothing.

Crash safety: a run writes its versions to `_pending/` before the merge commits and
renames the file into place after; the next run settles what a crash left (the target
still holds that run's rows: promote it; it does not: drop it). An entity whose store had
rows before history began is seeded once, after a run, from the target's active rows
(action `seeded`): history starts there. An update whose raw source values did not change
(only the typing did: a new NORMALISE_VERSION, other gender labels or website codes) is
`retyped` (load/typing_context.py); the run report counts it `updated`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from magsync.load.history_pii import PII_POLICY, PII_RULES, pii_metadata, reapply
from magsync.load.parquet_export import export_schema
from magsync.load.staging import ACTION_COL
from magsync.transform.diff import Action, KeyIndex
from magsync.transform.pii import KEEP_ALL, PiiPolicy
from magsync.transform.schema import HASH_COL, KEY_COL, Entity

HISTORY = "history"
PENDING = "_pending"
SEEDED = "seeded"
RETYPED = "retyped"
COMPACTED = "compacted.parquet"
LAYOUT, LAYOUT_VERSION = b"magsync.history_layout", b"1"
THROUGH = b"magsync.compacted_through"  # Parquet metadata: the last run id merged
VERSION_COLS = [
    pa.field(KEY_COL, pa.string()),
    pa.field("valid_from", pa.timestamp("us", tz="UTC")),
    pa.field("valid_to", pa.timestamp("us", tz="UTC")),
    pa.field("run_id", pa.string()),
    pa.field("action", pa.string()),
    pa.field(HASH_COL, pa.int64()),
]
OPENS = {Action.CREATED.value, Action.UPDATED.value, Action.RESTORED.value, SEEDED, RETYPED}


def history_schema(entity: Entity, policy: PiiPolicy = KEEP_ALL) -> pa.Schema:
    """The version columns, then the exported values of `entity` (as the PII policy leaves
    them); the layout's version in the Parquet metadata (README, "History")."""
    values = export_schema(entity, policy)
    return pa.schema([*VERSION_COLS, *values],
                     metadata={**(values.metadata or {}), LAYOUT: LAYOUT_VERSION,
                               **pii_metadata(entity, policy)})


def history_dir(exports_dir: Path, entity: Entity) -> Path:
    """The folder of `entity`'s history files."""
    return exports_dir / HISTORY / entity.table


def history_files(exports_dir: Path, entity: Entity) -> list[Path]:
    """The published files of `entity`'s history: the compacted one first, then the runs
    after it (a run file it already holds, left by an interrupted compaction, is not)."""
    folder = history_dir(exports_dir, entity)
    if not folder.is_dir():
        return []
    compacted = folder / COMPACTED
    through = _compacted_through(compacted)
    runs = [p for p in sorted(folder.glob("run_id=*.parquet"))
            if p.stem.removeprefix("run_id=") > through]
    return ([compacted] if compacted.is_file() else []) + runs


def _compacted_through(compacted: Path) -> str:
    """The last run id merged into the compacted file ('' when there is none)."""
    if not compacted.is_file():
        return ""
    meta = pq.read_schema(compacted).metadata or {}
    return str(meta.get(THROUGH, b"").decode())


def has_history(exports_dir: Path, entity: Entity) -> bool:
    """Whether `entity`'s history has begun."""
    return bool(history_files(exports_dir, entity))


def _versions(entity: Entity, values: pa.Table, *, run_id: str, at: datetime,
              action: pa.Array, policy: PiiPolicy = KEEP_ALL) -> pa.Table:
    """Version rows for `values` (record_key, row_hash and the exported columns, each
    raw: `policy` transforms them)."""
    values = policy.apply(entity.name, values)
    n = values.num_rows
    schema = history_schema(entity, policy)
    columns = {
        KEY_COL: values.column(KEY_COL),
        "valid_from": pa.array([at] * n, schema.field("valid_from").type),
        "valid_to": pa.nulls(n, schema.field("valid_to").type),
        "run_id": pa.array([run_id] * n, pa.string()),
        "action": action,
        HASH_COL: values.column(HASH_COL),
    }
    for field in export_schema(entity, policy):
        columns[field.name] = values.column(field.name) if field.name in values.column_names \
            else pa.nulls(n, field.type)
    return pa.table(columns, schema=schema)


def retyped(table: pa.Table, stored: KeyIndex | None) -> pa.Array:
    """The staged rows' actions, `updated` turned `retyped` where the stored row came in
    again with its raw values unchanged (`KeyIndex.raw_before`): only its typing changed."""
    action = table.column(ACTION_COL).combine_chunks()
    if stored is None or not stored.raw_before.any():
        return action
    pos = stored.positions(table.column(KEY_COL).combine_chunks())
    same_raw = np.zeros(len(pos), bool)
    same_raw[pos >= 0] = stored.raw_before[pos[pos >= 0]]
    updated = pc.equal(action, pa.scalar(Action.UPDATED.value)).to_numpy(zero_copy_only=False)
    return pc.if_else(pa.array(updated & same_raw), pa.scalar(RETYPED), action)


def run_versions(entity: Entity, staged: Iterable[pa.Table], deleted: Iterable[str], *,
                 run_id: str, at: datetime, policy: PiiPolicy = KEEP_ALL,
                 cascaded: Iterable[str] = (), stored: KeyIndex | None = None
                 ) -> Iterator[pa.Table]:
    """The versions a run opens (its staged writes, each with its planned action, an
    update of a row whose raw values `stored` says came in unchanged `retyped`) and the
    `deleted` rows that close the versions of the keys it deleted (raw record keys), or
    of the `cascaded` ones (keys as the history holds them)."""
    names = [KEY_COL, HASH_COL, *export_schema(entity).names]
    for table in staged:
        if table.num_rows:
            yield _versions(entity, table.select([n for n in names if n in table.column_names]),
                            run_id=run_id, at=at, action=retyped(table, stored),
                            policy=policy)
    keys = pa.array(list(deleted), pa.string())
    gone = pa.array(sorted({*policy.key_array(entity.name, keys).to_pylist(), *cascaded}),
                    pa.string())
    if len(gone):
        values = pa.table({KEY_COL: gone, HASH_COL: pa.nulls(len(gone), pa.int64())})
        yield _versions(entity, values, run_id=run_id, at=at,
                        action=pa.array([Action.DELETED.value] * len(gone), pa.string()),
                        policy=policy.without_key(entity.name))


def _write(path: Path, schema: pa.Schema, tables: Iterable[pa.Table]) -> int:
    """Writes `tables` to `path` through a temporary file, fsynced; returns the rows."""
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for table in tables:
            writer.write_table(table.cast(schema))
            rows += table.num_rows
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(path)
    return rows


def _run_file(exports_dir: Path, entity: Entity, run_id: str, *, pending: bool) -> Path:
    folder = history_dir(exports_dir, entity)
    return (folder / PENDING if pending else folder) / f"run_id={run_id}.parquet"


def write_pending(exports_dir: Path, entity: Entity, run_id: str,
                  versions: Iterable[pa.Table], policy: PiiPolicy = KEEP_ALL) -> Path | None:
    """Writes a run's versions under `_pending/` (before its merge commits); None, and no
    file, when the run changed nothing."""
    path = _run_file(exports_dir, entity, run_id, pending=True)
    if _write(path, history_schema(entity, policy), versions):
        return path
    path.unlink()
    return None


def _count(path: Path | None, action: str) -> int:
    """Versions of `action` in a run's file."""
    if path is None:
        return 0
    actions = pq.read_table(path, columns=["action"]).column("action")
    return int(pc.sum(pc.equal(actions, pa.scalar(action))).as_py() or 0)


def publish(exports_dir: Path, entity: Entity, run_id: str) -> None:
    """Moves a committed run's pending versions into the history."""
    pending = _run_file(exports_dir, entity, run_id, pending=True)
    if pending.is_file():
        pending.replace(_run_file(exports_dir, entity, run_id, pending=False))


def settle_pending(exports_dir: Path, entity: Entity, stored: KeyIndex,
                   policy: PiiPolicy = KEEP_ALL) -> list[str]:
    """Settles what a crashed run left pending, from the target as read under the run lock
    before this run writes: the versions the target holds (its merge committed them, maybe
    only some of its transactions) are published, the rest dropped (the rerun writes them
    again). Returns the run ids with versions published."""
    folder = history_dir(exports_dir, entity) / PENDING
    published = []
    for path in sorted(folder.glob("run_id=*.parquet")) if folder.is_dir() else []:
        run_id = path.stem.removeprefix("run_id=")
        versions = pq.read_table(path)
        held = versions.filter(pa.array(_held(versions, stored,
                                              policy.locator(entity.name, stored))))
        if held.num_rows:
            _write(_run_file(exports_dir, entity, run_id, pending=False), versions.schema,
                   [held])
            published.append(run_id)
        path.unlink()
    return published


def _held(versions: pa.Table, stored: KeyIndex,
          locate: Callable[[pa.Array], np.ndarray]) -> np.ndarray:
    """Per version, whether the target's row is what it describes: active with its row
    hash (a version opened), or absent or soft-deleted (a key deleted). `locate` finds
    the record keys as the history holds them."""
    pos = locate(versions.column(KEY_COL).combine_chunks())
    hit = pos >= 0
    at = np.where(hit, pos, 0)
    action = versions.column("action").to_numpy(zero_copy_only=False)
    opened = np.isin(action, list(OPENS))
    hashes = versions.column(HASH_COL).fill_null(0).to_numpy(zero_copy_only=False)
    active = hit & ~stored.deleted[at]
    same: np.ndarray = active & (stored.hashes[at] == hashes)
    return np.where(opened, same, ~active)


def open_children(exports_dir: Path, entity: Entity, parents: Sequence[str],
                  at: datetime, policy: PiiPolicy = KEEP_ALL) -> list[str]:
    """Keys of `entity` (as the history holds them) whose current version belongs to one
    of the deleted `parents` (raw keys): the delete cascades to them."""
    if not parents or entity.parent_key_col is None or not has_history(exports_dir, entity):
        return []
    current = as_of(read_history(exports_dir, entity, [entity.parent_key_col, "action"]), at)
    wanted = policy.column_array(entity.name, entity.parent_key_col,
                                 pa.array(list(parents), pa.string()))
    mine = pc.is_in(current.column(entity.parent_key_col), value_set=wanted)
    keys: list[str] = current.filter(mine).column(KEY_COL).to_pylist()
    return keys


def before_merge(exports_dir: Path, entity: Entity, stored: KeyIndex,
                 staged: Callable[[], Iterable[pa.Table]], deleted: Sequence[str],
                 parents_deleted: Sequence[str], *, run_id: str, at: datetime,
                 policy: PiiPolicy = KEEP_ALL) -> str | None:
    """Under the run lock, before the merge: settles a crashed run's versions, applies a
    changed PII policy to the files written before, then writes this run's versions as
    pending (transformed by `policy`), unless history has not begun on a store that has
    rows (then `after_merge` seeds it). Returns a note when the policy changed or updates
    were re-typed."""
    settle_pending(exports_dir, entity, stored, policy)
    rewritten, stale = reapply(history_files(exports_dir, entity), entity, policy)
    note = None if not rewritten else (
        f"{entity.name} history: {rewritten} file(s) rewritten under the changed PII policy"
        + (f"; {stale} keep values an earlier policy hashed, masked or dropped (they cannot "
           "be restored or hashed again)" if stale else ""))
    if not has_history(exports_dir, entity) and len(stored.keys):
        return note
    cascaded = open_children(exports_dir, entity, parents_deleted, at, policy)
    path = write_pending(exports_dir, entity, run_id,
                         run_versions(entity, staged(), deleted, run_id=run_id, at=at,
                                      policy=policy, cascaded=cascaded, stored=stored), policy)
    notes = [note] if note else []
    n = _count(path, RETYPED) if stored.raw_before.any() else 0
    if n:
        notes.append(f"{entity.name} history: {n} update(s) `retyped`: raw values unchanged, "
                     "typed anew under a changed typing context (counted updated)")
    return "; ".join(notes) or None


def after_merge(exports_dir: Path, entity: Entity, run_id: str, at: datetime,
                active: Callable[[], Iterable[pa.RecordBatch]],
                policy: PiiPolicy = KEEP_ALL) -> str | None:
    """After the merge committed: publishes this run's versions, or seeds history from the
    target's active rows where it has not begun; returns a note when it seeded."""
    publish(exports_dir, entity, run_id)
    if has_history(exports_dir, entity):
        return None
    rows = seed(exports_dir, entity, run_id, at, active, policy)
    return f"{entity.name} history begins with this run: {rows} current row(s) seeded"


def seed(exports_dir: Path, entity: Entity, run_id: str, at: datetime,
         active: Callable[[], Iterable[pa.RecordBatch]], policy: PiiPolicy = KEEP_ALL) -> int:
    """Starts `entity`'s history from the target's active rows (keyed batches, as for the
    exports); returns the versions written."""
    def tables() -> Iterator[pa.Table]:
        for batch in active():
            table = pa.Table.from_batches([batch])
            yield _versions(entity, table, run_id=run_id, at=at,
                            action=pa.array([SEEDED] * table.num_rows, pa.string()),
                            policy=policy)

    return _write(_run_file(exports_dir, entity, run_id, pending=False),
                  history_schema(entity, policy), tables())


def read_history(exports_dir: Path, entity: Entity,
                 columns: list[str] | None = None) -> pa.Table:
    """Every version of `entity`, with `valid_to` filled from the next version of each key
    (what the README's recipe computes), ordered by key and `valid_from`."""
    files = history_files(exports_dir, entity)
    schema = history_schema(entity)
    wanted = None if columns is None else list(dict.fromkeys(
        [KEY_COL, "valid_from", "valid_to", *columns]))
    tables = [pq.read_table(f, columns=wanted) for f in files]
    # files written under an earlier PII policy may lack a column a later one keeps
    table = pa.concat_tables(tables, promote_options="default") if tables else \
        schema.empty_table().select(wanted or schema.names)
    return with_valid_to(table)


def with_valid_to(versions: pa.Table) -> pa.Table:
    """`versions` sorted by key and `valid_from`, each `valid_to` the key's next
    `valid_from` where the file left it null."""
    table = versions.sort_by([(KEY_COL, "ascending"), ("valid_from", "ascending")])
    if not table.num_rows:
        return table
    keys = table.column(KEY_COL).to_numpy(zero_copy_only=False)
    starts = table.column("valid_from")
    same_key_next = np.append(keys[1:] == keys[:-1], False)
    following = pa.concat_arrays([*starts.slice(1).chunks, pa.nulls(1, starts.type)]) \
        if starts.num_chunks else pa.nulls(table.num_rows, starts.type)
    nxt = pc.if_else(pa.array(same_key_next), following, pa.nulls(table.num_rows, starts.type))
    at = table.schema.get_field_index("valid_to")
    return table.set_column(at, "valid_to", pc.coalesce(table.column("valid_to"), nxt))


def as_of(versions: pa.Table, at: datetime) -> pa.Table:
    """The records as they stood at `at`: versions opened at or before it and not closed
    by then, deletions excluded."""
    started = pc.less_equal(versions.column("valid_from"), pa.scalar(at, versions.schema.field(
        "valid_from").type))
    open_then = pc.or_kleene(pc.is_null(versions.column("valid_to")),
                             pc.greater(versions.column("valid_to"),
                                        pa.scalar(at, versions.schema.field("valid_to").type)))
    live = pc.is_in(versions.column("action"), value_set=pa.array(sorted(OPENS)))
    return versions.filter(pc.and_(pc.and_(started, open_then), live))


def compact(exports_dir: Path, entity: Entity) -> tuple[int, int]:
    """Merges every history file of `entity` into `compacted.parquet`, `valid_to` filled;
    returns (files merged, versions). Run it while no sync runs (it takes no lock)."""
    folder = history_dir(exports_dir, entity)
    files = history_files(exports_dir, entity)
    runs = [p for p in files if p.name != COMPACTED]
    if runs:
        merged = read_history(exports_dir, entity)
        through = runs[-1].stem.removeprefix("run_id=")
        full = history_schema(entity)  # less the columns the PII policy drops
        schema = pa.schema([merged.schema.field(n) for n in full.names
                            if n in merged.column_names],
                           metadata={**(full.metadata or {}), **_pii_of(runs[-1]),
                                     THROUGH: through.encode()})
        _write(folder / COMPACTED, schema, [merged.select(schema.names)])
    for path in folder.glob("run_id=*.parquet") if folder.is_dir() else []:
        if path.stem.removeprefix("run_id=") <= _compacted_through(folder / COMPACTED):
            path.unlink()  # merged now or by an interrupted compaction
    return len(runs), (pq.read_metadata(folder / COMPACTED).num_rows if runs else 0)


def _pii_of(path: Path) -> dict[bytes, bytes]:
    """The PII policy a history file records (the latest file's: the one in force)."""
    meta = pq.read_schema(path).metadata or {}
    return {k: v for k, v in meta.items() if k in (PII_POLICY, PII_RULES)}
