"""records.csv is safe to open in a spreadsheet; records.parquet keeps the true values."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from magsync.load.report import RecordsWriter
from magsync.transform.faults import Fault, Stage

# (value as the source had it, as records.csv must hold it)
CASES = [
    ("=HYPERLINK(\"http://evil.example\",\"x\")", "'=HYPERLINK(\"http://evil.example\",\"x\")"),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("-", "'-"),
    ("-5\n=1+1", "'-5\n=1+1"),
    ("-5", "'-5"),  # number-like text too: shown as the source wrote it
    ("+4312345", "'+4312345"),  # a phone number keeps its "+"
    ("-1e3", "'-1e3"),
    ("Zoë = 1", "Zoë = 1"),  # only the first character matters
    ("'quoted", "'quoted"),
    ("", ""),
]


def write_records(folder: Path, values: Sequence[str | None], message: str) -> Path:
    writer = RecordsWriter(folder, "run-1")
    writer.write_faults([Fault("customer", Stage.NORMALISE, "bad_date", message,
                               key=f"[{i}]", column="dob", value=v, source_line=-i if i else 7)
                         for i, v in enumerate(values)])
    writer.close()
    return folder / "records.csv"


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_formula_cells_are_text_and_numbers_stay(tmp_path: Path) -> None:
    values = [source for source, _ in CASES]
    path = write_records(tmp_path, values, "=cmd|' /C calc'!A0")
    rows = read_rows(path)
    assert [r["value"] for r in rows] == [written for _, written in CASES]
    assert {r["message"] for r in rows} == {"'=cmd|' /C calc'!A0"}
    # The number column is written as numbers, negative ones included.
    assert [r["source_line"] for r in rows][:3] == ["7", "-1", "-2"]
    # The Parquet holds what the source had.
    parquet = pq.read_table(tmp_path / "records.parquet").to_pydict()
    assert parquet["value"] == values
    assert parquet["message"] == ["=cmd|' /C calc'!A0"] * len(values)


def test_file_is_utf8_with_bom(tmp_path: Path) -> None:
    path = write_records(tmp_path, ["Zoë", None], "ok")
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf\"run_id\"")
    assert data.count(b"\xef\xbb\xbf") == 1
    rows = read_rows(path)
    assert next(iter(rows[0])) == "run_id"
    assert [r["value"] for r in rows] == ["Zoë", ""]


@pytest.mark.parametrize("parts", [0, 3])
def test_bom_once_whatever_the_parts(tmp_path: Path, parts: int) -> None:
    writer = RecordsWriter(tmp_path, "run-1")
    for i in range(parts):
        writer.write({"entity": "customer", "key": [f"[{i}]"], "action": "created"})
    writer.close()
    data = (tmp_path / "records.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and data.count(b"\xef\xbb\xbf") == 1
    assert len(read_rows(tmp_path / "records.csv")) == parts
