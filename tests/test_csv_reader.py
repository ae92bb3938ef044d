"""The streaming reader: record boundaries, physical lines, malformed records."""

from __future__ import annotations

from pathlib import Path

import pytest

from magsync.extract.csv_reader import CsvRecordReader, _find_records

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


@pytest.mark.parametrize("block_bytes", [64, 1 << 20])
def test_a_quote_inside_an_unquoted_field_is_a_plain_character(tmp_path: Path,
                                                               block_bytes: int) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b'a,b\n1,O"Neil\n2,"x\ny"\n3,a"b"c\n4,"q""r"s\n5,z\n')
    rows, faults = read_all(path, 10, block_bytes)
    assert [(r["a"], r["b"], r["_line"]) for r in rows] == [
        ("1", 'O"Neil', 2), ("2", "x\ny", 3), ("3", 'a"b"c', 5), ("4", 'q"rs', 6),
        ("5", "z", 7)]
    assert not faults


def test_many_stray_quotes_in_one_block_fault_nothing_and_lose_nothing(tmp_path: Path
                                                                       ) -> None:
    lines = [f'{i},O"Neil {i}' if i % 3 == 0 else f'{i},"{i}\nstreet"' for i in range(100)]
    path = tmp_path / "f.csv"
    path.write_text("a,b\n" + "\n".join(lines) + "\n")
    rows, faults = read_all(path, 1000, 1 << 20)
    assert [r["a"] for r in rows] == [str(i) for i in range(100)]
    assert rows[99]["b"] == 'O"Neil 99' and rows[98]["b"] == "98\nstreet"
    assert rows[99]["_line"] == 2 + 99 + sum(1 for i in range(99) if i % 3)
    assert not faults


def test_a_bad_record_read_by_the_csv_module_is_faulted_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b'a,b\n1,O"N\xffeil\n2,O"Neil,extra\n3,"x\ny"\n4,z\n')
    rows, faults = read_all(path, 10, 64)
    assert [(r["a"], r["_line"]) for r in rows] == [("3", 4), ("4", 6)]
    assert [(f.rule, f.source_line) for f in faults] == [("encoding", 2), ("field_count", 3)]


@pytest.mark.parametrize("block_bytes", [64, 1 << 20])
def test_a_lone_cr_ends_a_record_and_a_line(tmp_path: Path, block_bytes: int) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b'a,b\n1,2\r3,"x\ry"\r\n4,5\r\r6,7')
    rows, faults = read_all(path, 10, block_bytes)
    assert [(r["a"], r["b"], r["_line"]) for r in rows] == [
        ("1", "2", 2), ("3", "x\ry", 3), ("4", "5", 5), ("6", "7", 7)]
    assert not faults


def test_unterminated_quote_says_how_far_it_runs(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b'a,b\n1,2\n3,"open\n4,5\n6,7\n')
    _, faults = read_all(path, 10, 1 << 20)
    assert [(f.rule, f.source_line) for f in faults] == [("unterminated_quote", 3)]
    assert "lines 3-5" in faults[0].message


def test_a_disagreement_with_pyarrow_is_settled_by_the_csv_module(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    block = b"1,2\n3,4\n"
    path.write_bytes(b"a,b\n" + block)
    records, _ = _find_records(block, 2, at_eof=True)
    # Boundaries pyarrow cannot agree with: one record claimed over two lines.
    records.starts, records.lines, records.fields = (records.starts[:1], records.lines[:1],
                                                     records.fields[:1])
    records.ends = records.ends[1:]
    table, faults = CsvRecordReader(path, entity="customer")._parse(block, records)
    assert [(r["a"], r["b"], r["_line"]) for r in table.to_pylist()] == [
        ("1", "2", 2), ("3", "4", 3)]
    assert not faults
