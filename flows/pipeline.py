"""The steps of a sync as plain functions: open, stage, guard, merge, export, finish.

flows/sync.py wraps each step in a Prefect task. Composition only: the rules live in load/
(stager, guards, merge) and transform/; the run's resources are a frozen `Run`, and what
staging found travels as a value (`Staged`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from magsync.flows.crash import checkpoint
from magsync.flows.settings import Settings
from magsync.load import merge as merging
from magsync.load.guards import check_run
from magsync.load.layout import exports_dir, report_dir, staging_dir
from magsync.load.lock import RunLock
from magsync.load.remote import Remote, open_remote, publish_run
from magsync.load.report import RecordsWriter, RunReport, prune_reports
from magsync.load.report_page import write_page
from magsync.load.run_context import RunContext, lean_arrow_memory, lock_target, record_finished
from magsync.load.runs import magsync_version, new_run_id
from magsync.load.sql_store import SqlTarget
from magsync.load.stager import StageOptions, plan_deletes, stage_all
from magsync.load.staging import Staging
from magsync.load.sync_state import Staged
from magsync.transform.batch import RawBatch
from magsync.transform.validate import BUNDLED_SUITES, SuiteValidator, build_data_docs

log = logging.getLogger("magsync")


@dataclass(frozen=True)
class Run:
    """The resources of one run, from open_run to finish."""

    settings: Settings
    started: datetime
    report_dir: Path
    context: RunContext
    validator: SuiteValidator | None
    lock: RunLock | None
    options: StageOptions
    remote: Remote | None = None  # where the output is published (load/remote.py)

    @property
    def report(self) -> RunReport:
        """The run's report."""
        return self.context.report


def open_run(settings: Settings, input_description: str) -> Run:
    """Creates the run's folders, report and target handle; migrates unless dry-run."""
    lean_arrow_memory()
    started = datetime.now(UTC)
    run_id = new_run_id(started)
    out, name = settings.output_dir, settings.source.name
    folder = report_dir(out, name, run_id)
    target = SqlTarget(settings.target_url, source=name,
                       store_secrets=settings.target.store_secrets)
    report = RunReport(run_id=run_id, source=name, input=input_description,
                       target=target.describe(), version=magsync_version(),
                       mode="full" if settings.full else "incremental",
                       dry_run=settings.dry_run, started_at=started, output_dir=str(out))
    log.info("run %s: output folder %s", run_id, out)
    validator = None
    if settings.validation:
        with report.timed("validate"):  # a bad suite stops the run before it takes the lock
            validator = SuiteValidator(settings.expectations_dir or BUNDLED_SUITES, started)
    else:
        report.notes.append("validation switched off (validation = false)")
    remote = open_remote(settings.remote.url, settings.remote.endpoint_url) \
        if settings.remote.url else None
    lock = None if settings.dry_run else lock_target(
        target, run_id, settings.target.wait_lock_s, report, started, out, remote)
    staging = Staging(staging_dir(out, name) / run_id,
                      with_secrets=settings.target.store_secrets)
    context = RunContext(run_id, report, RecordsWriter(folder, run_id), target, staging,
                         checkpoint, pii_key=settings.exports.policy().key)
    return Run(settings, started, folder, context, validator, lock, StageOptions.of(settings),
               remote)


def stage(run: Run, batches: Iterable[RawBatch], *, has_groups: bool,
          paced: bool = False) -> Staged:
    """Stages every batch (load/stager.py), then plans the deletes of a full run."""
    staged = stage_all(run.context, run.validator, run.options, batches,
                       has_groups=has_groups, paced=paced)
    return plan_deletes(run.context, staged, full=run.settings.full)


def check_guards(run: Run, staged: Staged | None = None) -> None:
    """Refuses the run before any write (load/guards.py)."""
    s = run.settings
    check_run(run.report, staged.plans if staged else {}, s.max_fault_ratio,
              s.max_delete_ratio, allow_mass=s.allow_mass_delete)


def merge(run: Run, staged: Staged) -> None:
    """Writes the staged run to the target (load/merge.py)."""
    s = run.settings
    merging.merge(run.context, staged, hard_delete=s.hard_delete, full=s.full,
                  history_in=exports_dir(s.output_dir, s.source.name) if s.history else None,
                  policy=s.exports.policy())


def export(run: Run, staged: Staged) -> None:
    """Brings the Parquet exports up to date with the target's active rows."""
    s = run.settings
    merging.export(run.context, staged, exports_dir(s.output_dir, s.source.name),
                   s.batch_size, history_on=s.history, policy=s.exports.policy())


def finish(run: Run, status: str, error: str | None = None) -> RunReport:
    """Closes the report, records the run (unless dry-run) and prunes old reports."""
    ctx, report = run.context, run.report
    report.status, report.error, report.finished_at = status, error, datetime.now(UTC)
    checkpoint("report")
    ctx.records.close()
    ctx.staging.remove()
    with report.timed("report"):
        if ctx.failed_validations:
            docs = build_data_docs(ctx.failed_validations, run.report_dir / "data_docs")
            report.data_docs = str(docs) if docs else None
        report.write_summary(run.report_dir)
        if not run.settings.dry_run:
            record_finished(ctx, run.started, status)
        prune_reports(run.report_dir.parent, run.settings.keep_reports_days)
    report.write_summary(run.report_dir)
    remote = run.remote if run.lock is not None else None  # a dry run publishes nothing
    try:
        if remote is not None:  # the page goes with the report; both under the lock
            write_page(run.report_dir)
            checkpoint("publish")  # the crash test's: committed, not yet published
            publish_run(remote, run.settings.output_dir, run.settings.source.name,
                        ctx.run_id, report)
    finally:
        if run.lock is not None:
            run.lock.release()
        ctx.target.dispose()
    if remote is None:
        write_page(run.report_dir)  # every run's index.html; after the lock is released
    return report
