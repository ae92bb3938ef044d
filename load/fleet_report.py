"""The report of a fleet run: per store its state, counts, faults and duration, written as
`<output>/fleet/<stamp>/fleet.json` and a readable `summary.txt`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from magsync.load import layout
from magsync.load.report_digest import fault_rows, read_summary

FLEET = "fleet"


@dataclass
class StoreOutcome:
    """One store's run in a fleet run."""

    store: str
    state: str  # the Prefect flow run's final state type (COMPLETED, FAILED, CRASHED, ...)
    flow_run_id: str | None = None
    run_id: str | None = None  # magsync's run id, when the run got as far as its report
    status: str | None = None  # magsync's status: done, refused, failed, ...
    duration_s: float | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    faulted: int = 0
    faults: list[dict[str, Any]] = field(default_factory=list)  # per rule and entity
    error: str | None = None
    write_window: dict[str, str] | None = None  # UTC start and end of its writes

    @property
    def ok(self) -> bool:
        """Whether the store synced."""
        return self.state == "COMPLETED" and self.status in ("done", "dry-run")


@dataclass
class FleetReport:
    """Every store of a fleet run."""

    started_at: datetime
    stores: list[StoreOutcome] = field(default_factory=list)
    finished_at: datetime | None = None

    @property
    def failed(self) -> list[str]:
        """The stores that did not sync."""
        return [s.store for s in self.stores if not s.ok]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (fleet.json)."""
        return {"started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "failed": self.failed, "stores": [asdict(s) for s in self.stores]}

    def summary_text(self) -> str:
        """One line per store, then the verdict."""
        lines = [f"{'store':<20}{'state':<11}{'status':<9}{'created':>9}{'updated':>9}"
                 f"{'faulted':>9}{'seconds':>9}"]
        for s in self.stores:
            created = sum(c.get("created", 0) for c in s.counts.values())
            updated = sum(c.get("updated", 0) for c in s.counts.values())
            secs = f"{s.duration_s:.1f}" if s.duration_s is not None else "-"
            lines.append(f"{s.store:<20}{s.state:<11}{s.status or '-':<9}{created:>9}"
                         f"{updated:>9}{s.faulted:>9}{secs:>9}")
            if s.error:
                lines.append(f"  {s.store}: {s.error}")
        verdict = f"failed: {', '.join(self.failed)}" if self.failed else "every store synced"
        return "\n".join([*lines, verdict]) + "\n"

    def write(self, output_dir: Path) -> Path:
        """Writes fleet.json and summary.txt into a new folder; returns the folder."""
        folder = Path(output_dir) / FLEET / self.started_at.strftime("%Y%m%dT%H%M%S%fZ")
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in (("fleet.json", json.dumps(self.to_dict(), indent=2) + "\n"),
                           ("summary.txt", self.summary_text())):
            tmp = folder / f"{name}.tmp"
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(folder / name)
        return folder


def store_outcome(output_dir: Path, store: str, state: str, flow_run_id: str,
                  started: datetime | None, duration_s: float | None,
                  message: str | None) -> StoreOutcome:
    """A store's outcome from its flow run's state and the newest report of the store
    that started after the flow run did (one run per store at a time: the store slot)."""
    out = StoreOutcome(store, state, flow_run_id, duration_s=duration_s)
    summary, folder = _newest_summary(output_dir, store, started)
    if summary is None or folder is None:
        out.error = message or "no report: the run ended before it opened one"
        return out
    out.run_id, out.status = summary.get("run_id"), summary.get("status")
    out.counts = summary.get("counts") or {}
    out.faulted = sum(c.get("faulted", 0) for c in out.counts.values())
    out.faults = fault_rows(folder)
    out.error = summary.get("error") or (message if state != "COMPLETED" else None)
    out.write_window = (summary.get("windows") or {}).get("write")
    return out


def _newest_summary(output_dir: Path, store: str, started: datetime | None
                    ) -> tuple[dict[str, Any] | None, Path | None]:
    reports = layout.reports_dir(output_dir, store)
    found = sorted(reports.glob("*/summary.json")) if reports.is_dir() else []
    for path in reversed(found):  # run ids sort by their start time
        summary = read_summary(path.parent)
        begun = datetime.fromisoformat(summary["started_at"])
        if started is None or begun >= started.astimezone(UTC):
            return summary, path.parent
        break
    return None, None
