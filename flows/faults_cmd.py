"""`magsync faults`: the quarantined records in the target's fault table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

COLUMNS = ("run_id", "entity", "record_key", "rule", "column_name", "value", "source_line",
           "message")


def add_parser(sub: Any) -> None:
    """The `faults` subcommand's arguments."""
    p = sub.add_parser("faults", help="list faulted records kept in the target")
    p.add_argument("--run", help="only the faults of this run (cleared ones included)")
    p.add_argument("--all", action="store_true", help="include faults already cleared")
    p.add_argument("--target", help="SQLAlchemy URL of the target")
    p.add_argument("--output-dir", type=Path)
    p.add_argument("--source-name")
    p.add_argument("--config", type=Path)


def run(args: argparse.Namespace) -> int:
    """Prints the faults as a table; exit 0 (also when there are none)."""
    from magsync.flows.console import hide_target
    from magsync.flows.messages import EXIT_CONFIG, load_checked
    from magsync.flows.settings import load_settings
    from magsync.load.sql_store import SqlTarget

    hide_target(args.target)
    overrides: dict[str, Any] = {}
    if args.output_dir:
        overrides["output_dir"] = str(args.output_dir.resolve())
    if args.source_name:
        overrides["source"] = {"name": args.source_name}
    # Errors (settings, an unreachable target) reach main(): one line, exit 2.
    settings = load_checked(load_settings, args.config, **overrides)
    target = SqlTarget(settings.target_url, source=settings.source.name)
    if not target.is_initialised():
        print(f"magsync: no magsync tables in {target.describe()}", file=sys.stderr)
        return EXIT_CONFIG
    rows = target.list_faults(run_id=args.run, include_cleared=args.all or bool(args.run))
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
