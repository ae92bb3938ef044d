"""A streaming CSV reader that knows each record's physical line.

pyarrow parses fast but, when streaming, cannot say on which physical line a record
started (multi-line quoted streets make row numbers and line numbers differ). So this
reader finds record boundaries itself, vectorised with numpy on the raw bytes: a newline
ends a record when the number of quote characters before it (since the record's start)
is even. It also counts fields the same way, checks UTF-8, faults the records that fail,
and hands only well-formed records to pyarrow.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from extract.csv_open import Opener, check_header, split_header
from transform.faults import Fault, Stage
from transform.schema import LINE_COL, NEVER_READ, SOURCE_COL

BOM = b"\xef\xbb\xbf"
QUOTE, NEWLINE, COMMA = 34, 10, 44


@dataclass
class RawChunk:
    """Well-formed records as an all-string Arrow table, plus the records that were not."""

    table: pa.Table  # header columns (minus never-read ones) + _source + _line
    faults: list[Fault] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)  # start lines of faulted records


def read_header(path: Path, *, opener: Opener | None = None, delimiter: str = ",") -> list[str]:
    """The header of a CSV file: names stripped of BOM and spaces, in lower case;
    SourceFatalError for a repeated name or a header that splits on another delimiter."""
    with opener() if opener else path.open("rb") as fh:
        first = fh.readline()
        # A quoted header name could contain a newline; real exports never do.
    names = split_header(first, delimiter)
    check_header(path, names, first, delimiter)
    return names


@dataclass
class _Records:
    """Record boundaries found in one block of bytes."""

    starts: np.ndarray  # byte offset where each record starts
    ends: np.ndarray  # byte offset of each record's terminating newline (exclusive end)
    lines: np.ndarray  # 1-based physical line where each record starts
    fields: np.ndarray  # number of fields in each record
    unterminated: bool = False  # the last record ends inside an open quote (at EOF)


def _find_records(block: bytes, first_line: int, at_eof: bool,
                  sep: int = COMMA) -> tuple[_Records, int]:
    """Split `block` into complete records; returns them and the bytes consumed."""
    arr = np.frombuffer(block, dtype=np.uint8)
    quotes = np.flatnonzero(arr == QUOTE)
    newlines = np.flatnonzero(arr == NEWLINE)
    outside = np.searchsorted(quotes, newlines) % 2 == 0
    ends = newlines[outside]
    consumed = int(ends[-1]) + 1 if len(ends) else 0
    unterminated = False
    if at_eof and consumed < len(block):
        ends = np.append(ends, len(block))  # last record without a trailing newline
        unterminated = (len(quotes) - np.searchsorted(quotes, consumed)) % 2 == 1
        consumed = len(block)
    starts = np.concatenate(([0], ends[:-1] + 1)) if len(ends) else np.empty(0, np.int64)
    lines = first_line + np.searchsorted(newlines, starts)
    fields = _field_counts(arr, ends, quotes, sep)
    return _Records(starts, ends, lines, fields, bool(unterminated)), consumed


def _field_counts(arr: np.ndarray, ends: np.ndarray, quotes: np.ndarray,
                  sep: int = COMMA) -> np.ndarray:
    """Fields per record: its commas, less those between an opening quote and its closing
    one (a quoted field never spans two records), plus one. Counted by looking up record
    ends and quotes among the comma positions, not each comma among the quotes: a wide
    export has millions of commas per block."""
    commas = np.flatnonzero(arr == sep)
    per_record = np.diff(np.searchsorted(commas, ends), prepend=0)
    if len(quotes):
        before = np.searchsorted(commas, quotes)
        after = np.append(before[1:], len(commas))  # an unclosed quote runs to the end
        inside = (after - before)[0::2]
        owner = np.searchsorted(ends, quotes[0::2])  # past the last record: the tail's
        per_record -= np.bincount(owner, weights=inside,
                                  minlength=len(ends))[: len(ends)].astype(np.int64)
    fields: np.ndarray = per_record + 1
    return fields


class CsvRecordReader:
    """Streams a CSV file as RawChunks of at most `batch_size` well-formed records."""

    def __init__(
        self,
        path: Path,
        *,
        entity: str,
        batch_size: int = 50_000,
        block_bytes: int = 8 << 20,
        opener: Opener | None = None,
        delimiter: str = ",",
    ) -> None:
        self.path = path
        self.opener: Opener = opener or (lambda: path.open("rb"))
        self.delimiter = delimiter
        self.entity = entity
        self.batch_size = max(1, batch_size)
        self.block_bytes = max(64, block_bytes)
        self.header = read_header(path, opener=self.opener, delimiter=delimiter)
        self.columns = [c for c in self.header if c not in NEVER_READ]

    def __iter__(self) -> Iterator[RawChunk]:
        pending: list[pa.Table] = []
        pending_rows = 0
        faults: list[Fault] = []
        bad_lines: list[int] = []
        for table, block_faults in self._blocks():
            faults.extend(block_faults)
            bad_lines.extend(f.source_line or 0 for f in block_faults)
            offset = 0
            while offset < table.num_rows:
                take = min(self.batch_size - pending_rows, table.num_rows - offset)
                pending.append(table.slice(offset, take))
                pending_rows += take
                offset += take
                if pending_rows == self.batch_size:
                    yield RawChunk(pa.concat_tables(pending), faults, bad_lines)
                    pending, pending_rows, faults, bad_lines = [], 0, [], []
        if pending or faults:
            yield RawChunk(self._concat(pending), faults, bad_lines)

    def _concat(self, tables: list[pa.Table]) -> pa.Table:
        return pa.concat_tables(tables) if tables else self._empty()

    def _empty(self) -> pa.Table:
        names = [*self.columns, SOURCE_COL, LINE_COL]
        types = [pa.string()] * (len(self.columns) + 1) + [pa.int64()]
        return pa.schema(list(zip(names, types, strict=True))).empty_table()

    def _blocks(self) -> Iterator[tuple[pa.Table, list[Fault]]]:
        """Reads the file in blocks of whole records; parses each block with pyarrow."""
        with self.opener() as fh:
            header_line = fh.readline()
            line = 1 + header_line.count(b"\n")
            carry = b""
            while True:
                chunk = fh.read(self.block_bytes)
                at_eof = not chunk
                block = carry + chunk
                if not block:
                    return
                records, consumed = _find_records(block, line, at_eof, ord(self.delimiter))
                if not len(records.ends) and not at_eof:
                    carry = block  # one record longer than a block: read on
                    continue
                yield self._parse(block, records)
                line += block.count(b"\n", 0, consumed)
                carry = block[consumed:]
                if at_eof:
                    return

    def _parse(self, block: bytes, rec: _Records) -> tuple[pa.Table, list[Fault]]:
        """Faults malformed records and parses the rest into an all-string table."""
        faults: list[Fault] = []
        keep = np.ones(len(rec.ends), dtype=bool)
        blank = (rec.ends - rec.starts) <= 1  # empty line, or a lone "\r"
        blank &= np.array([block[s : e].strip() == b"" for s, e in
                           zip(rec.starts[blank], rec.ends[blank], strict=True)], dtype=bool) \
            if blank.any() else blank
        keep &= ~blank
        expected = len(self.header)
        if rec.unterminated:
            keep[-1] = False
            faults.append(self._fault(int(rec.lines[-1]), "unterminated_quote",
                                      "a quoted field is never closed before the end of file"))
        for i in np.flatnonzero(keep & (rec.fields != expected)):
            keep[i] = False
            faults.append(self._fault(int(rec.lines[i]), "field_count",
                                      f"expected {expected} fields, found {int(rec.fields[i])}"))
        good = self._good_bytes(block, rec, keep)
        good, dropped = self._drop_undecodable(good, rec, keep)
        faults.extend(self._fault(line, "encoding", "bytes that are not valid UTF-8")
                      for line in dropped)
        faults.sort(key=lambda f: f.source_line or 0)
        lines = rec.lines[keep]
        table = self._arrow(good, len(lines))
        table = table.append_column(SOURCE_COL, pa.array([str(self.path)] * len(lines),
                                                          pa.string()))
        return table.append_column(LINE_COL, pa.array(lines, pa.int64())), faults

    @staticmethod
    def _good_bytes(block: bytes, rec: _Records, keep: np.ndarray) -> bytes:
        if keep.all():
            return block[: int(rec.ends[-1]) + 1] if len(rec.ends) else b""
        parts = [block[s : e + 1] for s, e, k in
                 zip(rec.starts.tolist(), rec.ends.tolist(), keep.tolist(), strict=True) if k]
        return b"".join(p if p.endswith(b"\n") else p + b"\n" for p in parts)

    def _drop_undecodable(self, good: bytes, rec: _Records,
                          keep: np.ndarray) -> tuple[bytes, list[int]]:
        """Removes records with invalid UTF-8, one at a time (rare path)."""
        dropped: list[int] = []
        while True:
            try:
                good.decode("utf-8")
                return good, dropped
            except UnicodeDecodeError as err:
                kept = np.flatnonzero(keep)
                lengths = (rec.ends[kept] - rec.starts[kept] + 1)
                offsets = np.concatenate(([0], np.cumsum(lengths)))
                pos = int(np.searchsorted(offsets, err.start, side="right")) - 1
                idx = kept[pos]
                keep[idx] = False
                dropped.append(int(rec.lines[idx]))
                good = good[: offsets[pos]] + good[offsets[pos + 1]:]

    def _arrow(self, data: bytes, n_records: int) -> pa.Table:
        if n_records == 0:
            return self._empty().select(self.columns)
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=self.header,
                                           block_size=max(1 << 20, len(data) + 1)),
            parse_options=pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True,
                                             ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(self.header, pa.string()),
                include_columns=self.columns,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        if table.num_rows != n_records:  # our boundaries and pyarrow's must agree
            raise ValueError(f"{self.path}: parsed {table.num_rows} rows, expected {n_records}")
        return table

    def _fault(self, line: int, rule: str, message: str) -> Fault:
        return Fault(entity=self.entity, stage=Stage.READ, rule=rule, message=message,
                     source=str(self.path), source_line=line)
