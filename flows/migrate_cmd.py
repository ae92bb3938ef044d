"""`magsync migrate` and `magsync verify`: a store migration and its check."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from magsync.flows.console import (
    error_output,
    flow_outcome,
    quiet_prefect,
    setup_logging,
    untracked,
)
from magsync.flows.messages import EXIT_OK, load_checked
from magsync.flows.migrate_args import overrides
from magsync.flows.tracking import NEEDS_API, needs_api, tracked
from magsync.load import layout

ACTIONS = ("created", "updated", "deleted", "skipped", "unchanged", "faulted",
           "warning")  # the table


def run(args: argparse.Namespace) -> int:
    """Runs `migrate` (through its Prefect flow) or `verify`."""
    quiet_prefect()  # before prefect is imported: its settings are read then
    from magsync.flows.migrate import MISSING_TARGET_KEY
    from magsync.flows.migrate_settings import load_migrate_settings
    from magsync.transform.errors import ConfigError

    error_output(args.verbose)
    given = overrides(args)
    config = args.config.resolve() if args.config else None
    settings = load_checked(load_migrate_settings, config,
                            default_file="magsync-migrate.toml", **given)
    if settings.target.api_key is None:  # before starting Prefect
        raise ConfigError(MISSING_TARGET_KEY)
    setup_logging(settings.log_level)
    if args.command == "verify":
        return verify(settings)
    if not tracked(args.prefect):
        if needs_api(settings.source):
            raise ConfigError(NEEDS_API)
        from magsync.flows.migrate import run_migrate

        return untracked(lambda: run_migrate(settings, tasks=False), print_table,
                         args.verbose, settings.log_level)
    return migrate(given, str(config) if config else None)


def migrate(given: dict[str, Any], config: str | None) -> int:
    """The migration flow (a tracked run); prints its table."""
    from prefect.states import State

    from magsync.flows.migrate import migrate_flow

    state: State[Any] = migrate_flow(given, config, return_state=True)  # type: ignore[assignment]
    return flow_outcome(state, print_table, "migration failed")


def verify(settings: Any) -> int:
    """Prints each difference, then a summary line; 1 when any."""
    from magsync.flows.verify import run_verify

    result = run_verify(settings, lambda diff: print(diff.line(), flush=False))
    for note in result.notes:
        print(f"note: {note}")
    print(f"verify: {result.customers} customers and {result.addresses} addresses compared, "
          f"{len(result.differences)} difference(s)")
    return 1 if result.differences else EXIT_OK


def print_table(summary: dict[str, Any]) -> None:
    """The short table at the end of a migration."""
    print(f"migration {summary['run_id']}: {summary['status']}")
    print(f"{'entity':<10}" + "".join(f"{a:>11}" for a in ACTIONS))
    for entity in ("customer", "address"):
        counts = summary["counts"].get(entity, {})
        print(f"{entity:<10}" + "".join(f"{counts.get(a, 0):>11}" for a in ACTIONS))
    for note in summary.get("notes", []):
        print(f"note: {note}")
    folder = layout.report_dir(Path(summary["output_dir"]), summary["source"],
                               summary["run_id"])
    print(f"report: {folder}")
