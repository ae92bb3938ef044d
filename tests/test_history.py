"""History files on disk: versions per run, as-of reads, compaction, crash settling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from magsync.load import history
from magsync.load.parquet_export import keyed_schema
from magsync.load.staging import ACTION_COL
from magsync.transform.diff import KeyIndex
from magsync.transform.schema import CUSTOMER, HASH_COL, KEY_COL

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def staged(rows: list[tuple[str, int, str, str]]) -> pa.Table:
    """Staged writes: (key, row_hash, firstname, action)."""
    schema = keyed_schema(CUSTOMER)
    table = schema.empty_table().to_pydict()
    for key, row_hash, first, _ in rows:
        for name in schema.names:
            table[name].append({KEY_COL: key, HASH_COL: row_hash, "firstname": first}.get(name))
    out = pa.table(table, schema=schema)
    return out.append_column(ACTION_COL, pa.array([r[3] for r in rows], pa.string()))


def run(out: Path, run_id: str, at: datetime, writes: list[tuple[str, int, str, str]],
        deleted: list[str] = ()) -> None:  # type: ignore[assignment]
    versions = history.run_versions(CUSTOMER, [staged(writes)] if writes else [], deleted,
                                    run_id=run_id, at=at)
    if history.write_pending(out, CUSTOMER, run_id, versions):
        history.publish(out, CUSTOMER, run_id)


def state(out: Path, at: datetime) -> dict[str, str]:
    table = history.as_of(history.read_history(out, CUSTOMER), at)
    return dict(zip(table.column(KEY_COL).to_pylist(), table.column("firstname").to_pylist(),
                    strict=True))


def three_runs(out: Path) -> list[datetime]:
    at = [T0 + timedelta(days=d) for d in range(4)]
    run(out, "r1", at[0], [("a", 1, "Ann", "created"), ("b", 2, "Bob", "created")])
    run(out, "r2", at[1], [("a", 3, "Anna", "updated"), ("c", 4, "Cy", "created")], ["b"])
    run(out, "r3", at[2], [("b", 5, "Bobby", "restored")])
    run(out, "r4", at[3], [])  # an unchanged re-sync writes no file
    return at


def test_as_of_every_run(tmp_path: Path) -> None:
    at = three_runs(tmp_path)
    assert [p.name for p in history.history_files(tmp_path, CUSTOMER)] == \
        ["run_id=r1.parquet", "run_id=r2.parquet", "run_id=r3.parquet"]
    assert state(tmp_path, at[0] - timedelta(seconds=1)) == {}
    assert state(tmp_path, at[0]) == {"a": "Ann", "b": "Bob"}
    assert state(tmp_path, at[1]) == {"a": "Anna", "c": "Cy"}
    assert state(tmp_path, at[2]) == {"a": "Anna", "b": "Bobby", "c": "Cy"}
    versions = history.read_history(tmp_path, CUSTOMER)
    b = versions.filter(pa.compute.equal(versions.column(KEY_COL), "b")).to_pylist()
    assert [(v["action"], v["valid_from"], v["valid_to"]) for v in b] == [
        ("created", at[0], at[1]), ("deleted", at[1], at[2]), ("restored", at[2], None)]


def test_files_are_never_rewritten_and_keep_valid_to_null(tmp_path: Path) -> None:
    three_runs(tmp_path)
    first = pq.read_table(history.history_dir(tmp_path, CUSTOMER) / "run_id=r1.parquet")
    assert first.column("valid_to").null_count == first.num_rows == 2


def test_compact_keeps_every_state_and_fills_valid_to(tmp_path: Path) -> None:
    at = three_runs(tmp_path)
    before = [state(tmp_path, t) for t in at]
    assert history.compact(tmp_path, CUSTOMER) == (3, 6)
    assert [p.name for p in history.history_files(tmp_path, CUSTOMER)] == ["compacted.parquet"]
    compacted = pq.read_table(history.history_dir(tmp_path, CUSTOMER) / "compacted.parquet")
    assert compacted.column("valid_to").null_count == 3  # the current versions of a, b, c
    assert [state(tmp_path, t) for t in at] == before
    later = at[3] + timedelta(days=1)
    run(tmp_path, "r5", later, [("c", 9, "Cyril", "updated")])
    assert state(tmp_path, later) == {"a": "Anna", "b": "Bobby", "c": "Cyril"}
    assert state(tmp_path, at[2]) == before[2]


def test_interrupted_compaction_counts_nothing_twice(tmp_path: Path) -> None:
    at = three_runs(tmp_path)
    folder = history.history_dir(tmp_path, CUSTOMER)
    kept = {p.name: p.read_bytes() for p in folder.glob("run_id=*.parquet")}
    history.compact(tmp_path, CUSTOMER)
    for name, data in kept.items():  # as if the compaction died before deleting them
        (folder / name).write_bytes(data)
    assert history.read_history(tmp_path, CUSTOMER).num_rows == 6
    assert state(tmp_path, at[2]) == {"a": "Anna", "b": "Bobby", "c": "Cy"}
    history.compact(tmp_path, CUSTOMER)
    assert not list(folder.glob("run_id=*.parquet"))


def test_pending_versions_are_published_only_if_the_target_holds_them(tmp_path: Path) -> None:
    at = three_runs(tmp_path)
    versions = list(history.run_versions(CUSTOMER, [staged([("a", 7, "Ada", "updated")])],
                                         ["c"], run_id="r9", at=at[3]))
    history.write_pending(tmp_path, CUSTOMER, "r9", iter(versions))
    # The target as the crashed run left it if its merge had not committed ...
    not_committed = KeyIndex(["a", "b", "c"], np.array([3, 5, 4]), np.array([False] * 3))
    assert history.settle_pending(tmp_path, CUSTOMER, not_committed) == []
    assert state(tmp_path, at[3]) == {"a": "Anna", "b": "Bobby", "c": "Cy"}
    # ... and if it had.
    history.write_pending(tmp_path, CUSTOMER, "r9", iter(versions))
    committed = KeyIndex(["a", "b", "c"], np.array([7, 5, 4]), np.array([False, False, True]))
    assert history.settle_pending(tmp_path, CUSTOMER, committed) == ["r9"]
    assert state(tmp_path, at[3]) == {"a": "Ada", "b": "Bobby"}
    assert not list((history.history_dir(tmp_path, CUSTOMER) / "_pending").iterdir())


def test_a_partly_committed_run_publishes_what_the_target_holds(tmp_path: Path) -> None:
    at = three_runs(tmp_path)
    versions = history.run_versions(CUSTOMER, [staged([("a", 7, "Ada", "updated")])], ["c"],
                                    run_id="r9", at=at[3])
    history.write_pending(tmp_path, CUSTOMER, "r9", versions)
    deletes_only = KeyIndex(["a", "b", "c"], np.array([3, 5, 4]), np.array([False, False, True]))
    assert history.settle_pending(tmp_path, CUSTOMER, deletes_only) == ["r9"]
    assert state(tmp_path, at[3]) == {"a": "Anna", "b": "Bobby"}


def test_seed_starts_history_from_the_active_rows(tmp_path: Path) -> None:
    rows = staged([("x", 1, "Xena", "created"), ("y", 2, "Yves", "created")]).drop_columns(
        [ACTION_COL])
    assert not history.has_history(tmp_path, CUSTOMER)
    assert history.seed(tmp_path, CUSTOMER, "s1", T0, rows.to_batches) == 2
    assert history.has_history(tmp_path, CUSTOMER)
    assert state(tmp_path, T0) == {"x": "Xena", "y": "Yves"}
    assert set(history.read_history(tmp_path, CUSTOMER).column("action").to_pylist()) == \
        {"seeded"}


def test_no_secret_column_in_history() -> None:
    names = history.history_schema(CUSTOMER).names
    assert not set(CUSTOMER.secret_names) & set(names)
    assert {"valid_from", "valid_to", "run_id", "action", KEY_COL} <= set(names)


def test_files_carry_their_layout_version(tmp_path: Path) -> None:
    three_runs(tmp_path)
    history.compact(tmp_path, CUSTOMER)
    meta = pq.read_schema(history.history_files(tmp_path, CUSTOMER)[0]).metadata
    assert meta[b"magsync.history_layout"] == b"1"
    assert meta[b"magsync.compacted_through"] == b"r3"


def test_an_update_of_a_row_whose_raw_values_came_in_unchanged_is_retyped(
        tmp_path: Path) -> None:
    stored = KeyIndex(["a", "b", "c"], np.array([1, 2, 3]), np.array([False, False, True]))
    stored.raw_before[[0, 2]] = True  # a and c came in with their raw values unchanged
    writes = [("a", 7, "Ada", "updated"), ("b", 8, "Bo", "updated"),
              ("c", 9, "Cy", "restored"), ("d", 10, "Di", "created")]
    versions = history.run_versions(CUSTOMER, [staged(writes)], [], run_id="r1", at=T0,
                                    stored=stored)
    history.write_pending(tmp_path, CUSTOMER, "r1", versions)
    history.publish(tmp_path, CUSTOMER, "r1")
    table = history.read_history(tmp_path, CUSTOMER)
    assert dict(zip(table.column(KEY_COL).to_pylist(), table.column("action").to_pylist(),
                    strict=True)) == {"a": "retyped", "b": "updated", "c": "restored",
                                      "d": "created"}
    assert state(tmp_path, T0) == {"a": "Ada", "b": "Bo", "c": "Cy", "d": "Di"}
