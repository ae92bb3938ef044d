"""A migration's report: counts, the records file, the fault budget, the summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from magsync.load import layout
from magsync.load.guards import FaultBudget, is_warning
from magsync.load.magento_upsert import Outcome
from magsync.load.report import RecordsWriter, RunReport, prune_reports
from magsync.load.report_page import write_page
from magsync.transform.faults import Fault

RECORD_COLUMNS = ("entity", "key", "action", "changed_fields", "message", "source",
                  "source_line")


@dataclass
class MigrationReport:
    """The report of one migration as it is written, batch by batch."""

    report: RunReport
    report_dir: Path
    records: RecordsWriter
    budget: FaultBudget

    @classmethod
    def open(cls, report: RunReport, output_dir: Path, max_fault_ratio: float
             ) -> MigrationReport:
        """The report's folder (load/layout.py) and its records file."""
        report_dir = layout.report_dir(output_dir, report.source, report.run_id)
        return cls(report, report_dir, RecordsWriter(report_dir, report.run_id),
                   FaultBudget(max_fault_ratio))

    def record(self, outcome: Outcome, faults: Sequence[Fault] = (),
               skipped: Sequence[dict[str, Any]] = ()) -> None:
        """Counts and lists a batch's outcomes (unchanged records are only counted)."""
        rows = outcome.rows + list(skipped)
        for row in rows:
            self.report.count(row["entity"], row["action"])
        listed = [r for r in rows if r["action"] != "unchanged"]
        if listed:
            self.records.write({name: [r.get(name) for r in listed]
                                for name in RECORD_COLUMNS})
        self.budget.store_faults(outcome.faults)
        every = list(faults) + outcome.faults
        for fault in every:
            self.report.count(fault.entity, "warning" if is_warning(fault) else "faulted")
        self.records.write_faults(every)

    def finish(self, status: str, error: str | None, note: str, keep_days: int) -> RunReport:
        """Closes the report: status, the closing note, the records file and the summary;
        prunes reports older than `keep_days`."""
        report = self.report
        report.status, report.error = status, error
        report.finished_at = datetime.now(UTC)
        report.notes.append(note)
        self.records.close()
        report.write_summary(self.report_dir)
        prune_reports(self.report_dir.parent, keep_days)
        return report

    def write_page(self) -> None:
        """The report's HTML page (after the id map's lock is released)."""
        write_page(self.report_dir)
