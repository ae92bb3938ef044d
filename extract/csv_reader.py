"""A streaming CSV reader that knows each record's physical line.

pyarrow parses fast but, when streaming, cannot say on which physical line a record
started (multi-line quoted streets make row numbers and line numbers differ). So this
reader finds record boundaries itself and hands only well-formed records to pyarrow.

It reads CSV as Python's `csv` module and pyarrow do (RFC 4180, lenient): a quote opens
a quoted field only at the start of a field, `""` inside one is a quote, and a quote in
the middle of an unquoted field (`O"Neil`) is a plain character. A record ends at a
newline, CR LF or lone CR outside quotes; each of those also ends a physical line.

The fast path is vectorised with numpy on the raw bytes: while every quote sits where
RFC 4180 allows (opening at a field start, closing at a field end, or doubled), counting
quotes is enough: a newline ends a record when the number of quotes before it is even.
From the first quote or lone CR where that shortcut would go wrong, the record holding it
is re-read with `csv.reader` and re-written as well-formed CSV, then the fast path goes on.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from magsync.extract.csv_open import Opener, check_header, split_header
from magsync.transform.faults import Fault, Stage
from magsync.transform.schema import LINE_COL, NEVER_READ, SOURCE_COL

BOM = b"\xef\xbb\xbf"
QUOTE, NEWLINE, CR, COMMA = 34, 10, 13, 44
# csv.reader detours per block (each ~30 us of numpy set-up on top of the record it reads);
# past them csv.reader reads the rest of the block, which costs about as much.
NOT_UTF8 = "bytes that are not valid UTF-8 (a Windows export? pass --encoding cp1252)"
MAX_RESUMES = 5_000
# One field can legitimately hold the rest of a file (an unclosed quote); csv.reader
# would raise on anything over 128 KiB, pyarrow has no such limit.
csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))


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
    fields: np.ndarray  # number of fields in each record; 0 for a blank line
    unterminated: bool = False  # the last record ends inside an open quote (at EOF)
    text: dict[int, bytes] = field(default_factory=dict)  # re-read records, re-written
    rows: dict[int, list[str]] = field(default_factory=dict)  # and their values
    first_line: int = 1  # physical line of the block's first byte
    next_line: int = 1  # physical line of the first byte not consumed
    last_line: int = 1  # physical line of the last byte consumed
    consumed: int = 0  # bytes of the block these records cover


@dataclass
class _Segment:
    """Consecutive records read one way (vectorised, or by csv.reader)."""

    starts: np.ndarray
    ends: np.ndarray
    fields: np.ndarray
    consumed: int
    unterminated: bool = False
    text: list[bytes] = field(default_factory=list)  # csv.reader's records only
    rows: list[list[str]] = field(default_factory=list)


def _find_records(block: bytes, first_line: int, at_eof: bool, delimiter: bytes = b",",
                  *, force_slow: bool = False) -> tuple[_Records, int]:
    """Split `block` into complete records; returns them and the bytes consumed.

    The vectorised scan runs until its first anomaly, csv.reader reads the record holding
    it, and the scan resumes after that record; after MAX_RESUMES detours (or with
    `force_slow`) csv.reader reads the rest of the block."""
    scan = _Scan(block, at_eof, delimiter[0])
    segments: list[_Segment] = []
    pos, detours = 0, 0
    while True:
        if not force_slow:
            fast, anomaly = scan.fast(pos)
            segments.append(fast)
            pos = fast.consumed
            if anomaly is None:
                break
        limit = math.inf if force_slow or detours >= MAX_RESUMES else 1
        slow, stopped = scan.slow(pos, limit)
        segments.append(slow)
        pos = slow.consumed
        detours += 1
        if stopped:
            break
    return scan.join(segments, first_line), pos


def _is_sep(values: np.ndarray, delimiter: int) -> np.ndarray:
    """Bytes that end a field: the delimiter, LF or CR."""
    sep: np.ndarray = (values == delimiter) | (values == NEWLINE) | (values == CR)
    return sep


class _Scan:
    """Where the quotes, delimiters and line breaks of one block are, found once."""

    def __init__(self, block: bytes, at_eof: bool, delimiter: int) -> None:
        arr = np.frombuffer(block, dtype=np.uint8)
        self.block, self.arr, self.at_eof, self.delimiter = block, arr, at_eof, delimiter
        self.quotes = np.flatnonzero(arr == QUOTE)
        self.delims = np.flatnonzero(arr == delimiter)
        newlines = np.flatnonzero(arr == NEWLINE)
        lone_crs = self._lone_crs()
        # A line ends at LF, at CR LF (counted at the LF) or at a lone CR, as csv.reader's
        # line_num counts them; for LF and CR LF files that is the count of LFs.
        self.breaks = np.union1d(newlines, lone_crs) if len(lone_crs) else newlines
        # Everything below is for both quote parities: a segment that starts after an
        # odd number of quotes sees every quote's role swapped.
        parity = np.searchsorted(self.quotes, newlines) % 2
        self.record_ends = (newlines[parity == 0], newlines[parity == 1])
        cr_parity = np.searchsorted(self.quotes, lone_crs) % 2
        self.lone_outside = (lone_crs[cr_parity == 0], lone_crs[cr_parity == 1])
        opens_ok, closes_ok = self._quote_roles()
        even = np.arange(len(self.quotes)) % 2 == 0
        self.bad_quotes = (self.quotes[np.where(even, ~opens_ok, ~closes_ok)],
                           self.quotes[np.where(even, ~closes_ok, ~opens_ok)])

    def _lone_crs(self) -> np.ndarray:
        """CRs not followed by LF; a CR ending the block mid-file may yet be CR LF."""
        arr = self.arr
        crs = np.flatnonzero(arr == CR)
        after = crs + 1
        inside = after < len(arr)
        lone = np.ones(len(crs), dtype=bool) if self.at_eof else inside.copy()
        lone[inside] = arr[after[inside]] != NEWLINE
        found: np.ndarray = crs[lone]
        return found

    def _quote_roles(self) -> tuple[np.ndarray, np.ndarray]:
        """Whether each quote may open a quoted field (at a field start, or the second of
        a doubled pair) and whether it may close one (at a field end, or the first of a
        pair). A quote that has neither role where counting puts it is an anomaly."""
        q, arr, size = self.quotes, self.arr, len(self.arr)
        at_start = (q == 0) | _is_sep(arr[np.maximum(q - 1, 0)], self.delimiter)
        at_end = _is_sep(arr[np.minimum(q + 1, size - 1)], self.delimiter)
        at_end[q + 1 >= size] = True  # EOF ends a field; mid-file the next block decides
        pair = np.diff(q) == 1
        after_quote = np.concatenate(([False], pair))
        before_quote = np.concatenate((pair, [False]))
        opens: np.ndarray = at_start | after_quote
        closes: np.ndarray = at_end | before_quote
        return opens, closes

    def fast(self, pos: int) -> tuple[_Segment, int | None]:
        """Records from `pos` (a record start) up to the first anomaly, by counting quotes."""
        phase = int(np.searchsorted(self.quotes, pos)) % 2
        anomaly = _first_at_or_after(self.bad_quotes[phase], pos)
        lone_cr = _first_at_or_after(self.lone_outside[phase], pos)
        if lone_cr is not None and (anomaly is None or lone_cr < anomaly):
            anomaly = lone_cr
        candidates = self.record_ends[phase]
        lo = int(np.searchsorted(candidates, pos))
        hi = len(candidates) if anomaly is None else int(np.searchsorted(candidates, anomaly))
        ends = candidates[lo:hi]
        consumed = int(ends[-1]) + 1 if len(ends) else pos
        unterminated = False
        size = len(self.arr)
        if anomaly is None and self.at_eof and consumed < size:
            ends = np.append(ends, size)  # last record without a trailing newline
            tail_quotes = len(self.quotes) - int(np.searchsorted(self.quotes, consumed))
            unterminated = tail_quotes % 2 == 1
            consumed = size
        starts = np.concatenate(([pos], ends[:-1] + 1)) if len(ends) else ends
        fields = _field_counts(_within(self.delims, pos, consumed), ends,
                               _within(self.quotes, pos, consumed))
        length = ends - starts
        blank = (length == 0) | ((length == 1) & (self.arr[np.minimum(starts, size - 1)] == CR))
        fields[blank] = 0
        return _Segment(starts, ends, fields, consumed, unterminated), anomaly

    def slow(self, pos: int, limit: float) -> tuple[_Segment, bool]:
        """Up to `limit` records from `pos` read by csv.reader and re-written as well-formed
        CSV; also says whether the block has no more complete records after them."""
        feed = _Lines(self, pos)
        sep = chr(self.delimiter)
        reader = csv.reader(feed, delimiter=sep)
        out = io.StringIO()
        writer = csv.writer(out, delimiter=sep, quoting=csv.QUOTE_ALL, lineterminator="\n")
        seg = _Segment(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64), pos)
        starts: list[int] = []
        ends: list[int] = []
        stopped = False
        while len(starts) < limit:
            start = feed.offset
            try:
                row = next(reader)
            except StopIteration:
                stopped = True
                break
            if feed.exhausted:  # csv.reader ran out of lines inside a quoted field
                stopped = True
                if not self.at_eof:
                    feed.offset = start  # the record goes on in the next block
                    break
                seg.unterminated = True
            out.seek(0)
            out.truncate()
            writer.writerow(row)
            starts.append(start)
            ends.append(feed.offset - 1)
            seg.rows.append(row)
            seg.text.append(out.getvalue().encode("utf-8", "surrogateescape"))
            if stopped:
                break
        seg.starts, seg.ends = np.array(starts, np.int64), np.array(ends, np.int64)
        seg.fields = np.array([len(r) for r in seg.rows], np.int64)  # [] is a blank line
        seg.consumed = feed.offset
        return seg, stopped

    def join(self, segments: list[_Segment], first_line: int) -> _Records:
        """The block's records, in file order, from its segments."""
        text: dict[int, bytes] = {}
        rows: dict[int, list[str]] = {}
        count = 0
        for seg in segments:
            text.update(zip(range(count, count + len(seg.text)), seg.text, strict=True))
            rows.update(zip(range(count, count + len(seg.rows)), seg.rows, strict=True))
            count += len(seg.starts)
        starts = np.concatenate([s.starts for s in segments]).astype(np.int64)
        consumed = segments[-1].consumed
        return _Records(
            starts=starts,
            ends=np.concatenate([s.ends for s in segments]).astype(np.int64),
            lines=first_line + np.searchsorted(self.breaks, starts),
            fields=np.concatenate([s.fields for s in segments]).astype(np.int64),
            unterminated=segments[-1].unterminated,
            text=text, rows=rows, first_line=first_line,
            next_line=first_line + int(np.searchsorted(self.breaks, consumed)),
            last_line=first_line + int(np.searchsorted(self.breaks, max(consumed - 1, 0))),
            consumed=consumed,
        )


class _Lines:
    """The block's complete physical lines from an offset, as text for csv.reader, which
    then splits records exactly as it does reading a file opened with newline=''."""

    def __init__(self, scan: _Scan, pos: int) -> None:
        self.block, self.breaks, self.at_eof = scan.block, scan.breaks, scan.at_eof
        self.next_break = int(np.searchsorted(self.breaks, pos))
        self.offset = pos
        self.exhausted = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.next_break < len(self.breaks):
            end = int(self.breaks[self.next_break]) + 1
            self.next_break += 1
        elif self.at_eof and self.offset < len(self.block):
            end = len(self.block)
        else:
            self.exhausted = True
            raise StopIteration
        line = self.block[self.offset:end]
        self.offset = end
        # Undecodable bytes survive the round trip and are faulted as `encoding` later.
        return line.decode("utf-8", "surrogateescape")


def _first_at_or_after(positions: np.ndarray, pos: int) -> int | None:
    i = int(np.searchsorted(positions, pos))
    return int(positions[i]) if i < len(positions) else None


def _within(positions: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The sorted positions in [lo, hi)."""
    found: np.ndarray = positions[np.searchsorted(positions, lo):np.searchsorted(positions, hi)]
    return found


def _field_counts(delims: np.ndarray, ends: np.ndarray, quotes: np.ndarray) -> np.ndarray:
    """Fields per record: its delimiters, less those between an opening quote and its
    closing one (a quoted field never spans two records), plus one. `delims` and `quotes`
    are those of these records only. Counted by looking up record ends and quotes among
    the delimiter positions, not each delimiter among the quotes: a wide export has
    millions of delimiters per block."""
    per_record = np.diff(np.searchsorted(delims, ends), prepend=0)
    if len(quotes):
        before = np.searchsorted(delims, quotes)
        after = np.append(before[1:], len(delims))  # an unclosed quote runs to the end
        inside = (after - before)[0::2]
        owner = np.searchsorted(ends, quotes[0::2])
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
                records, consumed = _find_records(block, line, at_eof, self.delimiter.encode())
                if not len(records.ends) and not at_eof:
                    carry = block  # one record longer than a block: read on
                    continue
                yield self._parse(block, records)
                line = records.next_line
                carry = block[consumed:]
                if at_eof:
                    return

    def _parse(self, block: bytes, rec: _Records, *,
               direct: bool = False) -> tuple[pa.Table, list[Fault]]:
        """Faults malformed records and parses the rest into an all-string table
        (`direct`: from csv.reader's values, when pyarrow saw other records than we did)."""
        faults: list[Fault] = []
        keep = rec.fields != 0  # a blank line holds no record
        expected = len(self.header)
        if rec.unterminated:
            keep[-1] = False
            start = int(rec.lines[-1])
            faults.append(self._fault(start, "unterminated_quote",
                                      "a quoted field is never closed: this record runs to "
                                      f"the end of the file (lines {start}-{rec.last_line})"))
        for i in np.flatnonzero(keep & (rec.fields != expected)):
            keep[i] = False
            faults.append(self._fault(int(rec.lines[i]), "field_count",
                                      f"expected {expected} fields, found {int(rec.fields[i])}"))
        good, offsets = self._good_bytes(block, rec, keep)
        good, dropped = self._drop_undecodable(good, offsets, rec, keep)
        faults.extend(self._fault(line, "encoding", NOT_UTF8) for line in dropped)
        faults.sort(key=lambda f: f.source_line or 0)
        lines = rec.lines[keep]
        if direct:
            table = self._from_rows([rec.rows[i] for i in np.flatnonzero(keep).tolist()])
        else:
            parsed = self._arrow(good, len(lines))
            if parsed is None:  # our boundaries and pyarrow's disagree: csv.reader decides
                again, _ = _find_records(block[: rec.consumed], rec.first_line, at_eof=True,
                                         force_slow=True)
                return self._parse(block, again, direct=True)
            table = parsed
        table = table.append_column(SOURCE_COL, pa.array([str(self.path)] * len(lines),
                                                          pa.string()))
        return table.append_column(LINE_COL, pa.array(lines, pa.int64())), faults

    @staticmethod
    def _good_bytes(block: bytes, rec: _Records, keep: np.ndarray) -> tuple[bytes, np.ndarray]:
        """The kept records as CSV, and the offset where each starts (then the length)."""
        if keep.all() and not rec.text:
            data = block[: int(rec.ends[-1]) + 1] if len(rec.ends) else b""
            return data, np.append(rec.starts, len(data))
        parts = [rec.text[i] if i in rec.text else block[s : e + 1] for i, s, e in
                 zip(np.flatnonzero(keep).tolist(), rec.starts[keep].tolist(),
                     rec.ends[keep].tolist(), strict=True)]
        parts = [p if p.endswith(b"\n") else p + b"\n" for p in parts]
        offsets = np.concatenate(([0], np.cumsum([len(p) for p in parts], dtype=np.int64)))
        return b"".join(parts), offsets

    def _drop_undecodable(self, good: bytes, offsets: np.ndarray, rec: _Records,
                          keep: np.ndarray) -> tuple[bytes, list[int]]:
        """Removes records with invalid UTF-8 (rare path). Decoding resumes after each bad
        record, so a file full of them costs one pass, not one pass per bad record."""
        kept = np.flatnonzero(keep)
        bad: list[int] = []  # positions in `kept`
        view = memoryview(good)
        start = 0
        while start < len(good):
            try:
                codecs.decode(view[start:], "utf-8")
                break
            except UnicodeDecodeError as err:
                pos = int(np.searchsorted(offsets, start + err.start, side="right")) - 1
                bad.append(pos)
                start = int(offsets[pos + 1])
        if not bad:
            return good, []
        keep[kept[bad]] = False
        dropped = [int(rec.lines[kept[pos]]) for pos in bad]
        lost = set(bad)
        parts = [view[int(offsets[i]): int(offsets[i + 1])] for i in range(len(kept))
                 if i not in lost]
        return b"".join(parts), dropped

    def _arrow(self, data: bytes, n_records: int) -> pa.Table | None:
        """The records parsed by pyarrow, or None when it finds another number of them."""
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
        return table if table.num_rows == n_records else None

    def _from_rows(self, rows: list[list[str]]) -> pa.Table:
        """An all-string table of the read columns from csv.reader's rows."""
        index = {name: i for i, name in reversed(list(enumerate(self.header)))}
        arrays = [pa.array([row[index[name]] for row in rows], pa.string())
                  for name in self.columns]
        return pa.Table.from_arrays(arrays, names=self.columns)

    def _fault(self, line: int, rule: str, message: str) -> Fault:
        return Fault(entity=self.entity, stage=Stage.READ, rule=rule, message=message,
                     source=str(self.path), source_line=line)
