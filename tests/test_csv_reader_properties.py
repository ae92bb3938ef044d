"""The streaming reader reads any bytes record for record as csv.reader does (a file
opened with newline=''): stray quotes, doubled quotes, unclosed quotes, CR, LF and CR LF
anywhere, ragged rows and bytes that are not UTF-8, whatever the block and batch size.
Every record csv.reader sees is either read with the same values or faulted at its own
physical line: nothing is lost silently."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from magsync.extract.csv_reader import CsvRecordReader

WORDS = ["", "a", "bc", "O'Neil", " x ", "é", "日本"]
TRICKY = ["", "a", ",", "\n", "\r", "\r\n", '""', " ", "é"]
TERMINATORS = [b"\n", b"\r\n", b"\r"]
# Bytes dropped anywhere: quotes, delimiters and line ends out of place, invalid UTF-8.
JUNK = [b'"', b",", b"\n", b"\r", b"\r\n", b'""', b"\xff", b'O"Neil', b'"a"b', b'a""']


def field_bytes() -> st.SearchStrategy[bytes]:
    """One field: plain, properly quoted, or with a quote where RFC 4180 puts none."""
    plain = st.sampled_from(WORDS).map(str.encode)
    quoted = st.lists(st.sampled_from(TRICKY), max_size=4).map(
        lambda parts: b'"' + "".join(parts).replace('"', '""').encode() + b'"')
    stray = st.sampled_from([b'O"Neil', b'a"b"c', b'x"', b'"ab"cd', b'""b', b'"open'])
    return st.one_of(plain, plain, quoted, stray)


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[int, bytes]:
    """A column count and a file body: rows of mostly that many fields, with junk."""
    ncol = draw(st.integers(1, 4))
    body = b""
    for _ in range(draw(st.integers(0, 8))):
        width = draw(st.sampled_from([ncol, ncol, ncol, max(1, ncol - 1), ncol + 1]))
        fields = [draw(field_bytes()) for _ in range(width)]
        if draw(st.integers(0, 4)) == 0:  # some junk somewhere in the row
            at = draw(st.integers(0, len(fields) - 1))
            fields[at] += draw(st.sampled_from(JUNK))
        body += b",".join(fields) + draw(st.sampled_from([*TERMINATORS, b"\n", b"\n\n"]))
    if body and draw(st.booleans()):
        body = body.rstrip(b"\r\n")  # the last record without a line end
    return ncol, body


def csv_module_view(body: bytes, ncol: int) -> tuple[list[tuple[int, list[str]]],
                                                        dict[int, str]]:
    """What csv.reader makes of the body after a one-line header: the good records with
    their start lines, and the rule each other record must be faulted by, by line."""
    ran_out: list[bool] = []

    def lines() -> Iterator[str]:
        yield from io.StringIO(body.decode("utf-8", "surrogateescape"), newline="")
        ran_out.append(True)

    reader = csv.reader(lines())
    good: list[tuple[int, list[str]]] = []
    bad: dict[int, str] = {}
    while True:
        start = 2 + reader.line_num  # the header is line 1
        try:
            row = next(reader)
        except StopIteration:
            break
        if ran_out:  # csv.reader hit the end of the file inside a quoted field
            bad[start] = "unterminated_quote"
        elif len(row) != ncol:
            if row:  # [] is a blank line
                bad[start] = "field_count"
        elif any("\udc80" <= ch <= "\udcff" for value in row for ch in value):
            bad[start] = "encoding"
        else:
            good.append((start, row))
    return good, bad


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prop")


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=csv_files(), block_bytes=st.sampled_from([64, 97, 1 << 20]),
       batch_size=st.sampled_from([1, 3, 1000]))
def test_reader_matches_the_csv_module(folder: Path, case: tuple[int, bytes],
                                       block_bytes: int, batch_size: int) -> None:
    ncol, body = case
    header = [f"c{i}" for i in range(ncol)]
    path = folder / "f.csv"
    path.write_bytes(",".join(header).encode() + b"\n" + body)

    got: list[tuple[int, list[str]]] = []
    faults: dict[int, str] = {}
    for chunk in CsvRecordReader(path, entity="customer", batch_size=batch_size,
                                 block_bytes=block_bytes):
        got.extend((row["_line"], [row[c] for c in header]) for row in chunk.table.to_pylist())
        for fault in chunk.faults:
            assert fault.source_line not in faults, "two faults for one record"
            faults[fault.source_line or 0] = fault.rule

    good, bad = csv_module_view(body, ncol)
    assert got == good
    assert faults == bad
    assert len(got) + len(faults) == len(good) + len(bad)  # nothing lost silently
