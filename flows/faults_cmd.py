"""`magsync faults`: the quarantined records in the target's fault table."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from magsync.flows.messages import EXIT_CONFIG
from magsync.flows.target_args import add_target_options, target_settings

COLUMNS = ("run_id", "entity", "record_key", "rule", "column_name", "value", "source_line",
           "message")


def add_parser(sub: Any) -> None:
    """The `faults` subcommand's arguments."""
    p = sub.add_parser("faults", help="list faulted records kept in the target")
    p.add_argument("--run", help="only the faults of this run (cleared ones included)")
    p.add_argument("--all", action="store_true", help="include faults already cleared")
    add_target_options(p)


def run(args: argparse.Namespace) -> int:
    """Prints the faults as a table; exit 0 (also when there are none)."""
    from magsync.load.sql_store import SqlTarget

    # Errors (settings, an unreachable target) reach main(): one line, exit 2.
    settings = target_settings(args)
    target = SqlTarget(settings.target_url, source=settings.source.name)
    try:
        if not target.is_initialised():
            print(f"magsync: no magsync tables in {target.describe()}", file=sys.stderr)
            return EXIT_CONFIG
        rows = target.list_faults(run_id=args.run, include_cleared=args.all or bool(args.run))
    finally:
        target.dispose()
    print_table(rows)
    return 0


def print_table(rows: list[dict[str, Any]]) -> None:
    """Tab-separated rows under a header, one line per fault."""
    print("\t".join(COLUMNS))
    for row in rows:
        cells = ["" if row.get(c) is None else str(row[c]) for c in COLUMNS]
        print("\t".join(cell.replace("\t", " ").replace("\n", "\\n") for cell in cells))
    print(f"{len(rows)} fault(s)", file=sys.stderr)
