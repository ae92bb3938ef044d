"""History end to end: real syncs into SQLite; the table as of every past run, rebuilt from
history alone (in pandas and in DuckDB, as the README shows), equals the export that run
wrote."""

from __future__ import annotations

import shutil
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from magsync.flows.cli import main
from magsync.flows.crash import CRASH_ENV
from magsync.load import history
from magsync.transform.schema import ADDRESS, CUSTOMER, GROUP, HASH_COL, KEY_COL, Entity
from tests.csvbuild import address_fields, continuation, customer_row, write_csv
from tests.synchelp import EXPORTS, sync
from tests.test_crash import forked
from tests.test_sync import export_v1, export_v2

ENTITIES = (GROUP, CUSTOMER, ADDRESS)


def rows(table: pd.DataFrame, columns: list[str]) -> list[tuple[Any, ...]]:
    return sorted(table[columns].astype("string").fillna("<null>").itertuples(index=False,
                                                                               name=None))


def exported(folder: Path, entity: Entity) -> pd.DataFrame:
    return pq.read_table(folder / f"{entity.table}.parquet").to_pandas()


def as_of_pandas(out: Path, entity: Entity, at: datetime) -> pd.DataFrame:
    """The README's pandas recipe, verbatim but for the folder and the time."""
    v = pd.read_parquet(out / EXPORTS / "history" / entity.table,
                        dtype_backend="pyarrow").sort_values(
        ["record_key", "valid_from"])
    ends = v.groupby("record_key")["valid_from"].shift(-1)
    v["valid_to"] = v["valid_to"].fillna(ends)
    at = pd.Timestamp(at)
    return v[(v.valid_from <= at) & (v.valid_to.isna() | (v.valid_to > at))
             & (v.action != "deleted")]


def as_of_arrow(out: Path, entity: Entity, at: datetime) -> pd.DataFrame:
    return history.as_of(history.read_history(out / EXPORTS, entity), at).to_pandas()


def as_of_duckdb(out: Path, entity: Entity, at: datetime) -> pd.DataFrame:
    """The README's DuckDB recipe, verbatim but for the folder and the time."""
    files = str(out / EXPORTS / "history" / entity.table / "*.parquet")
    sql = f"""
        WITH v AS (
          SELECT *, coalesce(valid_to, lead(valid_from) OVER (
                   PARTITION BY record_key ORDER BY valid_from)) AS ends
          FROM read_parquet('{files}'))
        SELECT * EXCLUDE (ends) FROM v
        WHERE valid_from <= $at AND (ends IS NULL OR ends > $at) AND action <> 'deleted'
    """
    return duckdb.execute(sql, {"at": at}).df()


def take(out: Path, snapshots: Path, name: str, report: dict[str, Any]) -> datetime:
    shutil.copytree(out / EXPORTS, snapshots / name, ignore=shutil.ignore_patterns("history"))
    return datetime.fromisoformat(report["started_at"])


def test_every_past_state_rebuilt_from_history(tmp_path: Path) -> None:
    out, snaps = tmp_path / "out", tmp_path / "snapshots"
    v1, v2 = export_v1(tmp_path / "v1.csv"), export_v2(tmp_path / "v2.csv")
    runs = []
    for name, path, full in (("first", v1, True), ("edits", v2, False),
                             ("deletes", v2, True), ("unchanged", v2, True),
                             ("restores", v1, True)):
        _, report = sync(path, out, full=full, allow_mass_delete=True)
        assert report["status"] == "done", report
        runs.append((name, take(out, snaps, name, report)))
    files = history.history_files(out / EXPORTS, CUSTOMER)
    assert len(files) == 4, "the unchanged re-sync adds no file"
    parquet = sorted((out / EXPORTS).rglob("*.parquet"))
    assert len(parquet) >= 3 + 4  # the current exports and the history files
    for path in parquet:  # the analysts' format version rides in every file
        assert pq.read_schema(path).metadata[b"magsync.export_version"] == b"2", path

    for name, at in runs:
        for entity in ENTITIES:
            columns = list(exported(snaps / name, entity).columns)
            want = rows(exported(snaps / name, entity), columns)
            assert rows(as_of_pandas(out, entity, at), columns) == want, (name, entity.name)
            assert rows(as_of_arrow(out, entity, at), columns) == want, (name, entity.name)
            assert rows(as_of_duckdb(out, entity, at), columns) == want, (name, entity.name)

    customers = history.read_history(out / EXPORTS, CUSTOMER).to_pandas()
    c7 = customers[customers[KEY_COL] == '[1,"c7@example.com"]']
    assert c7["action"].tolist() == ["created", "deleted", "restored"]
    assert history.compact(out / EXPORTS, CUSTOMER)[0] == 4
    for name, at in runs:
        columns = list(exported(snaps / name, CUSTOMER).columns)
        assert rows(as_of_duckdb(out, CUSTOMER, at), columns) == \
            rows(exported(snaps / name, CUSTOMER), columns), name


def test_history_begins_on_a_store_synced_without_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    v1, v2 = export_v1(tmp_path / "v1.csv"), export_v2(tmp_path / "v2.csv")
    sync(v1, out, full=True, history=False)
    assert not (out / EXPORTS / "history").exists()
    _, report = sync(v2, out)
    assert any("customer history begins with this run: 21" in n for n in report["notes"])
    seeded = history.read_history(out / EXPORTS, CUSTOMER).to_pandas()
    assert set(seeded["action"]) == {"seeded"} and len(seeded) == 21
    at = datetime.fromisoformat(report["started_at"])
    columns = list(exported(out / EXPORTS, CUSTOMER).columns)
    assert rows(as_of_pandas(out, CUSTOMER, at), columns) == \
        rows(exported(out / EXPORTS, CUSTOMER), columns)
    _, later = sync(v1, out, full=True, allow_mass_delete=True)
    versions = history.read_history(out / EXPORTS, CUSTOMER).to_pandas()
    assert sorted(versions[versions["run_id"] == later["run_id"]]["action"]) == \
        ["deleted", "updated"], "c21 gone, c2's name back (c7 and c8 were never deleted)"


@pytest.mark.slow
@pytest.mark.parametrize("point", ["merge-transaction", "after-commit", "export-before-rename",
                                   "report"])
def test_a_run_killed_anywhere_leaves_history_whole_after_the_rerun(tmp_path: Path,
                                                                    point: str) -> None:
    out = tmp_path / "out"
    v1, v2 = export_v1(tmp_path / "v1.csv"), export_v2(tmp_path / "v2.csv")
    url = f"sqlite:///{out / 'magsync.sqlite'}"
    assert forked(v1, out, url) == 0
    assert forked(v2, out, url, **{CRASH_ENV: point}) == -signal.SIGKILL
    assert forked(v2, out, url) == 0
    now = datetime.now(UTC)
    for entity in ENTITIES:
        table = history.read_history(out / EXPORTS, entity)
        columns = list(exported(out / EXPORTS, entity).columns)
        assert rows(history.as_of(table, now).to_pandas(), columns) \
            == rows(exported(out / EXPORTS, entity), columns), (point, entity.name)
        versions = table.to_pandas()
        # Each change recorded once: no key opens the same row hash twice in a row.
        opened = versions[versions["action"] != "deleted"]
        repeats = opened.groupby(KEY_COL)[HASH_COL].apply(lambda h: (h.diff() == 0).any())
        assert not repeats.any(), (point, entity.name)
    assert not list((out / EXPORTS / "history").glob("*/_pending/*.parquet"))


def test_compact_command_merges_the_files(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    v1, v2 = export_v1(tmp_path / "v1.csv"), export_v2(tmp_path / "v2.csv")
    sync(v1, out, full=True)
    _, last = sync(v2, out, full=True, allow_mass_delete=True)
    before = history.read_history(out / EXPORTS, CUSTOMER)
    assert main(["compact", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"customer: 2 file(s) merged, {before.num_rows} version(s)" in printed
    folder = out / EXPORTS / "history" / CUSTOMER.table
    assert sorted(p.name for p in folder.glob("*.parquet")) == ["compacted.parquet"]
    assert history.read_history(out / EXPORTS, CUSTOMER).equals(before)
    at = datetime.fromisoformat(last["started_at"])
    columns = list(exported(out / EXPORTS, CUSTOMER).columns)
    assert rows(as_of_duckdb(out, CUSTOMER, at), columns) == \
        rows(exported(out / EXPORTS, CUSTOMER), columns)


def customers_csv(path: Path, renamed: tuple[int, ...] = (), upto: int = 20) -> Path:
    """c1..c`upto` as export_v1 writes them, the `renamed` ones with another first name."""
    out = []
    for i in range(1, upto + 1):
        first = "Renamed" if i in renamed else f"F{i}"
        out.append(customer_row(f"c{i}@example.com", first=first,
                                **address_fields(city=f"City{i}")))
        if i % 3 == 0:
            out.append(continuation(city=f"Second{i}"))
    return write_csv(path, out)


def actions_of(out: Path, entity: Entity, run_id: str) -> dict[str, str]:
    versions = history.read_history(out / EXPORTS, entity).to_pandas()
    mine = versions[versions["run_id"] == run_id]
    return dict(zip(mine[KEY_COL], mine["action"], strict=True))


def key(i: int) -> str:
    return f'[1,"c{i}@example.com"]'


RELABELLED = {"Male": 2, "Female": 1}  # typing only: the input says "Female" throughout


def test_a_change_of_typing_is_retyped_and_an_edit_updated(tmp_path: Path) -> None:
    """Same input but c2's new first name, under other gender labels: c2's version is
    `updated`, every other customer's `retyped` (raw unchanged, typed gender changed);
    addresses, typed the same, get none. The report counts them all updated."""
    out, snaps = tmp_path / "out", tmp_path / "snapshots"
    _, first = sync(customers_csv(tmp_path / "v1.csv"), out, full=True)
    edited = customers_csv(tmp_path / "v1-edit.csv", renamed=(2,))
    _, second = sync(edited, out, full=True, gender_labels=RELABELLED)
    assert second["status"] == "done", second
    got = actions_of(out, CUSTOMER, second["run_id"])
    assert got == {**{key(i): "retyped" for i in range(1, 21) if i != 2},
                   key(2): "updated"}
    assert actions_of(out, ADDRESS, second["run_id"]) == {}
    assert second["counts"]["customer"].get("updated") == 20
    assert any("19 update(s) `retyped`" in n for n in second["notes"]), second["notes"]
    assert set(history.read_history(out / EXPORTS, CUSTOMER).to_pandas().query(
        "action == 'retyped'")["gender"]) == {1}
    _, third = sync(edited, out, full=True, gender_labels=RELABELLED)
    assert actions_of(out, CUSTOMER, third["run_id"]) == {}, "typed alike: no version"

    shutil.rmtree(out)  # again, with snapshots: the table as of each run from history
    runs = []
    for name, path, labels in (("first", tmp_path / "v1.csv", None),
                               ("retyped", edited, RELABELLED)):
        _, report = sync(path, out, full=True, **({"gender_labels": labels} if labels else {}))
        runs.append((name, take(out, snaps, name, report)))
    for name, at in runs:
        for entity in ENTITIES:
            columns = list(exported(snaps / name, entity).columns)
            want = rows(exported(snaps / name, entity), columns)
            assert rows(as_of_pandas(out, entity, at), columns) == want, (name, entity.name)
            assert rows(as_of_duckdb(out, entity, at), columns) == want, (name, entity.name)
    assert first["status"] == "done"


def test_rows_left_under_an_earlier_typing_are_still_told_apart(
        tmp_path: Path, target_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An incremental run under new labels re-types only what it receives; the rest keep
    digests of the first typing, and a later full run still finds them `retyped`. Then a
    new NORMALISE_VERSION alone changes no typed value: no version at all. On each
    dialect (the typing contexts are rows of the target)."""
    out = tmp_path / "out"
    target = {"target": {"url": target_url}}
    whole = customers_csv(tmp_path / "all.csv")
    sync(whole, out, full=True, **target)
    _, partial_run = sync(customers_csv(tmp_path / "five.csv", upto=5), out, full=False,
                          gender_labels=RELABELLED, **target)
    assert set(actions_of(out, CUSTOMER, partial_run["run_id"]).values()) == {"retyped"}
    _, full_run = sync(whole, out, full=True, gender_labels=RELABELLED, **target)
    assert actions_of(out, CUSTOMER, full_run["run_id"]) == \
        {key(i): "retyped" for i in range(6, 21)}

    from magsync.transform import rawdigest

    monkeypatch.setattr(rawdigest, "NORMALISE_VERSION", rawdigest.NORMALISE_VERSION + 1)
    _, bumped = sync(whole, out, full=True, gender_labels=RELABELLED, **target)
    assert bumped["status"] == "done", bumped
    assert bumped["counts"]["customer"] == {"unchanged": 20}
    assert actions_of(out, CUSTOMER, bumped["run_id"]) == {}
    _, back = sync(customers_csv(tmp_path / "edit.csv", renamed=(4,)), out, full=True,
                   **target)
    assert actions_of(out, CUSTOMER, back["run_id"]) == \
        {**{key(i): "retyped" for i in range(1, 21) if i != 4}, key(4): "updated"}
