"""Who sees a run's reading progress: a terminal (stderr a TTY, progress on) gets one line
redrawn in place; a tracked run's Prefect UI gets a progress artifact. Nobody: the
batches pass through untouched."""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO

from magsync.extract.progress import Snapshot, TerminalLine, meter_for, metered
from magsync.flows.artifacts import progress_artifact
from magsync.transform.batch import RawBatch


def terminal(stream: TextIO, enabled: bool) -> TerminalLine | None:
    """A progress line on `stream` when enabled and the stream is a terminal."""
    if not enabled or not stream.isatty():
        return None
    return TerminalLine(stream, width=shutil.get_terminal_size((80, 24)).columns)


class _ClearFirst(logging.Filter):
    """Erases the progress line before a log line is written over it (redrawn later)."""

    def __init__(self, line: TerminalLine) -> None:
        super().__init__()
        self.line = line

    def filter(self, record: logging.LogRecord) -> bool:
        """Never drops a record: only clears the line first."""
        self.line.clear()
        return True


@contextmanager
def logs_clear(line: TerminalLine | None) -> Iterator[None]:
    """While reading, magsync's and Prefect's console handlers (on the `magsync` and the
    root logger) erase the progress line before they write."""
    if line is None:
        yield
        return
    handlers = logging.getLogger("magsync").handlers + logging.getLogger().handlers
    clear = _ClearFirst(line)
    for handler in handlers:
        handler.addFilter(clear)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(clear)


def watched(source: Iterable[RawBatch], *, run_id: str, command: str, source_name: str,
            progress: bool) -> Iterator[RawBatch]:
    """The source's batches, reported on the terminal and as a progress artifact as they
    pass; the terminal line is erased when reading ends, however it ends."""
    line = terminal(sys.stderr, progress)
    artifact = progress_artifact(run_id, command, source_name)
    if line is None and artifact is None:
        yield from source
        return

    def show(snap: Snapshot) -> None:
        if line is not None:
            line.show(snap)
        if artifact is not None:
            artifact.update(snap)

    try:
        with logs_clear(line):
            yield from metered(source, meter_for(source), show)
    finally:
        if line is not None:
            line.clear()
