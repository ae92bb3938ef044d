"""The resources one sync works with: opened by the flow, used by the steps, closed by it.

They are the run's outputs and handles, not its state: what staging finds travels from
step to step as values (load/sync_state.py).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from magsync.load.layout import staging_dir
from magsync.load.lock import RunLock
from magsync.load.remote import Remote, fetch_output
from magsync.load.report import RecordsWriter, RunReport
from magsync.load.sql_store import SqlTarget
from magsync.load.staging import Staging
from magsync.transform.errors import ConfigError
from magsync.transform.validate import ValidationOutcome

Checkpoint = Callable[[str], None]


def no_checkpoint(name: str) -> None:
    """A checkpoint that does nothing (the flow passes its crash-test hook instead)."""


@dataclass(frozen=True)
class RunContext:
    """Where a sync's steps read and write: the report, its records, the target, the
    staging folder, and a hook called at named points (crash and pause tests)."""

    run_id: str
    report: RunReport
    records: RecordsWriter
    target: SqlTarget
    staging: Staging
    checkpoint: Checkpoint = no_checkpoint
    # failed suite results as they come, for the data docs the report links (kept even
    # when a later step fails)
    failed_validations: list[ValidationOutcome] = field(default_factory=list)
    pii_key: bytes | None = None  # the exports' PII key, for load/suppression.py


def lean_arrow_memory() -> None:
    """jemalloc returns freed Arrow buffers to the system; the default pool keeps them
    (measured: 1M first-load peak 1,268 MB -> 866 MB). With no decay it returns them at
    once rather than seconds later (1M re-sync peak 941 -> 902 MB, no time measurable)."""
    with contextlib.suppress(NotImplementedError):
        pa.set_memory_pool(pa.jemalloc_memory_pool())
        pa.jemalloc_set_decay_ms(0)


def prepare_target(target: SqlTarget, lock: RunLock, report: RunReport, started: datetime,
                   staging_root: Path) -> None:
    """Under the run's lock: removes staging left by killed runs (none is in use), migrates
    the target, records the lock holder and the run as running."""
    if staging_root.is_dir():
        for folder in staging_root.iterdir():
            shutil.rmtree(folder, ignore_errors=True)
    with report.timed("migrate"):
        target.migrate()
    lock.record_holder()
    with target.begin() as conn:
        target.record_run(conn, lock.run_id, "running", started.replace(tzinfo=None), None,
                          None)


def lock_target(target: SqlTarget, run_id: str, wait_s: float, report: RunReport,
                started: datetime, out: Path, remote: Remote | None) -> RunLock:
    """Takes the store's run lock, then, under it, brings the local copy up to the
    remote's publication (nobody publishes this store meanwhile) and prepares the target;
    gives the lock back if either fails."""
    lock = RunLock(target.engine, target.source, run_id)
    lock.acquire(wait_s)
    try:
        if remote is not None:
            fetch_output(remote, out, target.source, report)
        prepare_target(target, lock, report, started, staging_dir(out, target.source))
    except BaseException:
        lock.release()
        raise
    return lock


def record_finished(ctx: RunContext, started: datetime, status: str) -> None:
    """Records the run's end and its report in the target's run table."""
    report = ctx.report
    finished = report.finished_at or started
    with ctx.target.begin() as conn:
        ctx.target.record_run(conn, ctx.run_id, status, started.replace(tzinfo=None),
                              finished.replace(tzinfo=None), report.to_dict())


def check_output_dir(folder: Path) -> None:
    """Creates the output folder and proves it writable: one ConfigError (exit 2) when it
    is not, before the run opens anything."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".magsync-probe-"):
            pass
    except OSError as err:
        raise ConfigError(f"output folder {folder} is not writable: "
                          f"{err.strerror or type(err).__name__}") from None
