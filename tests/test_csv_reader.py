"""The streaming reader: record boundaries, physical lines, malformed records."""

from __future__ import annotations

from pathlib import Path

import pytest

from extract.csv_reader import CsvRecordReader

CONTENT = (
    b"a,b,password,c\n"
    b'1,"x\ny",secret,3\n'  # line 2, two physical lines
    b"4,5\n"  # line 4: too few fields
    b"\n"  # line 5: blank, skipped silently
    b"6,7,s,8\n"  # line 6
    b"9,\xff\xfe,s,10\n"  # line 7: not UTF-8
    b'11,"multi\r\nline",s,12'  # line 8, no trailing newline
)


def read_all(path: Path, batch_size: int, block_bytes: int) -> tuple[list[dict], list]:
    rows, faults = [], []
    for chunk in CsvRecordReader(path, entity="customer", batch_size=batch_size,
                                 block_bytes=block_bytes):
        assert chunk.table.num_rows <= batch_size
        rows.extend(chunk.table.to_pylist())
        faults.extend(chunk.faults)
    return rows, faults


@pytest.mark.parametrize("batch_size", [1, 2, 3, 1000])
@pytest.mark.parametrize("block_bytes", [64, 70, 1 << 20])
def test_lines_and_faults_whatever_the_batch_and_block(tmp_path: Path, batch_size: int,
                                                       block_bytes: int) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(CONTENT)
    rows, faults = read_all(path, batch_size, block_bytes)
    assert [(r["a"], r["_line"]) for r in rows] == [("1", 2), ("6", 6), ("11", 8)]
    assert rows[0]["b"] == "x\ny"
    assert rows[2]["b"] == "multi\r\nline"
    assert {(f.rule, f.source_line) for f in faults} == {("field_count", 4), ("encoding", 7)}
    assert all(f.source == str(path) for f in faults)


def test_password_column_is_never_read(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(CONTENT)
    rows, _ = read_all(path, 10, 1 << 20)
    assert all("password" not in r for r in rows)
    assert all("secret" not in str(r) for r in rows)


def test_bom_and_header_spaces(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"\xef\xbb\xbf a , b\n1,2\n")
    rows, faults = read_all(path, 10, 1 << 20)
    assert rows == [{"a": "1", "b": "2", "_source": str(path), "_line": 2}]
    assert not faults


def test_unterminated_quote_faults_the_rest_not_the_run(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b'a,b\n1,2\n3,"open\n4,5\n')
    rows, faults = read_all(path, 10, 64)
    assert [r["a"] for r in rows] == ["1"]
    assert [(f.rule, f.source_line) for f in faults] == [("unterminated_quote", 3)]


def test_record_longer_than_a_block(tmp_path: Path) -> None:
    long_street = "x" * 500
    path = tmp_path / "f.csv"
    path.write_text(f'a,b\n1,"{long_street}\nmore"\n2,3\n')
    rows, _ = read_all(path, 1, 64)
    assert [(r["a"], r["_line"]) for r in rows] == [("1", 2), ("2", 4)]
    assert rows[0]["b"] == long_street + "\nmore"
