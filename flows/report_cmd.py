"""`magsync report`: one run's summary, or its report page in a browser."""

from __future__ import annotations

import argparse
import json
import sys
import webbrowser
from pathlib import Path
from typing import Any

from magsync.flows.console import print_report
from magsync.flows.messages import EXIT_CONFIG, EXIT_FAILED
from magsync.flows.target_args import add_target_options, target_settings
from magsync.load import layout


def add_parser(sub: Any) -> None:
    """The `report` subcommand's arguments."""
    r = sub.add_parser("report", help="print one run's summary, or open its report page")
    r.add_argument("run", metavar="RUN", help="the run id (see `magsync runs`)")
    shown = r.add_mutually_exclusive_group()
    shown.add_argument("--open", action="store_true", help="open index.html in a browser")
    shown.add_argument("--json", action="store_true", help="print summary.json as is")
    add_target_options(r)


def run(args: argparse.Namespace) -> int:
    """Runs `report`."""
    settings = target_settings(args)
    reports = layout.reports_dir(settings.output_dir, settings.source.name)
    return show_report(settings.target_url, settings.source.name, reports, args)


def show_report(target_url: str, source: str, reports: Path, args: argparse.Namespace) -> int:
    """Prints one run's summary (or its JSON), or opens its page in a browser."""
    folder = reports / args.run
    if Path(args.run).name != args.run or args.run in ("", ".", ".."):
        print(f"magsync: not a run id: {args.run}", file=sys.stderr)
        return EXIT_CONFIG
    page = folder / "index.html"
    if args.open:
        if not page.is_file():
            print(f"magsync: no report page for run {args.run} in {reports}", file=sys.stderr)
            return EXIT_CONFIG
        return 0 if webbrowser.open(page.resolve().as_uri()) else EXIT_FAILED
    summary = _summary(folder, target_url, source, args.run)
    if summary is None:
        print(f"magsync: no run {args.run} in {reports} or the target", file=sys.stderr)
        return EXIT_CONFIG
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
        return 0
    print_report(summary)
    if summary.get("error"):
        print(f"error: {summary['error']}")
    if page.is_file():
        print(f"page: {page}")
    return 0


def _summary(folder: Path, target_url: str, source: str, run_id: str) -> dict[str, Any] | None:
    """The run's summary.json, else (report folder pruned) the copy in the runs table."""
    path = folder / "summary.json"
    if path.is_file():
        summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return summary
    from magsync.load.sql_store import SqlTarget

    target = SqlTarget(target_url, source=source)
    try:
        if not target.is_initialised():
            return None
        return next((r["summary"] for r in target.list_runs(1, run_id)), None)
    finally:
        target.dispose()
