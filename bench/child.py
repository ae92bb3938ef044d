"""What every measured child process shares: its clock and the result file it writes.

A case script starts its `Clock` before its heavy imports, marks when they are done, times
its body, and writes one JSON object that the harness (bench/run.py) reads back. The
harness measures the process's wall time and peak RSS from outside.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


class Clock:
    """Imports and body time of one child, measured in-process."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.epoch = time.time()  # lets the harness split process start-up from exit
        self.imports_s = 0.0
        self.body_s = 0.0
        self._body_start = 0.0

    def imported(self) -> None:
        """Marks the end of the heavy imports."""
        self.imports_s = time.perf_counter() - self.start

    def begin(self) -> None:
        """Marks the first step of the body (the first byte read)."""
        self._body_start = time.perf_counter()

    def end(self) -> None:
        """Marks the last step of the body (the last byte written)."""
        self.body_s = time.perf_counter() - self._body_start


def case_parser(description: str | None) -> argparse.ArgumentParser:
    """The arguments every case script takes: its input, its work folder, its result."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--input", type=Path, required=True, help="Magento CE export CSV")
    parser.add_argument("--workdir", type=Path, required=True, help="where outputs go")
    parser.add_argument("--result", type=Path, required=True, help="JSON result file")
    return parser


def write_result(path: Path, clock: Clock, rows: int, **extra: Any) -> None:
    """Writes the child's measurements (and anything case-specific) as JSON."""
    data = {"imports_s": clock.imports_s, "body_s": clock.body_s, "rows": rows,
            "started_epoch": clock.epoch, **extra}
    path.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
