"""The `magsync` command line."""

from __future__ import annotations

import argparse
import gc
import sys
import traceback

from magsync.flows import (
    compact_cmd,
    emulator_cmd,
    faults_cmd,
    fleet_cmd,
    forget_cmd,
    migrate_args,
    migrate_cmd,
    report_cmd,
    runs_cmd,
    sync_args,
    sync_cmd,
)
from magsync.flows.messages import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    describe_failure,
)
from magsync.flows.sync_args import overrides as sync_overrides
from magsync.load.runs import magsync_version

VERBOSE_HELP = "on an error, print its traceback too; show Prefect's INFO lines"

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_LOCKED", "EXIT_OK", "build_parser", "main",
           "sync_overrides"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="magsync", description=__doc__, allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"magsync {magsync_version()}")
    parser.add_argument("--verbose", action="store_true",
                        help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    sync_args.add_parser(sub)
    emulator_cmd.add_parser(sub)
    faults_cmd.add_parser(sub)
    compact_cmd.add_parser(sub)
    forget_cmd.add_parser(sub)
    migrate_args.add_parsers(sub)
    runs_cmd.add_parser(sub)
    report_cmd.add_parser(sub)
    fleet_cmd.add_parsers(sub)
    for subparser in sub.choices.values():
        # An abbreviation (`--ful`) must be an error, not silently another option.
        subparser.allow_abbrev = False
        # Also accepted after the subcommand; SUPPRESS keeps a top-level --verbose.
        subparser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                               help=VERBOSE_HELP)
    return parser


COMMANDS = {"sync": sync_cmd.run, "emulator": emulator_cmd.run, "faults": faults_cmd.run,
            "compact": compact_cmd.run, "forget": forget_cmd.run,
            "runs": runs_cmd.run, "report": report_cmd.run,
            "migrate": migrate_cmd.run, "verify": migrate_cmd.run,
            "deploy": fleet_cmd.run_deploy, "fleet": fleet_cmd.run_fleet}


def run_command(args: argparse.Namespace) -> int:
    """Dispatches to the subcommand."""
    return COMMANDS[args.command](args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `magsync` console script: every error ends with one
    `magsync: ...` line and its exit code (README, "Exit codes")."""
    args = build_parser().parse_args(argv)
    try:
        return run_command(args)
    except KeyboardInterrupt:
        print("magsync: interrupted", file=sys.stderr)
        return EXIT_FAILED
    except Exception as err:  # noqa: BLE001 - the one place every error becomes a line
        if args.verbose:
            traceback.print_exception(err, file=sys.stderr)
        code, line = describe_failure(err)
        print(f"magsync: {line}", file=sys.stderr)
        return code


def script() -> int:
    """The `magsync` console script: `main`, then the objects it made are frozen out of
    the collector's reach. The interpreter's exit otherwise walks every object the imports
    made (Great Expectations, pandas, SQLAlchemy) in its last collections: about 1 s of a
    3-7 s run on this 2-core machine; frozen, the exit takes about 0.1 s. Only for a
    process that ends now: in a long-lived one, frozen garbage would never be freed."""
    try:
        return main()
    finally:  # also after argparse's exits (--help, --version, a usage error)
        gc.freeze()


if __name__ == "__main__":
    sys.exit(script())
