"""`magsync runs` and `magsync report`: recent runs and one run's summary or page."""

from __future__ import annotations

import argparse
import json
import sys
import webbrowser
from pathlib import Path
from typing import Any

COLUMNS = ("run_id", "started", "status", "counts", "faults", "kind")
ACTIONS = ("created", "updated", "restored", "deleted", "skipped", "unchanged")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", help="SQLAlchemy URL of the target")
    p.add_argument("--output-dir", type=Path)
    p.add_argument("--source-name")
    p.add_argument("--config", type=Path)


def add_parsers(sub: Any) -> None:
    """The `runs` and `report` subcommands' arguments."""
    p = sub.add_parser("runs", help="list recent runs: syncs recorded in the target, "
                                    "migrations from their report folders")
    p.add_argument("--limit", type=int, default=20, help="newest runs shown (default 20)")
    _common(p)
    r = sub.add_parser("report", help="print one run's summary, or open its report page")
    r.add_argument("run", metavar="RUN", help="the run id (see `magsync runs`)")
    shown = r.add_mutually_exclusive_group()
    shown.add_argument("--open", action="store_true", help="open index.html in a browser")
    shown.add_argument("--json", action="store_true", help="print summary.json as is")
    _common(r)


def run(args: argparse.Namespace) -> int:
    """Runs `runs` or `report`."""
    from magsync.flows.console import hide_target
    from magsync.flows.settings import load_settings

    hide_target(args.target)
    overrides: dict[str, Any] = {}
    if args.output_dir:
        overrides["output_dir"] = str(args.output_dir.resolve())
    if args.source_name:
        overrides["source"] = {"name": args.source_name}
    settings = load_settings(args.config, **overrides)
    reports = settings.output_dir / "reports"
    if args.command == "runs":
        return list_runs(settings.target_url, settings.source.name, reports, args.limit)
    return show_report(settings.target_url, settings.source.name, reports, args)


def recent_runs(target_url: str, source: str, reports: Path, limit: int
                ) -> list[dict[str, Any]]:
    """Syncs from the target's runs table and migrations from their report folders,
    newest first, each as {run_id, started, status, kind, summary}."""
    from magsync.load.sql_store import SqlTarget

    found: dict[str, dict[str, Any]] = {}
    target = SqlTarget(target_url, source=source)
    try:
        if target.is_initialised():
            for row in target.list_runs(limit):
                found[row["run_id"]] = {"run_id": row["run_id"], "status": row["status"],
                                        "started": str(row["started_at"]), "kind": "sync",
                                        "summary": row["summary"]}
    finally:
        target.dispose()
    for summary in _folder_summaries(reports):
        if summary.get("mode") == "migrate":
            found[summary["run_id"]] = {"run_id": summary["run_id"],
                                        "status": summary.get("status"),
                                        "started": summary.get("started_at"),
                                        "kind": "migrate", "summary": summary}
    # run ids start with their UTC start time, so they sort in time order
    return sorted(found.values(), key=lambda r: r["run_id"], reverse=True)[:limit]


def _folder_summaries(reports: Path) -> list[dict[str, Any]]:
    """The readable summary.json of every report folder."""
    out = []
    for path in sorted(reports.glob("*/summary.json")) if reports.is_dir() else []:
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue  # a folder being written or pruned right now
    return out


def counts_text(summary: dict[str, Any] | None) -> tuple[str, int]:
    """Records per action over all entities ('created 20, updated 1') and the faulted."""
    totals: dict[str, int] = {}
    for counts in ((summary or {}).get("counts") or {}).values():
        for action, n in counts.items():
            totals[action] = totals.get(action, 0) + int(n)
    text = ", ".join(f"{a} {totals[a]}" for a in ACTIONS if totals.get(a))
    return text or "-", totals.get("faulted", 0)


def list_runs(target_url: str, source: str, reports: Path, limit: int) -> int:
    """Prints the recent runs as a tab-separated table."""
    rows = recent_runs(target_url, source, reports, limit)
    print("\t".join(COLUMNS))
    for row in rows:
        counts, faults = counts_text(row["summary"])
        print("\t".join(str(v) for v in (row["run_id"], row["started"], row["status"],
                                         counts, faults, row["kind"])))
    print(f"{len(rows)} run(s)", file=sys.stderr)
    return 0


def show_report(target_url: str, source: str, reports: Path, args: argparse.Namespace) -> int:
    """Prints one run's summary (or its JSON), or opens its page in a browser."""
    from magsync.flows.console import print_report
    from magsync.flows.messages import EXIT_CONFIG, EXIT_FAILED

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
