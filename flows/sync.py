"""The Prefect flow of a sync: thin tasks over the plain steps in flows/pipeline.py."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed
from pydantic import ValidationError

from extract.csv_source import CsvSource
from extract.soap_source import SoapOptions, SoapSource
from flows import pipeline
from flows.messages import ERRORS_LOGGER, settings_error
from flows.settings import Settings, SourceSettings, load_settings
from flows.stage import stage_all
from load.sql_store import SqlTarget
from transform.errors import ConfigError, GuardRefusedError, MagsyncError
from transform.schema import CUSTOMER

TASK_OPTIONS: dict[str, Any] = {"persist_result": False, "cache_policy": NO_CACHE}
Source = CsvSource | SoapSource
MISSING_API_KEY = ("no SOAP API key: set MAGSYNC_SOURCE__API_KEY (or name a Prefect Secret "
                   "block in source.api_key_block)")


@task(name="stage", **TASK_OPTIONS)
def stage_task(run: pipeline.Run, source: Source) -> None:
    """Extract, normalise, diff and stage every batch."""
    stage_all(run, source, has_groups=source.has_groups)
    run.cursors.update(source.cursors())


@task(name="guards", **TASK_OPTIONS)
def guards_task(run: pipeline.Run) -> None:
    """Delete-ratio and fault-ratio guards."""
    pipeline.check_guards(run)


@task(name="merge", **TASK_OPTIONS)
def merge_task(run: pipeline.Run) -> None:
    """Write staged changes to the target."""
    pipeline.merge(run)


@task(name="export", **TASK_OPTIONS)
def export_task(run: pipeline.Run) -> None:
    """Rewrite the Parquet exports."""
    pipeline.export(run)


def build_source(settings: Settings) -> Source:
    """The configured source."""
    if settings.source.kind == "soap":
        return soap_source(settings)
    if settings.source.kind != "csv":
        raise ConfigError(f"source {settings.source.kind!r} is not available in this build")
    if settings.source.input is None:
        raise ConfigError("--input is required for a CSV source")
    return CsvSource(settings.source.input, batch_size=settings.batch_size,
                     website_codes=settings.website_codes,
                     block_bytes=settings.csv_block_bytes,
                     encoding=settings.source.encoding, delimiter=settings.source.delimiter)


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
    from magento.client import MagentoClient

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
            from magento.client_v2 import MagentoV2Client

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


def run_sync(settings: Settings, *, orchestrated: bool = True) -> dict[str, Any]:
    """One sync, step by step; returns the report as a dict. Raises MagsyncError with the
    report attached (`err.report`) when the run is refused or fails.

    `orchestrated=False` calls the tasks' plain functions (no Prefect API): for the
    benchmark and for the crash tests' forked runs.
    """
    def step(task_: Any) -> Any:
        return task_ if orchestrated else task_.fn

    check_output_dir(settings.output_dir)
    source = build_source(settings)
    run = pipeline.open_run(settings, source.describe())
    if isinstance(source, CsvSource):  # skipped files now; notes found while reading later
        run.report.notes.extend(source.notes)
        source.notes = run.report.notes
    try:
        step(stage_task)(run, source)
        step(guards_task)(run)
        if not settings.dry_run:
            step(merge_task)(run)
            step(export_task)(run)
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


@flow(name="magsync-sync", persist_result=False, log_prints=False)
def sync_flow(overrides: dict[str, Any] | None = None,
              config_file: str | None = None) -> Any:
    """Sync a store into the target. Secrets come from the environment, never parameters.

    Expected failures (configuration, refused guards, a source that refuses us) end the
    flow run in a Failed state carrying the report and an exit code, without a traceback.
    """
    try:
        settings = load_settings(Path(config_file) if config_file else None,
                                 **(overrides or {}))
    except ValidationError as err:
        return Failed(message=settings_error(err), data={"exit_code": ConfigError.exit_code})
    try:
        return run_sync(settings)
    except MagsyncError as err:
        # Expected: no traceback in the run's log; `magsync --verbose` shows it here.
        logging.getLogger(ERRORS_LOGGER).debug("the run ended: %s", err, exc_info=err)
        report = dict(getattr(err, "report", None) or {})
        report["exit_code"] = err.exit_code
        return Failed(message=str(err), data=report)

