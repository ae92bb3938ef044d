"""How far a read has got: bytes taken from the input files, rows per entity, SOAP pages,
their rate and the time left, drawn as one terminal line redrawn in place.

The arithmetic (`Meter`, `Snapshot`) and the drawing (`render`) are pure; `TerminalLine`
writes to a stream at a bounded rate; `metered` counts the batches a source yields. The
flow decides whether anyone sees it (a terminal, no --quiet).
"""

from __future__ import annotations

import gzip
import io
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from magsync.transform.batch import RawBatch

if TYPE_CHECKING:
    from magsync.extract.csv_open import CsvFile, Opener

Clock = Callable[[], float]
MIN_INTERVAL_S = 0.25  # at most four redraws a second
CLEAR = "\r\x1b[K"  # back to the line's start, erase to its end
UNITS = ("B", "KB", "MB", "GB", "TB")


# --- counting bytes ------------------------------------------------------------------------


class _CountingRaw(io.RawIOBase):
    """A file's bytes, telling `on_read` the position reached after every read."""

    def __init__(self, path: Path, on_read: Callable[[int], None]) -> None:
        super().__init__()
        self.file = path.open("rb", buffering=0)
        self.on_read = on_read
        self.position = 0

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Reads into `buffer` and reports the new position."""
        n = self.file.readinto(buffer) or 0
        self.position += n
        self.on_read(self.position)
        return n

    def close(self) -> None:
        """Closes the file too."""
        self.file.close()
        super().close()


class _OwningGzip(gzip.GzipFile):
    """A GzipFile that closes the file it reads (GzipFile leaves a given file open)."""

    def __init__(self, file: io.BufferedIOBase) -> None:
        super().__init__(fileobj=file, mode="rb")
        self.owned = file

    def close(self) -> None:
        """Closes the stream, then its file."""
        try:
            super().close()
        finally:
            self.owned.close()


def counted(path: Path, on_read: Callable[[int], None], *, gzipped: bool = False
            ) -> io.BufferedIOBase:
    """`path` opened for reading (decompressed when `gzipped`), `on_read` hearing how many
    bytes of the file, compressed ones for gzip, were taken so far."""
    raw = io.BufferedReader(_CountingRaw(path, on_read))
    return _OwningGzip(raw) if gzipped else raw


class ByteTally:
    """Bytes read of a set of files: the furthest position each file's stream reached (a
    file opened twice, header then records, is not counted twice)."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.positions = dict.fromkeys(paths, 0)
        self.total = sum(path.stat().st_size for path in self.positions)

    @property
    def read(self) -> int:
        """Bytes read so far over all files."""
        return sum(self.positions.values())

    def opener(self, file: CsvFile) -> Opener:
        """Opens `file` as its own opener does, counting what the stream takes."""
        return partial(file.open, on_read=partial(self._at, file.path))

    def _at(self, path: Path, position: int) -> None:
        self.positions[path] = position


# --- the meter -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The meter at one moment: what was read and how long it took."""

    elapsed: float
    rows: dict[str, int]
    bytes_read: int | None = None
    bytes_total: int | None = None
    pages: int | None = None

    @property
    def fraction(self) -> float | None:
        """The share of the input read, when its size is known."""
        if self.bytes_read is None or not self.bytes_total:
            return None
        return min(1.0, self.bytes_read / self.bytes_total)

    @property
    def byte_rate(self) -> float | None:
        """Bytes a second since the start."""
        if self.bytes_read is None or self.elapsed <= 0:
            return None
        return self.bytes_read / self.elapsed

    def row_rate(self, entity: str) -> float | None:
        """Rows of `entity` a second since the start."""
        if self.elapsed <= 0:
            return None
        return self.rows.get(entity, 0) / self.elapsed

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far, when the input's size is known."""
        rate = self.byte_rate
        if self.bytes_total is None or self.bytes_read is None or not rate:
            return None
        return max(0.0, (self.bytes_total - self.bytes_read) / rate)


@dataclass
class Meter:
    """Counts rows per entity and asks the source for bytes or pages read."""

    bytes_read: Callable[[], int] | None = None
    bytes_total: int | None = None
    pages: Callable[[], int] | None = None
    clock: Clock = time.monotonic
    rows: dict[str, int] = field(default_factory=dict)
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.clock()

    def add(self, entity: str, n: int) -> None:
        """Adds `n` rows of `entity`."""
        self.rows[entity] = self.rows.get(entity, 0) + n

    def snapshot(self) -> Snapshot:
        """The meter now."""
        return Snapshot(
            elapsed=self.clock() - self.started, rows=dict(self.rows),
            bytes_read=self.bytes_read() if self.bytes_read else None,
            bytes_total=self.bytes_total, pages=self.pages() if self.pages else None)


def meter_for(source: object, clock: Clock = time.monotonic) -> Meter:
    """A meter over `source`: bytes for files it tallies (`bytes`), pages for a source that
    counts them (`pages`), rows only otherwise."""
    tally = getattr(source, "bytes", None)
    if isinstance(tally, ByteTally):
        return Meter(bytes_read=lambda: tally.read, bytes_total=tally.total, clock=clock)
    if hasattr(source, "pages"):
        return Meter(pages=lambda: int(source.pages), clock=clock)  # type: ignore[attr-defined]
    return Meter(clock=clock)


def metered(batches: Iterable[RawBatch], meter: Meter,
            on_batch: Callable[[Snapshot], None]) -> Iterator[RawBatch]:
    """The batches, each counted (rows and read faults) before it is handed on."""
    for batch in batches:
        meter.add(batch.entity.name, len(batch.frame) + len(batch.faults))
        on_batch(meter.snapshot())
        yield batch


# --- drawing -------------------------------------------------------------------------------


def size(n: float) -> str:
    """Bytes in the largest unit that keeps the number at least 1 (one decimal past B)."""
    unit = 0
    while n >= 1000 and unit < len(UNITS) - 1:
        n /= 1000
        unit += 1
    return f"{int(n)} B" if unit == 0 else f"{n:.1f} {UNITS[unit]}"


def duration(seconds: float) -> str:
    """Seconds as H:MM:SS, or M:SS under an hour."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def render(snap: Snapshot, width: int = 0) -> str:
    """One progress line: rows per entity, then bytes, share, rate and time left (CSV) or
    pages and customers a second (SOAP); cut to fit a terminal `width` wide when given
    (one column spare: a full line would wrap on some terminals)."""
    parts = [f"{entity} {n:,}" for entity, n in snap.rows.items()]
    if snap.bytes_read is not None:
        read = size(snap.bytes_read)
        if snap.bytes_total:
            read += f" of {size(snap.bytes_total)}"
        if snap.fraction is not None:
            read += f" ({snap.fraction:.0%})"
        parts.append(read)
        if snap.byte_rate:
            parts.append(f"{size(snap.byte_rate)}/s")
        if snap.eta is not None and snap.byte_rate:
            parts.append(f"ETA {duration(snap.eta)}")
    elif snap.pages is not None:
        parts.append(f"{snap.pages:,} page{'s' if snap.pages != 1 else ''}")
        rate = snap.row_rate("customer")
        if rate:
            parts.append(f"{rate:,.0f} customers/s")
    line = "reading: " + "  ".join(parts)
    return line[: width - 2] + "…" if 0 < width <= len(line) else line


class TerminalLine:
    """One line redrawn in place (carriage return, erase to the end) at most every
    `interval` seconds; `clear` leaves the terminal as it was."""

    def __init__(self, stream: TextIO, *, width: int = 80, interval: float = MIN_INTERVAL_S,
                 clock: Clock = time.monotonic) -> None:
        self.stream, self.width, self.interval, self.clock = stream, width, interval, clock
        self.last: float | None = None
        self.drawn = False

    def show(self, snap: Snapshot) -> None:
        """Redraws the line, unless it was drawn less than `interval` ago."""
        now = self.clock()
        if self.last is not None and now - self.last < self.interval:
            return
        self.last = now
        self.stream.write("\r" + render(snap, self.width) + "\x1b[K")
        self.stream.flush()
        self.drawn = True

    def clear(self) -> None:
        """Erases the line, if one was drawn."""
        if self.drawn:
            self.stream.write(CLEAR)
            self.stream.flush()
            self.drawn = False
