"""The vectorised fast paths agree with plain Python on awkward inputs."""

from __future__ import annotations

import csv
import io
import random
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import transform.keyset as keyset
from extract.csv_reader import _find_records
from load.sql_bulk import as_bound_text
from transform.diff import KeyIndex
from transform.keyset import KeyLookup, KeySet, digests
from transform.normalise import to_int


def reference_records(block: bytes) -> list[tuple[int, int]]:
    """(start line, field count) of each complete record, by walking the bytes."""
    out, fields, quoted, line, start_line, at_start = [], 1, False, 1, 1, True
    for byte in block:
        if at_start:
            start_line, at_start = line, False
        if byte == ord('"'):
            quoted = not quoted
        elif byte == ord(",") and not quoted:
            fields += 1
        elif byte == ord("\n"):
            line += 1
            if not quoted:
                out.append((start_line, fields))
                fields, at_start = 1, True
    return out


@pytest.mark.parametrize("seed", range(5))
def test_record_boundaries_and_field_counts(seed: int) -> None:
    rng = random.Random(seed)
    pieces = [b'"', b",", b"\n", b"a", b'""', b",,", b"\r"]
    for _ in range(400):
        block = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        records, _ = _find_records(block, 1, at_eof=False)
        got = list(zip(records.lines.tolist(), records.fields.tolist(), strict=True))
        assert got == reference_records(block), block


def test_field_counts_match_the_csv_module() -> None:
    text = 'a,"b,c",d\n"x\ny",,"q""r,"\n'
    records, _ = _find_records(text.encode(), 1, at_eof=True)
    assert records.fields.tolist() == [len(r) for r in csv.reader(io.StringIO(text))]


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
    from load.sql_store import SqlTarget
    from load.staging import staged_schema
    from transform.schema import GROUP

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
