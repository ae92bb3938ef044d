"""`magsync runs`: recent runs, syncs from the target's runs table and migrations from
their report folders."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from magsync.flows.target_args import add_target_options, target_settings
from magsync.load import layout

COLUMNS = ("run_id", "started", "status", "counts", "faults", "kind")
ACTIONS = ("created", "updated", "restored", "deleted", "skipped", "unchanged")


def add_parser(sub: Any) -> None:
    """The `runs` subcommand's arguments."""
    p = sub.add_parser("runs", help="list recent runs: syncs recorded in the target, "
                                    "migrations from their report folders")
    p.add_argument("--limit", type=int, default=20, help="newest runs shown (default 20)")
    add_target_options(p)


def run(args: argparse.Namespace) -> int:
    """Runs `runs`."""
    settings = target_settings(args)
    return list_runs(settings.target_url, settings.source.name,
                     layout.reports_dir(settings.output_dir, settings.source.name), args.limit)


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
