"""Opening a CSV export: gzip found by its magic bytes, the encoding by its byte order mark
or the `source.encoding` setting (never guessed), and anything else transcoded to UTF-8
as a stream, so the record reader only ever sees UTF-8 bytes.

A plain UTF-8 file is handed to the reader as the file itself: the fast path stays a
byte path. Bytes that do not decode become one 0xFF byte (never valid UTF-8), so the
reader faults their record instead of reading a changed value.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from magsync.extract.progress import counted
from magsync.transform.errors import SourceFatalError

Opener = Callable[[], BinaryIO]  # opens a fresh binary stream of the file's UTF-8 bytes

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
BOMS = ((UTF8_BOM, "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
PEEK_BYTES = 64 << 10
MIN_BAD_LINES = 3  # fewer non-UTF-8 lines in the first PEEK_BYTES never refuse a file
CHUNK_BYTES = 1 << 20
INVALID = "magsync-invalid"
# Other delimiters a header is tried with, to say which one the file uses.
DELIMITERS = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}
# What a file holds when its first bytes say it is not a CSV export.
NOT_CSV = (
    (b"<!doctype html", "HTML"), (b"<html", "HTML"), (b"<?xml", "XML"),
    (b"pk\x03\x04", "a ZIP archive (an Excel .xlsx workbook?)"),
    (b"\xd0\xcf\x11\xe0", "an Excel .xls workbook"), (b"%pdf", "a PDF document"),
    (b"{", "JSON"), (b"[", "JSON"),
)


def _mark_invalid(err: UnicodeError) -> tuple[str, int]:
    """Undecodable bytes become U+DCFF, written back as the single byte 0xFF."""
    if not isinstance(err, UnicodeDecodeError):
        raise err
    return "\udcff", err.end


codecs.register_error(INVALID, _mark_invalid)


def codec_name(encoding: str) -> str:
    """Python's name of an encoding ('windows-1252' -> 'cp1252'); ValueError if unknown."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None


@dataclass(frozen=True)
class CsvFile:
    """How to read one file: compressed or not, its encoding and delimiter."""

    path: Path
    gzipped: bool
    encoding: str  # Python codec name; "utf-8" is read as is
    bom: bytes  # byte order mark to skip before transcoding
    delimiter: str = ","

    @property
    def transcoded(self) -> bool:
        """True when the bytes are not UTF-8 and go through a decoder."""
        return self.encoding not in ("utf-8", "utf-8-sig")

    def open(self, on_read: Callable[[int], None] | None = None) -> BinaryIO:
        """A fresh binary stream of the file's bytes as UTF-8 (a UTF-8 BOM may remain);
        `on_read` (progress) hears how many bytes of the file, compressed ones for gzip,
        were taken so far."""
        if not self.gzipped and not self.transcoded:
            if on_read is None:
                return self.path.open("rb")
            return counted(self.path, on_read)  # type: ignore[return-value]
        # Returned open: the caller's `with` closes it (through _Utf8Stream.close).
        raw: io.BufferedIOBase = (gzip.open(self.path, "rb")  # noqa: SIM115
                                   if self.gzipped else self.path.open("rb")) \
            if on_read is None else counted(self.path, on_read, gzipped=self.gzipped)
        if self.transcoded:
            raw.read(len(self.bom))
        stream = _Utf8Stream(raw, self.encoding if self.transcoded else None, self.path)
        return io.BufferedReader(stream, CHUNK_BYTES)  # type: ignore[return-value]


class _Utf8Stream(io.RawIOBase):
    """The bytes of `raw`, decoded and re-encoded as UTF-8 chunk by chunk when an encoding
    is given; a damaged gzip stream becomes a SourceFatalError naming the file."""

    def __init__(self, raw: io.BufferedIOBase, encoding: str | None, path: Path) -> None:
        super().__init__()
        self.raw, self.path = raw, path
        self.decoder = codecs.getincrementaldecoder(encoding)(INVALID) if encoding else None
        self.pending, self.offset, self.eof = b"", 0, False

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Fills `buffer` from the transcoded bytes; 0 at the end of the file."""
        while self.offset >= len(self.pending) and not self.eof:
            self._fill()
        n = min(len(buffer), len(self.pending) - self.offset)
        buffer[:n] = self.pending[self.offset : self.offset + n]
        self.offset += n
        return n

    def _fill(self) -> None:
        try:
            data = self.raw.read(CHUNK_BYTES)
        except (OSError, EOFError, zlib.error) as err:
            raise SourceFatalError(f"{self.path}: cannot be read: {err}") from None
        self.eof = not data
        if self.decoder is not None:
            text = self.decoder.decode(data, final=self.eof)
            data = text.encode("utf-8", "surrogateescape")
        self.pending, self.offset = data, 0

    def close(self) -> None:
        """Closes the underlying file too."""
        self.raw.close()
        super().close()


def inspect(path: Path, *, encoding: str | None = None, delimiter: str = ",") -> CsvFile:
    """How to read `path`; SourceFatalError when it is empty or plainly not a CSV export.

    A byte order mark decides the encoding (it cannot be wrong); without one the file is
    read as `encoding`, UTF-8 by default.
    """
    gzipped = _magic(path) == GZIP_MAGIC
    head = _head(path, gzipped)
    bom, found = next(((b, e) for b, e in BOMS if head.startswith(b)), (b"", None))
    chosen = found or codec_name(encoding or "utf-8")
    if not head[len(bom):].strip():
        raise SourceFatalError(f"{path} is empty" + (" (only a byte order mark)" if bom else ""))
    file = CsvFile(path, gzipped, chosen, bom if found != "utf-8" else b"", delimiter)
    first = head[len(bom):].lstrip()
    if file.transcoded:
        first = first.decode(chosen, INVALID).encode("utf-8", "surrogateescape")
    _check_content(path, first, gzipped)
    if not file.transcoded:
        _check_utf8(path, head)
    return file


def _magic(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(2)
    except OSError as err:
        raise SourceFatalError(f"{path}: cannot be read: {err.strerror or err}") from None


def _head(path: Path, gzipped: bool) -> bytes:
    """The first bytes of the (decompressed) file."""
    try:
        with gzip.open(path, "rb") if gzipped else path.open("rb") as fh:
            return fh.read(PEEK_BYTES)
    except (OSError, EOFError, zlib.error) as err:
        raise SourceFatalError(f"{path}: cannot be read: {err}") from None


def _check_content(path: Path, first: bytes, gzipped: bool) -> None:
    """Refuses what is plainly no CSV: a web page, a workbook, binary data."""
    lowered = first[:32].lower()
    for magic, what in NOT_CSV:
        if lowered.startswith(magic):
            raise SourceFatalError(f"{path}: not a CSV export: looks like {what}")
    line = first.split(b"\n", 1)[0]
    if b"\x00" in line:
        hint = "" if gzipped else " (UTF-16 without a byte order mark? pass --encoding utf-16-le)"
        raise SourceFatalError(f"{path}: not a CSV export: NUL bytes in its first line{hint}")


def _check_utf8(path: Path, head: bytes) -> None:
    """Refuses a file whose first lines are mostly not UTF-8: read on, nearly every record
    would fault, one by one. A few bad lines are left to fault."""
    lines = head[: head.rfind(b"\n") + 1].splitlines()
    bad = sum(1 for line in lines if not _is_utf8(line))
    if bad >= MIN_BAD_LINES and bad * 2 > len(lines):
        raise SourceFatalError(
            f"{path}: {bad} of its first {len(lines)} lines are not valid UTF-8: if the file "
            "is a Windows export, pass --encoding cp1252 (or the encoding it was written in)")


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def split_header(line: bytes, delimiter: str) -> list[str]:
    """The names of a header line: without BOM, stripped, lower case (Magento's own names
    are; matching them so makes 'Email' an email column)."""
    text = line.removeprefix(UTF8_BOM).decode("utf-8", errors="replace").rstrip("\r\n")
    if not text.strip():
        return []
    names = next(csv.reader([text], delimiter=delimiter))
    return [name.strip().lower() for name in names]


def check_header(path: Path, names: list[str], line: bytes, delimiter: str) -> None:
    """SourceFatalError for a header that would read wrong: a delimiter other than the
    configured one, or the same name twice."""
    if len(names) == 1:
        for other, shown in DELIMITERS.items():
            if other != delimiter and len(split_header(line, other)) > 1:
                raise SourceFatalError(
                    f"{path}: the header splits on {shown}, not on "
                    f"{DELIMITERS.get(delimiter, repr(delimiter))}: pass --delimiter {shown}")
    twice = sorted(n for n, count in Counter(names).items() if count > 1)
    if twice:
        shown_names = ", ".join(n or "(empty name)" for n in twice)
        raise SourceFatalError(f"{path}: the header names the same column twice "
                               f"(names compared ignoring case): {shown_names}")
