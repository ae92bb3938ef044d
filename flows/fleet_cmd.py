"""`magsync deploy` and `magsync fleet`: the stores of the fleet file on a Prefect work pool."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from magsync.flows.console import error_output, quiet_prefect
from magsync.flows.messages import EXIT_FAILED, EXIT_OK
from magsync.flows.tracking import prefect_api_url

NEEDS_SERVER = ("{command} needs a Prefect server its workers share: set PREFECT_API_URL "
                "(or a Prefect profile with one)")


def add_parsers(sub: Any) -> None:
    """The `deploy` and `fleet` subcommands' arguments."""
    d = sub.add_parser("deploy", help="create or update one Prefect deployment per store "
                                      "and schedule of the fleet file, with its limits")
    d.add_argument("--pool", required=True, help="the Prefect work pool the runs go to")
    d.add_argument("--prune", action="store_true",
                   help="delete the deployments of stores no longer in the fleet file")
    d.add_argument("--fleet", type=Path, metavar="FILE", help="default: stores.toml")
    d.add_argument("--zombie-after", type=float, metavar="SECONDS", default=600,
                   help="a flow run without heartbeats this long is marked Crashed "
                        "(default 600: above the workers' PREFECT_FLOWS_HEARTBEAT_FREQUENCY, "
                        "Prefect's default 180)")
    d.add_argument("--json", action="store_true", help="print what was done as JSON")
    f = sub.add_parser("fleet", help="run every store of the fleet file on the work pool "
                                     "(each its own flow run) and write one fleet report")
    f.add_argument("--fleet", type=Path, metavar="FILE", help="default: stores.toml")
    f.add_argument("--full", action="store_true", help="run the stores' full deployments")
    f.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop waiting for the stores' runs after this long")
    f.add_argument("--json", action="store_true", help="print the fleet report as JSON")


def run_deploy(args: argparse.Namespace) -> int:
    """Runs `deploy`."""
    fleet = _fleet(args, "magsync deploy")
    error_output(args.verbose)
    from magsync.flows.fleet_deploy import deploy

    done = deploy(fleet, args.pool, prune=args.prune,
                  zombie_after=timedelta(seconds=args.zombie_after))
    if args.json:
        print(json.dumps(done))
        return EXIT_OK
    for name in done["deployed"]:
        print(f"deployed {name} on pool {args.pool}")
    for limit in done["limits"]:
        print(f"concurrency limit {limit}")
    for name in done["removed"]:
        print(f"removed {name}")
    return EXIT_OK


def run_fleet(args: argparse.Namespace) -> int:
    """Runs `fleet`: exit 0 when every store synced, else 1."""
    fleet = _fleet(args, "magsync fleet")
    error_output(args.verbose)
    from magsync.flows.fleet_flow import fleet_flow

    state: Any = fleet_flow([s.name for s in fleet.stores], str(fleet.output_dir),
                            full=args.full, timeout_s=args.timeout, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    if args.json:
        print(json.dumps(result))
    else:
        from magsync.load.fleet_report import FleetReport, StoreOutcome

        report = FleetReport(started_at=_when(result["started_at"]),
                             stores=[StoreOutcome(**s) for s in result["stores"]])
        print(report.summary_text(), end="")
        print(f"report: {result['report_dir']}")
    if state.is_completed():
        return EXIT_OK
    print(f"magsync: {state.message}", file=sys.stderr)
    return EXIT_FAILED


def _fleet(args: argparse.Namespace, command: str) -> Any:
    quiet_prefect()  # before prefect is imported
    from magsync.flows.fleet_file import load_fleet
    from magsync.transform.errors import ConfigError

    fleet = load_fleet(args.fleet)  # its mistakes before any server is asked
    if prefect_api_url() is None:
        raise ConfigError(NEEDS_SERVER.format(command=command))
    return fleet


def _when(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)
