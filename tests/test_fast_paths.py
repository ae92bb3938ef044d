"""The vectorised fast paths agree with plain Python on awkward inputs."""

from __future__ import annotations

import csv
import io
import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import magsync.transform.keyset as keyset
from magsync.extract.csv_reader import _find_records
from magsync.load.sql_bulk import as_bound_text
from magsync.transform.diff import KeyIndex
from magsync.transform.keyset import KeyLookup, KeySet, digests
from magsync.transform.normalise import to_int


def reference_records(block: bytes, at_eof: bool) -> tuple[list[tuple[int, int]], bool]:
    """(start line, field count) of each complete record as csv.reader reads the block from
    a file opened with newline='' (a blank line is a record of 0 fields), and whether the
    last one ends inside an open quote. Mid-file, a line is complete when it ends in LF, or
    in CR before more bytes (a CR ending the block may be half of CR LF), and a record is
    complete when csv.reader needs no line past those."""
    lines = block.splitlines(keepends=True)
    if not at_eof and lines and not lines[-1].endswith(b"\n"):
        lines.pop()
    ran_out = []

    def feed() -> Iterator[str]:
        yield from (line.decode() for line in lines)
        ran_out.append(True)

    reader = csv.reader(feed())
    out, unterminated = [], False
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        if ran_out:  # csv.reader ran out of lines inside a quoted field
            if at_eof:
                out.append((start, len(row)))
                unterminated = True
            break
        out.append((start, len(row)))
    return out, unterminated


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("at_eof", [False, True])
def test_record_boundaries_and_field_counts(seed: int, at_eof: bool) -> None:
    rng = random.Random(seed)
    pieces = [b'"', b",", b"\n", b"a", b'""', b",,", b"\r", b"\r\n", b'a"b', b'"a"b']
    for _ in range(400):
        block = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        records, consumed = _find_records(block, 1, at_eof=at_eof)
        got = list(zip(records.lines.tolist(), records.fields.tolist(), strict=True))
        expected, unterminated = reference_records(block, at_eof)
        assert got == expected, block
        assert records.unterminated == unterminated, block
        assert consumed <= len(block) and (consumed == len(block)) >= at_eof, block


def test_delimiter_is_a_parameter() -> None:
    block = b'a;"b;c";O"Neil\n1;2\n'
    records, _ = _find_records(block, 1, at_eof=True, delimiter=b";")
    assert records.fields.tolist() == [3, 2]


def test_field_counts_match_the_csv_module() -> None:
    text = 'a,"b,c",d\n"x\ny",,"q""r,"\nO"Neil,"a"b,c\r\n'
    records, _ = _find_records(text.encode(), 1, at_eof=True)
    assert records.fields.tolist() == [len(r) for r in csv.reader(io.StringIO(text, newline=""))]


def test_digest_lookup_is_exact_even_when_digests_collide(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    keys = pa.array(["[1]", "[2]", "[1]", "[[1,\"é@x\"],2]", ""])
    assert KeyLookup(keys).positions(["[2]", "[1]", "[3]", "", "[[1,\"é@x\"],2]"]).tolist() \
        == [1, 0, -1, 4, 3]
    monkeypatch.setattr(keyset, "digests", lambda arr: np.zeros(len(arr), np.uint64))
    assert KeyLookup(keys).positions(["[2]", "[1]", "[3]", ""]).tolist() == [1, 0, -1, 4]
    found = KeySet()
    found.update(["a", "b"])
    found.update(pd.Series(["c"], dtype="str"))
    assert found.contains(["c", "a", "z"]).tolist() == [True, True, False]
    assert sorted(found) == ["a", "b", "c"]


def test_digests_differ_on_every_byte_and_length() -> None:
    base = "x" * 40
    variants = [base[:i] + "y" + base[i + 1:] for i in range(40)] + [base, base + "\0", ""]
    values = digests(pa.array(variants))
    assert len(set(values.tolist())) == len(variants)
    sliced = pa.array(["zz", *variants]).slice(1)
    assert digests(sliced).tolist() == values.tolist()


def test_key_index_over_arrow_keys() -> None:
    index = KeyIndex(pa.chunked_array([pa.array(["[1]", "[2]"]), pa.array(["[3]"])]),
                     np.array([10, 20, 30]), np.array([False, True, False]))
    actions = index.classify(pd.Series(["[2]", "[3]", "[4]"], dtype="str"),
                             np.array([20, 31, 40]))
    assert actions.tolist() == ["restored", "updated", "created"]
    assert index.exists(pd.Series(["[1]", "[2]", "[4]", "[5]"], dtype="str")).tolist() == [
        True, True, True, False]
    assert index.absent() == ["[1]"]
    assert list(index.new_keys) == ["[4]"]


@pytest.mark.parametrize("values", [["1", "-2", None, "007"], ["1", "1.0", "x", None], []])
def test_to_int_fast_path_agrees_with_pandas(values: list[str | None]) -> None:
    series = pd.Series(values, dtype="str", index=range(5, 5 + len(values)))
    typed, bad = to_int(series)
    parsed = pd.to_numeric(series, errors="coerce")
    wrong = series.notna() & (parsed.isna() | (parsed != np.floor(parsed)))
    assert typed.dtype == "Int64" and list(typed.index) == list(series.index)
    assert typed.tolist() == parsed.where(~wrong).astype("Int64").tolist()
    assert bad.tolist() == wrong.tolist()


def test_bound_text_is_what_sqlalchemy_binds() -> None:
    table = pa.table({
        "at": pa.array([datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC), None],
                       pa.timestamp("us", tz="UTC")),
        "day": pa.array([date(999, 1, 2), None], pa.date32()),
        "flag": pa.array([True, None]),
    })
    assert as_bound_text(table).to_pylist() == [
        {"at": "2020-01-02 03:04:05.000000", "day": "0999-01-02", "flag": True},
        {"at": None, "day": None, "flag": None}]


def test_upsert_clears_a_column_null_in_every_new_row(tmp_path: Path) -> None:
    from magsync.load.sql_store import SqlTarget
    from magsync.load.staging import staged_schema
    from magsync.transform.schema import GROUP

    target = SqlTarget(f"sqlite:///{tmp_path}/t.sqlite", source="s")
    target.migrate()
    schema = staged_schema(GROUP, with_secrets=False)

    def staged(code: str | None) -> pa.Table:
        row = {"record_key": "[1]", "row_hash": 7, "_action": "created",
               "customer_group_id": 1, "customer_group_code": code, "extra": None,
               "_source": "f.csv", "_line": 2}
        return pa.Table.from_pylist([row], schema=schema)

    now = datetime(2026, 1, 2, 3, 4, 5)
    for code in ("General", None):
        with target.begin() as conn:
            target.upsert(conn, GROUP, staged(code), "run", now)
        with sqlite3.connect(tmp_path / "t.sqlite") as db:
            assert db.execute("SELECT customer_group_code, source, run_id, loaded_at, "
                              "deleted_at FROM customer_groups").fetchall() == [
                (code, "s", "run", "2026-01-02 03:04:05.000000", None)]
    target.dispose()


def test_key_set_matches_a_python_set_through_interleaved_updates() -> None:
    rng = random.Random(7)
    found, expected = KeySet(), set()
    for _ in range(60):
        batch = [f"[{rng.randint(0, 500)}]" for _ in range(rng.randint(0, 40))]
        found.update(batch)
        expected.update(batch)
        probe = [f"[{rng.randint(0, 600)}]" for _ in range(30)]
        assert found.contains(probe).tolist() == [p in expected for p in probe]
    assert set(found) == expected


def _staged_customers(rows: list[tuple[str, str, int]]) -> pa.Table:
    """Staged customer rows (record_key, email, row_hash), every other column null."""
    from magsync.load.staging import staged_schema
    from magsync.transform.schema import CUSTOMER

    schema = staged_schema(CUSTOMER, with_secrets=False)
    return pa.Table.from_pylist(
        [{"record_key": key, "row_hash": hashed, "_action": "created", "email": email,
          "website_id": 1, "firstname": "Zoë", "created_at": datetime(2020, 1, 2, tzinfo=UTC),
          "dob": date(1990, 5, 6), "_source": "f.csv", "_line": i + 2}
         for i, (key, email, hashed) in enumerate(rows)], schema=schema)


def test_bulk_load_stores_what_the_per_part_upsert_stores(tmp_path: Path) -> None:
    from magsync.load.sql_store import SqlTarget
    from magsync.transform.schema import CUSTOMER

    parts = [_staged_customers([("[2]", "b@x.io", 1), ("[1]", "a@x.io", 2)]),
             _staged_customers([("[3]", "c@x.io", 3), ("[2]", "b2@x.io", 4)])]  # [2] again
    now = datetime(2026, 1, 2, 3, 4, 5)
    stored = {}
    for mode in ("bulk", "upsert"):
        target = SqlTarget(f"sqlite:///{tmp_path}/{mode}.sqlite", source="s")
        target.migrate()
        assert target.can_bulk_load(CUSTOMER)
        if mode == "bulk":
            loaded = target.bulk_load(CUSTOMER, iter(parts), tmp_path / "scratch.sqlite",
                                      "run", now, before_commit=lambda: None)
            assert loaded == 4 and not (tmp_path / "scratch.sqlite").exists()
        else:
            for part in parts:
                with target.begin() as conn:
                    target.upsert(conn, CUSTOMER, part, "run", now)
        assert not target.can_bulk_load(CUSTOMER)
        target.dispose()
        with sqlite3.connect(tmp_path / f"{mode}.sqlite") as db:
            stored[mode] = db.execute("SELECT * FROM customers ORDER BY record_key").fetchall()
            indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master "
                                                "WHERE type = 'index'")}
            assert "ix_customers_email" in indexes
    assert stored["bulk"] == stored["upsert"]
    assert [row[:2] for row in stored["bulk"]] == [("s", "[1]"), ("s", "[2]"), ("s", "[3]")]
    assert "b2@x.io" in stored["bulk"][1]  # the later occurrence of a repeated key wins


def test_bulk_load_interrupted_before_commit_leaves_the_table_as_it_was(tmp_path: Path
                                                                          ) -> None:
    from magsync.load.sql_store import SqlTarget
    from magsync.transform.schema import CUSTOMER

    target = SqlTarget(f"sqlite:///{tmp_path}/t.sqlite", source="s")
    target.migrate()

    def crash() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        target.bulk_load(CUSTOMER, iter([_staged_customers([("[1]", "a@x.io", 1)])]),
                         tmp_path / "scratch.sqlite", "run", datetime(2026, 1, 2), crash)
    assert target.can_bulk_load(CUSTOMER) and not (tmp_path / "scratch.sqlite").exists()
    target.dispose()
    with sqlite3.connect(tmp_path / "t.sqlite") as db:
        assert db.execute("SELECT count(*) FROM customers").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = "
                          "'ix_customers_email'").fetchone() == (1,)


def test_sqlite_select_arrow_returns_the_rows_sqlite_returns(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from magsync.load.sql_bulk import sqlite_select_arrow

    engine = sa.create_engine(f"sqlite:///{tmp_path}/t.sqlite")
    rows = [("é", 2**62, None), ("a\nb", -1, "2020-01-01"), ("", 0, None)]
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (k TEXT, h INTEGER, d TEXT)")
        conn.exec_driver_sql("INSERT INTO t VALUES (?, ?, ?)", rows)
    with engine.connect() as conn:
        got = sqlite_select_arrow(conn, "SELECT k, h, d IS NOT NULL FROM t WHERE h <> ?", (5,))
    assert [tuple(r.values()) for r in got.to_pylist()] == [
        (k, h, int(d is not None)) for k, h, d in rows]
    engine.dispose()
