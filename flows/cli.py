"""The `magsync` command line."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import traceback
from pathlib import Path
from typing import Any

from magsync.flows import compact_cmd, faults_cmd, migrate_cmd, report_cmd
from magsync.flows.console import (
    add_prefect_option,
    error_output,
    flow_outcome,
    hide_target,
    print_json,
    print_report,
    quiet_prefect,
    setup_logging,
    untracked,
)
from magsync.flows.messages import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    describe_failure,
    load_checked,
)
from magsync.load.runs import magsync_version

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_LOCKED", "EXIT_OK", "main"]

def _sync_parser(sub: Any) -> None:
    p = sub.add_parser("sync", help="sync customers, addresses and groups into the target")
    p.add_argument("--source", choices=["csv", "soap"], default=None)
    p.add_argument("--input", type=Path, help="CSV file or folder (CSV source)")
    p.add_argument("--encoding", help="encoding of CSV files without a byte order mark, "
                                      "e.g. cp1252 (default UTF-8)")
    p.add_argument("--delimiter", help="CSV field delimiter (default ','; 'tab' for tabs)")
    p.add_argument("--url", help="store base URL (SOAP source)")
    p.add_argument("--api-user", help="SOAP API user; the key comes from "
                                      "MAGSYNC_SOURCE__API_KEY")
    p.add_argument("--api", choices=["v1", "v2", "wsi", "auto"], default=None,
                   help="SOAP API: v1 (default), v2, wsi (v2 in WS-I mode), auto (v2 or wsi)")
    p.add_argument("--ca-bundle", type=Path,
                   help="CA bundle that signs the store's TLS certificate (SOAP source)")
    p.add_argument("--target", help="SQLAlchemy URL of the target (default: SQLite under "
                                    "the output folder)")
    p.add_argument("--output-dir", type=Path)
    p.add_argument("--source-name", help="store name kept with every row (default 'default')")
    p.add_argument("--full", action="store_true", default=None,
                   help="full snapshot: also detect deletions")
    p.add_argument("--dry-run", action="store_true", default=None,
                   help="compute and report the plan; write nothing")
    p.add_argument("--hard-delete", action="store_true", default=None)
    p.add_argument("--allow-mass-delete", action="store_true", default=None)
    p.add_argument("--max-fault-ratio", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--revalidate", action="store_true", default=None,
                   help="validate every record, not only new and changed ones (after a "
                        "suite edit)")
    p.add_argument("--expectations-dir", type=Path,
                   help="folder of Great Expectations suites (default: the bundled ones)")
    p.add_argument("--wait-lock", type=float, metavar="SECONDS",
                   help="wait this long for another run's lock on the target (default: 0)")
    p.add_argument("--config", type=Path, help="TOML settings file (default ./magsync.toml)")
    p.add_argument("--log-level", default=None)
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    add_prefect_option(p)


def _emulator_parser(sub: Any) -> None:
    p = sub.add_parser("emulator", help="serve a Magento-compatible SOAP v1 API on loopback, "
                                        "to try the SOAP source without a store")
    p.add_argument("--port", type=int, default=8080, help="TCP port (0: any free one)")
    data = p.add_mutually_exclusive_group()
    data.add_argument("--data", type=Path, help="a Magento CE customer export, or a folder "
                                                "of them (e.g. data/sample)")
    data.add_argument("--customers", type=int, default=1000,
                      help="generated customers when no --data (default 1000)")
    p.add_argument("--seed", type=int, default=42, help="seed of the generated data")
    p.add_argument("--namespace", choices=["urn:Magento", "urn:OpenMage"],
                   default="urn:OpenMage", help="the WSDL's namespace (default urn:OpenMage)")
    p.add_argument("--api-user", default="magsync", help="the API user (default magsync); "
                   "its key comes from MAGSYNC_EMULATOR_API_KEY, else a random one is printed")
    p.add_argument("--log-level", default="INFO")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="magsync", description=__doc__, allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"magsync {magsync_version()}")
    parser.add_argument("--verbose", action="store_true",
                        help="on an error, print its traceback too")
    sub = parser.add_subparsers(dest="command", required=True)
    _sync_parser(sub)
    _emulator_parser(sub)
    faults_cmd.add_parser(sub)
    compact_cmd.add_parser(sub)
    migrate_cmd.add_parsers(sub)
    report_cmd.add_parsers(sub)
    for subparser in sub.choices.values():
        # An abbreviation (`--ful`) must be an error, not silently another option.
        subparser.allow_abbrev = False
        # Also accepted after the subcommand; SUPPRESS keeps a top-level --verbose.
        subparser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                               help="on an error, print its traceback too")
    return parser


def sync_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings given on the command line (only those given)."""
    source = {k: v for k, v in {"kind": args.source, "input": args.input, "url": args.url,
                                "api_user": args.api_user, "name": args.source_name,
                                "ca_bundle": args.ca_bundle, "encoding": args.encoding,
                                "delimiter": args.delimiter, "api": args.api}.items()
              if v is not None}
    top = {"output_dir": args.output_dir, "full": args.full, "dry_run": args.dry_run,
           "hard_delete": args.hard_delete, "allow_mass_delete": args.allow_mass_delete,
           "max_fault_ratio": args.max_fault_ratio, "batch_size": args.batch_size,
           "log_level": args.log_level, "revalidate": args.revalidate,
           "expectations_dir": str(args.expectations_dir.resolve())
           if args.expectations_dir else None}
    out: dict[str, Any] = {k: v for k, v in top.items() if v is not None}
    if source:
        out["source"] = source
    if args.wait_lock is not None:
        out["target"] = {"wait_lock_s": args.wait_lock}
    if args.input is not None:
        out.setdefault("source", {})["input"] = str(args.input.resolve())
    if args.ca_bundle is not None:
        out["source"]["ca_bundle"] = str(args.ca_bundle.resolve())
    if out.get("output_dir"):
        out["output_dir"] = str(Path(out["output_dir"]).resolve())
    return out


def cmd_sync(args: argparse.Namespace) -> int:
    """Runs the sync (a Prefect flow run when tracked) and prints its report table."""
    quiet_prefect()
    hide_target(args.target)
    from magsync.flows.settings import load_settings
    from magsync.flows.sync_steps import MISSING_API_KEY
    from magsync.flows.tracking import NEEDS_API, needs_api, tracked
    from magsync.transform.errors import ConfigError

    overrides = sync_overrides(args)
    config = args.config.resolve() if args.config else None
    settings = load_checked(load_settings, config, **overrides)  # quick: Prefect not loaded
    source = settings.source
    if source.kind == "soap" and source.api_key is None and not source.api_key_block:
        raise ConfigError(MISSING_API_KEY)  # before starting Prefect
    show = print_json if args.json else print_report
    if not tracked(args.prefect):
        if needs_api(source):
            raise ConfigError(NEEDS_API)
        return untracked(lambda: _run_untracked(settings), show, args.verbose,
                         settings.log_level)
    from prefect.states import State

    from magsync.flows.sync import sync_flow

    error_output(args.verbose)  # Prefect's console handler exists once prefect is imported
    setup_logging(settings.log_level)
    state: State[Any] = sync_flow(overrides, str(config) if config else None,
                                  return_state=True)  # type: ignore[assignment]
    return flow_outcome(state, show, "sync failed")


def _run_untracked(settings: Any) -> dict[str, Any]:
    from magsync.flows.sync_steps import run_steps

    return run_steps(settings)


def cmd_emulator(args: argparse.Namespace) -> int:
    """Serves the SOAP emulator until interrupted."""
    if args.data is not None and not args.data.exists():
        print(f"magsync: emulator data not found: {args.data}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(args.log_level, "magsync.magento.emulator")
    from magsync.magento.emulator import serve

    # A throwaway loopback server: a random key is fine when none is given.
    api_key = os.environ.get("MAGSYNC_EMULATOR_API_KEY") or secrets.token_hex(16)
    shown = "from MAGSYNC_EMULATOR_API_KEY" if "MAGSYNC_EMULATOR_API_KEY" in os.environ \
        else api_key

    def ready(url: str) -> None:
        print(f"magsync emulator: {url} (namespace {args.namespace})")
        print(f"API user {args.api_user}, API key {shown}")
        print(f"try: MAGSYNC_SOURCE__API_KEY=<key> magsync sync --source soap --url {url} "
              f"--api-user {args.api_user} --full", flush=True)

    try:
        serve(args.port, args.data, customers=args.customers, seed=args.seed,
              namespace=args.namespace, api_user=args.api_user, api_key=api_key,
              on_ready=ready)
    except OSError as err:
        print(f"magsync: cannot serve on port {args.port}: {err.strerror or err}",
              file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK


def run_command(args: argparse.Namespace) -> int:
    """Dispatches to the subcommand."""
    if args.command == "sync":
        return cmd_sync(args)
    if args.command == "emulator":
        return cmd_emulator(args)
    if args.command == "faults":
        return faults_cmd.run(args)
    if args.command == "compact":
        return compact_cmd.run(args)
    if args.command in ("runs", "report"):
        return report_cmd.run(args)
    return migrate_cmd.run(args)  # migrate, verify


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


if __name__ == "__main__":
    sys.exit(main())
