"""A tracked run's Prefect artifacts: its progress while it reads, then its counts (with a
link to the report page) and its faults by rule.

Only a flow run has artifacts: outside one (an untracked run, the benchmark) every
function here is a no-op and Prefect is never imported for it. An artifact that cannot
be written is a log line, never a failed run.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

from magsync.extract.progress import Snapshot
from magsync.load import layout
from magsync.load.report_digest import fault_rows, read_summary, summary_markdown

log = logging.getLogger("magsync")
READING_SHARE = 99.0  # reading shows up to 99%; 100 once the run is done and reported
DONE = ("done", "dry-run")
_progress: dict[str, UUID] = {}  # run id -> its progress artifact, until published


def flow_run_id() -> UUID | None:
    """The flow run this code runs in, if any (without importing Prefect when no flow
    could be running)."""
    if "prefect.context" not in sys.modules:
        return None
    from prefect.utilities.context import get_task_and_flow_run_ids

    return get_task_and_flow_run_ids()[1]


def key(command: str, source: str, what: str) -> str:
    """An artifact key (lower-case letters, digits, dashes): one per command, store and
    kind, so the UI's artifact page shows each store's latest."""
    slug = re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-") or "default"
    return f"magsync-{command}-{slug}-{what}"


def _written(what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    """`call(...)`, or None with a warning when the API refuses it or cannot be reached."""
    import httpx

    try:
        return call(*args, **kwargs)
    except (httpx.HTTPError, OSError) as err:
        log.warning("could not write the %s artifact: %s", what, err)
        return None


class ProgressArtifact:
    """The run's reading progress in the Prefect UI: created at 0, updated per batch when
    the share read (by bytes, for files) moves by a whole percent."""

    def __init__(self, run_id: str, artifact_key: str) -> None:
        from prefect.artifacts import create_progress_artifact

        self.run_id, self.shown = run_id, 0
        self.id: UUID | None = _written(
            "progress", create_progress_artifact, 0.0, key=artifact_key,
            description=f"magsync run {run_id}: records read")
        if self.id is not None:
            _progress[run_id] = self.id

    def update(self, snap: Snapshot) -> None:
        """Moves the bar to the share read so far (files only: a SOAP read has no size)."""
        if self.id is None or snap.fraction is None:
            return
        percent = int(snap.fraction * READING_SHARE)
        if percent > self.shown:
            from prefect.artifacts import update_progress_artifact

            self.shown = percent
            _written("progress", update_progress_artifact, self.id, float(percent))


def progress_artifact(run_id: str, command: str, source: str) -> ProgressArtifact | None:
    """A progress artifact for the run, when it is a flow run."""
    if flow_run_id() is None:
        return None
    return ProgressArtifact(run_id, key(command, source, "progress"))


def publish_run(report: dict[str, Any], command: str) -> dict[str, Any]:
    """After the report is written: the counts with the report page's link (Markdown),
    the faults by rule and entity (a table), the progress bar at 100 when the run is
    done. Nothing outside a flow run or before a run had its report folder. Returns
    `report`."""
    run_id, out = report.get("run_id"), report.get("output_dir")
    if not run_id or not out or flow_run_id() is None:
        return report
    report_dir = layout.report_dir(Path(out), str(report.get("source") or "default"),
                                   str(run_id))
    if not (report_dir / "summary.json").is_file():
        return report
    from prefect.artifacts import (
        create_markdown_artifact,
        create_table_artifact,
        update_progress_artifact,
    )

    summary = read_summary(report_dir)
    source = str(summary.get("source") or "default")
    _written("summary", create_markdown_artifact, summary_markdown(summary, report_dir),
             key=key(command, source, "summary"),
             description=f"magsync {command} {run_id}: {summary.get('status')}")
    _written("faults", create_table_artifact, fault_rows(report_dir),
             key=key(command, source, "faults"),
             description=f"magsync {command} {run_id}: faulted records by rule")
    progress = _progress.pop(str(run_id), None)
    if progress is not None and summary.get("status") in DONE:
        _written("progress", update_progress_artifact, progress, 100.0)
    return report
