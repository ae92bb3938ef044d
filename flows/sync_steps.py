"""A sync's steps without Prefect: the source, the checks before a run and `run_steps`.

flows/sync.py wraps the same steps in Prefect tasks; an untracked `magsync sync` (no
Prefect API configured) runs them from here and never imports Prefect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from magsync.extract.csv_source import CsvSource
from magsync.extract.soap_source import SoapOptions, SoapSource
from magsync.flows import pipeline
from magsync.flows.messages import ERRORS_LOGGER, settings_error
from magsync.flows.settings import Settings, SourceSettings, load_settings
from magsync.flows.watch import watched
from magsync.load.run_context import check_output_dir
from magsync.load.sql_store import SqlTarget
from magsync.load.sync_state import Staged
from magsync.transform.errors import ConfigError, GuardRefusedError, MagsyncError
from magsync.transform.schema import CUSTOMER

Source = CsvSource | SoapSource
MISSING_API_KEY = ("no SOAP API key: set MAGSYNC_SOURCE__API_KEY (or name a Prefect Secret "
                   "block in source.api_key_block)")


def stage_step(run: pipeline.Run, source: Source) -> Staged:
    """Extract, normalise, diff and stage every batch; plan the deletes."""
    batches = watched(source, run_id=run.context.run_id, command="sync",  # progress
                      source_name=run.settings.source.name, progress=run.settings.progress)
    staged = pipeline.stage(run, batches, has_groups=source.has_groups)
    return replace(staged, cursors=source.cursors())


@dataclass(frozen=True)
class Steps:
    """The four steps of a sync: plain functions, or Prefect tasks wrapping them."""

    stage: Callable[[pipeline.Run, Source], Staged] = stage_step
    guards: Callable[[pipeline.Run, Staged], Any] = pipeline.check_guards
    merge: Callable[[pipeline.Run, Staged], Any] = pipeline.merge
    export: Callable[[pipeline.Run, Staged], Any] = pipeline.export


PLAIN = Steps()


def build_source(settings: Settings) -> Source:
    """The configured source (extract/sources.py), with this store's saved cursor."""
    from magsync.extract import sources

    read = sources.ReadOptions(settings.batch_size, settings.csv_block_bytes,
                               settings.website_codes, settings.full)
    return sources.build_source(settings.source, read,
                                api_key=lambda: _api_key(settings.source),
                                cursor=lambda: saved_cursor(settings))


def _api_key(source: SourceSettings) -> str:
    """The API key: MAGSYNC_SOURCE__API_KEY, else the named Prefect Secret block."""
    if source.api_key is not None and source.api_key.get_secret_value():
        return source.api_key.get_secret_value()
    if source.api_key_block:
        from prefect.blocks.system import Secret

        try:
            block: Any = Secret.load(source.api_key_block)  # sync here: no event loop runs
            value = block.get()
        except ValueError:
            raise ConfigError(f"no Prefect Secret block named {source.api_key_block!r}"
                              ) from None
        if value:
            return str(value)
    raise ConfigError(MISSING_API_KEY)


def soap_source(settings: Settings) -> SoapSource:
    """The SOAP source, checked (WSDL, login) before the run starts: a bad URL, user or
    key ends here with one line and exit code 2."""
    from magsync.magento.client import MagentoClient

    s = settings.source
    if not s.url or not s.api_user:
        raise ConfigError("a SOAP source needs --url and --api-user")
    api_key = _api_key(s)
    basic = None
    if s.basic_auth_user:
        password = s.basic_auth_password.get_secret_value() if s.basic_auth_password else ""
        basic = (s.basic_auth_user, password)
    options: dict[str, Any] = {
        "timeout": s.timeout_s, "verify": str(s.ca_bundle) if s.ca_bundle else True,
        "basic_auth": basic, "retries": s.retries, "backoff_base": s.backoff_base_s,
        "pool_size": s.concurrency + 1}
    try:
        if s.api == "v1":
            client = MagentoClient(s.url, s.api_user, api_key, **options)
        else:
            from magsync.magento.client_v2 import MagentoV2Client

            client = MagentoV2Client(s.url, s.api_user, api_key, api=s.api, **options)
    except ValueError as err:
        raise ConfigError(f"SOAP source: {err}") from None
    cursor = None if settings.full else saved_cursor(settings)
    source = SoapSource(client, SoapOptions(
        batch_size=settings.batch_size, window=s.window,
        max_id_gap=s.max_id_gap or 100 * s.window, multicall_size=s.multicall_size,
        concurrency=s.concurrency, lookback_s=s.lookback_s, full=settings.full,
        cursor=cursor))
    source.check()
    return source


def saved_cursor(settings: Settings) -> str | None:
    """The customer cursor the last committed run saved for this store, if any."""
    target = SqlTarget(settings.target_url, source=settings.source.name)
    try:
        return target.cursor(CUSTOMER)
    finally:
        target.dispose()


def run_steps(settings: Settings, steps: Steps = PLAIN) -> dict[str, Any]:
    """One sync, step by step; returns the report as a dict. Raises MagsyncError with the
    report attached (`err.report`) when the run is refused or fails."""
    check_output_dir(settings.output_dir)
    source = build_source(settings)
    run = pipeline.open_run(settings, source.describe())
    if isinstance(source, CsvSource):  # skipped files now; notes found while reading later
        run.report.notes.extend(source.notes)
        source.notes = run.report.notes
    try:
        staged = steps.stage(run, source)
        steps.guards(run, staged)
        if not settings.dry_run:
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
