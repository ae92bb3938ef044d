"""The run report: a typed summary plus a records file of every listed record."""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from magsync.transform.faults import Fault

# Where each record read ends up, exactly once (deletions concern stored records, not read
# ones, and stay out of the balance).
ACCOUNTED = ("created", "updated", "restored", "unchanged", "faulted", "suppressed")

RECORD_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("entity", pa.string()),
    ("key", pa.string()),
    ("action", pa.string()),
    ("changed_fields", pa.string()),
    ("stage", pa.string()),
    ("rule", pa.string()),
    ("column", pa.string()),
    ("value", pa.string()),
    ("message", pa.string()),
    ("source", pa.string()),
    ("source_line", pa.int64()),
])

UTF8_BOM = b"\xef\xbb\xbf"
FORMULA_START = r"^[=+\-@\t\r]"  # OWASP: cells starting so are formulas to a spreadsheet



class RecordsWriter:
    """Writes report records as they are produced, each batch as its own small Parquet
    part (complete on disk at once, so a killed run's partial report survives); `close`
    joins the parts into records.parquet and records.csv."""

    def __init__(self, report_dir: Path, run_id: str) -> None:
        self.run_id = run_id
        self.dir = report_dir
        self.parts_dir = report_dir / "records.parts"
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self._parts = 0

    def write(self, columns: dict[str, Any]) -> None:
        """Appends records given as equal-length columns (lists, arrays or Series); a str
        is the same value on every record; missing columns are null."""
        length = next((len(v) for v in columns.values() if not isinstance(v, str | None)), 0)
        if length == 0:
            return
        columns = {"run_id": self.run_id, **columns}
        arrays = [_column(columns.get(f.name), f.type, length) for f in RECORD_SCHEMA]
        self._parts += 1
        part = self.parts_dir / f"part-{self._parts:06d}.parquet"
        pq.write_table(pa.Table.from_arrays(arrays, schema=RECORD_SCHEMA), part)
        self.count += length

    def write_faults(self, faults: Iterable[Fault]) -> None:
        """Appends faulted records."""
        faults = list(faults)
        if not faults:
            return
        self.write({
            "entity": [f.entity for f in faults],
            "key": [f.key for f in faults],
            "action": ["faulted"] * len(faults),
            "stage": [str(f.stage) for f in faults],
            "rule": [f.rule for f in faults],
            "column": [f.column for f in faults],
            "value": [f.value for f in faults],
            "message": [f.message for f in faults],
            "source": [f.source for f in faults],
            "source_line": [f.source_line for f in faults],
        })

    def close(self) -> None:
        """Joins the parts, in order, into records.parquet (true values) and records.csv
        (spreadsheet-safe: see `spreadsheet_safe`)."""
        parts = sorted(self.parts_dir.glob("part-*.parquet"))
        with pq.ParquetWriter(self.dir / "records.parquet", RECORD_SCHEMA) as parquet, \
                pa.OSFile(str(self.dir / "records.csv"), "wb") as csv_file:
            csv_file.write(UTF8_BOM)  # Excel reads BOM-less CSV in the locale's code page
            with pacsv.CSVWriter(csv_file, RECORD_SCHEMA) as csv_out:
                for part in parts:
                    table = pq.read_table(part)
                    parquet.write_table(table)
                    csv_out.write_table(spreadsheet_safe(table))
        shutil.rmtree(self.parts_dir, ignore_errors=True)


def spreadsheet_safe(table: pa.Table) -> pa.Table:
    """`table` with every text cell a spreadsheet would run as a formula (one starting
    with =, +, -, @, tab or CR: OWASP's CSV injection list) prefixed with a single quote,
    so Excel and LibreOffice show it as text. That includes text that looks like a number
    ("+4312345" as a phone number would otherwise lose its "+"): the file shows what the
    source held. Number columns (source_line) are untouched."""
    return pa.Table.from_arrays([_text_safe(c) if pa.types.is_string(c.type) else c
                                 for c in table.columns], schema=table.schema)


def _text_safe(column: pa.ChunkedArray) -> pa.ChunkedArray:
    risky = pc.match_substring_regex(column, FORMULA_START)
    quoted = pc.binary_join_element_wise("'", column, "")
    return pc.if_else(pc.fill_null(risky, False), quoted, column)


def _column(values: Any, type_: pa.DataType, length: int) -> pa.Array:
    """One records column, built by Arrow (no Python object per record for constants)."""
    if values is None:
        return pa.nulls(length, type_)
    if isinstance(values, str):
        return pc.fill_null(pa.nulls(length, type_), pa.scalar(values, type_))
    return pa.array(values, type_, from_pandas=True)


@dataclass
class RunReport:
    """What a run did: counts per entity and action, timings, guards, notes."""

    run_id: str
    source: str
    input: str
    target: str
    version: str
    mode: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"
    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    output_dir: str = ""
    exports: dict[str, str] = field(default_factory=dict)
    data_docs: str | None = None
    received: Counter[str] = field(default_factory=Counter)  # records read, per entity
    conservation: str | None = None  # "ok", or what did not add up; None: not checked
    not_provided: dict[str, list[str]] = field(default_factory=dict)  # by the source
    windows: dict[str, dict[str, str]] = field(default_factory=dict)  # UTC start and end
    # records typed (normalised and hashed), and unchanged ones skipped before typing
    # (load/raw_skip.py), per entity: how much of the input a re-sync worked on
    typed: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    # records still faulted as in an earlier run, re-reported unvalidated (load/refault.py)
    refaulted: Counter[str] = field(default_factory=Counter)

    def count(self, entity: str, action: str, n: int = 1) -> None:
        """Adds `n` records of `entity` with `action`."""
        if n:
            self.counts[entity][action] += n

    def receive(self, entity: str, n: int) -> None:
        """Adds `n` records of `entity` read from the source (faulted on reading or not)."""
        if n:
            self.received[entity] += n

    def unbalanced(self) -> list[str]:
        """Entities whose records read differ from those accounted for (created, updated,
        restored, unchanged, faulted: each record read ends in exactly one of these)."""
        out = []
        for entity in sorted(set(self.received) | set(self.counts)):
            counts = self.counts.get(entity, Counter())
            accounted = sum(counts[a] for a in ACCOUNTED)
            if accounted != self.received[entity]:
                parts = ", ".join(f"{a} {counts[a]}" for a in ACCOUNTED)
                out.append(f"{entity}: {self.received[entity]} read, {accounted} accounted "
                           f"for ({parts})")
        return out

    @contextmanager
    def window(self, stage: str) -> Iterator[None]:
        """Records when the block started and ended (UTC ISO): a fleet checks from them
        how many syncs wrote to one target at once."""
        start = datetime.now(UTC).isoformat()
        try:
            yield
        finally:
            self.windows[stage] = {"start": start, "end": datetime.now(UTC).isoformat()}

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Adds the wall time of the block to the stage's timing."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    @property
    def faulted(self) -> int:
        """Faulted records over all entities."""
        return sum(c["faulted"] for c in self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (summary.json)."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "source": self.source,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "input": self.input,
            "target": self.target,
            "version": self.version,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "counts": {e: dict(sorted(c.items())) for e, c in sorted(self.counts.items())},
            "received": dict(sorted(self.received.items())),
            "conservation": self.conservation,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "notes": self.notes,
            "error": self.error,
            "output_dir": self.output_dir,
            "exports": self.exports,
            "data_docs": self.data_docs,
            "not_provided": self.not_provided,
            "windows": self.windows,
            "typed": dict(sorted(self.typed.items())),
            "skipped_unchanged": dict(sorted(self.skipped.items())),
            "refaulted_unvalidated": dict(sorted(self.refaulted.items())),
        }

    def write_summary(self, report_dir: Path) -> Path:
        """Writes summary.json atomically."""
        path = report_dir / "summary.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n",
                       encoding="utf-8")
        tmp.replace(path)
        return path


def prune_reports(reports_dir: Path, keep_days: int, *, now: datetime | None = None) -> int:
    """Removes report folders older than `keep_days`; returns how many went."""
    if not reports_dir.is_dir():
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    removed = 0
    for folder in reports_dir.iterdir():
        mtime = datetime.fromtimestamp(folder.stat().st_mtime, UTC)
        if folder.is_dir() and mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed
