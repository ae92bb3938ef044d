"""What the command line shows and how it runs a flow's body: logging, Prefect's quiet
defaults, the end-of-run table, the exit code of a finished run. Shared by every
subcommand; light on purpose (no Prefect, no pandas at import)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from magsync.flows.messages import ERRORS_LOGGER, EXIT_FAILED, EXIT_OK, quiet_tracebacks
from magsync.flows.prefect_console import prefect_info_off
from magsync.load import layout

# Prefect must run offline and quietly; these are read when prefect is imported.
PREFECT_DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_UI_ENABLED": "false",
}


def quiet_prefect() -> None:
    """Sets Prefect's offline, telemetry-free defaults unless the user set them."""
    for name, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)



def add_prefect_option(p: argparse.ArgumentParser) -> None:
    """`--prefect`: a tracked run even when no Prefect API is configured."""
    p.add_argument("--prefect", action="store_true",
                   help="run as a Prefect flow run even without a configured Prefect API "
                        "(PREFECT_API_URL or a profile): on a temporary local server")



def setup_logging(level: str, name: str = "magsync") -> None:
    """magsync's own log lines (or those of logger `name`) to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                                           "%H:%M:%S"))
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # chatty at INFO


def error_output(verbose: bool) -> None:
    """Tracebacks only with --verbose: then expected errors log theirs too (ERRORS_LOGGER);
    without it, Prefect's console lines lose theirs."""
    if verbose:
        logging.getLogger(ERRORS_LOGGER).setLevel(logging.DEBUG)
    else:
        quiet_tracebacks()
        prefect_info_off()  # Prefect's INFO lines only with --verbose



def untracked(body: Any, show: Any, verbose: bool, log_level: str) -> int:
    """Runs `body` (a flow's plain steps) in-process, without Prefect, saying so on
    stderr; shows the report, also that of a failed run, whose error main() describes."""
    from magsync.flows.tracking import UNTRACKED_LINE
    from magsync.transform.errors import MagsyncError

    print(UNTRACKED_LINE, file=sys.stderr, flush=True)
    error_output(verbose)
    setup_logging(log_level)
    try:
        report = body()
    except MagsyncError as err:
        failed = getattr(err, "report", None)
        if isinstance(failed, dict) and "counts" in failed:
            show(failed)
        raise
    show(report)
    return EXIT_OK


def flow_outcome(state: Any, show: Any, fallback: str) -> int:
    """The exit code of a finished flow run, after `show`ing its report; an exception the
    run ended with is raised again for main() to describe."""
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    if isinstance(result, dict) and "counts" in result:
        show(result)
    if state.is_completed():
        return EXIT_OK
    print(f"magsync: {' '.join((state.message or fallback).split())}", file=sys.stderr)
    return int(result.get("exit_code", EXIT_FAILED)) if isinstance(result, dict) else EXIT_FAILED



def print_json(summary: dict[str, Any]) -> None:
    """The run's summary as one JSON object, for scripts."""
    print(json.dumps(summary, ensure_ascii=False))


def print_report(summary: dict[str, Any]) -> None:
    """The short table at the end of a run."""
    actions = ["created", "updated", "restored", "deleted", "unchanged", "faulted"]
    print(f"run {summary['run_id']}: {summary['status']}")
    print(f"{'entity':<10}" + "".join(f"{a:>11}" for a in actions))
    for entity in ("group", "customer", "address"):
        counts = summary["counts"].get(entity, {})
        print(f"{entity:<10}" + "".join(f"{counts.get(a, 0):>11}" for a in actions))
    for note in summary.get("notes", []):
        print(f"note: {note}")
    report_dir = layout.report_dir(Path(summary["output_dir"]), summary["source"],
                                   summary["run_id"])
    print(f"report: {report_dir}")


