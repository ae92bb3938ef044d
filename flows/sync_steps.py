"""A sync's steps without Prefect: the checks before a run and `run_steps`.

flows/sync.py wraps the same steps in Prefect tasks; an untracked `magsync sync` (no
Prefect API configured) runs them from here and never imports Prefect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from magsync.extract.csv_source import CsvSource
from magsync.extract.sources import Source
from magsync.flows import pipeline
from magsync.flows.messages import ERRORS_LOGGER, settings_error
from magsync.flows.settings import Settings, load_settings
from magsync.flows.source_setup import build_source
from magsync.flows.watch import watched
from magsync.load.run_context import check_output_dir
from magsync.load.sync_state import Staged
from magsync.transform.errors import ConfigError, GuardRefusedError, MagsyncError


def stage_step(run: pipeline.Run, source: Source) -> Staged:
    """Extract, normalise, diff and stage every batch; plan the deletes."""
    batches = watched(source, run_id=run.context.run_id, command="sync",  # progress
                      source_name=run.settings.source.name, progress=run.settings.progress)
    staged = pipeline.stage(run, batches, has_groups=source.has_groups, paced=source.paced)
    return replace(staged, cursors=source.cursors())


@dataclass(frozen=True)
class Steps:
    """The four steps of a sync: plain functions, or Prefect tasks wrapping them."""

    stage: Callable[[pipeline.Run, Source], Staged] = stage_step
    guards: Callable[[pipeline.Run, Staged], Any] = pipeline.check_guards
    merge: Callable[[pipeline.Run, Staged], Any] = pipeline.merge
    export: Callable[[pipeline.Run, Staged], Any] = pipeline.export
    # Held around the writes (merge, export): a tracked run's target concurrency slot.
    writing: Callable[[Settings], AbstractContextManager[Any]] = lambda _: nullcontext()
    # The work pool the run is on and its concurrency limit; None: not on a pool.
    pool: Callable[[], tuple[str, int | None] | None] = lambda: None


PLAIN = Steps()


def run_steps(settings: Settings, steps: Steps = PLAIN) -> dict[str, Any]:
    """One sync, step by step; returns the report as a dict. Raises MagsyncError with the
    report attached (`err.report`) when the run is refused or fails."""
    check_output_dir(settings.output_dir)
    check_single_writer(settings, steps.pool)
    source = build_source(settings)
    run = pipeline.open_run(settings, source.describe())
    if isinstance(source, CsvSource):  # skipped files now; notes found while reading later
        run.report.notes.extend(source.notes)
        source.notes = run.report.notes
    try:
        staged = steps.stage(run, source)
        steps.guards(run, staged)
        if not settings.dry_run:
            with steps.writing(settings), run.report.window("write"):
                steps.merge(run, staged)
                steps.export(run, staged)
    except GuardRefusedError as err:
        err.report = pipeline.finish(run, "refused", str(err)).to_dict()
        raise
    except MagsyncError as err:
        err.report = pipeline.finish(run, "failed", str(err)).to_dict()
        raise
    except BaseException as err:
        pipeline.finish(run, "failed", f"{type(err).__name__}: {err}")
        raise
    report = pipeline.finish(run, "dry-run" if settings.dry_run else "done")
    return report.to_dict()


def check_single_writer(settings: Settings,
                        on_pool: Callable[[], tuple[str, int | None] | None]) -> None:
    """Refuses a SQLite target whose runs could come from several machines (a remote
    output, or runs on a work pool) unless the pool allows one run at a time."""
    if not settings.target_url.startswith("sqlite"):
        return  # a server target's run lock holds across machines: no pool to ask about
    pool = on_pool()
    if not settings.remote.url and not pool:
        return
    why = ("a SQLite target's run lock is a file on one machine: it cannot keep runs on "
           "other machines from writing the same store's output")
    fix = ("run it on a work pool whose concurrency limit is 1 (prefect work-pool "
           "set-concurrency-limit POOL 1), or use a PostgreSQL or MariaDB target")
    if pool is None:
        raise ConfigError(f"output {settings.remote.url} is remote and {why}; {fix}")
    name, limit = pool
    if limit != 1:
        raise ConfigError(f"work pool {name!r} allows {limit or 'unlimited'} concurrent "
                          f"runs and {why}; {fix}")


def sync_outcome(overrides: dict[str, Any] | None, config_file: str | None,
                 steps: Steps = PLAIN) -> tuple[dict[str, Any], str | None]:
    """A sync from its settings: its report and None, or, when it ended on an expected
    error (settings, refused guards, a source that refuses us), the report with the exit
    code and the error's message. Anything else is raised."""
    try:
        settings = load_settings(Path(config_file) if config_file else None,
                                 **(overrides or {}))
    except ValidationError as err:
        return {"exit_code": ConfigError.exit_code}, settings_error(err)
    try:
        return run_steps(settings, steps), None
    except MagsyncError as err:
        # Expected: no traceback in the run's log; `magsync --verbose` shows it here.
        logging.getLogger(ERRORS_LOGGER).debug("the run ended: %s", err, exc_info=err)
        report = dict(getattr(err, "report", None) or {})
        report["exit_code"] = err.exit_code
        return report, str(err)
