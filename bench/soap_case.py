"""Measured child: magsync's full SOAP sync of the emulator into a fresh SQLite store.

python -m bench.soap_case --url URL --workdir DIR --result JSON [--source KEY=VALUE ...]

The flow body without Prefect's API: flows/sync.py::run_sync(settings, orchestrated=False),
which calls each task's plain function in the order the flow does (source built and checked,
run opened, stage with validation, guards, merge, Parquet export, report). Timed around
run_sync, so the body includes the WSDL load, the check and the login. Full mode, default
settings but the source (kind soap, the URL, API user "bench", any --source override); the
API key comes from MAGSYNC_SOURCE__API_KEY, as in production.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from bench.child import Clock, write_result

CLOCK = Clock()

from magsync.flows.settings import load_settings  # noqa: E402  (timed: the imports are a column)
from magsync.flows.sync import run_sync  # noqa: E402

CLOCK.imported()


def source_value(text: str) -> tuple[str, Any]:
    """KEY=VALUE with an int, float or string value."""
    key, _, raw = text.partition("=")
    value: Any = raw
    for kind in (int, float):
        try:
            value = kind(raw)
            break
        except ValueError:
            continue
    return key, value


def stored_counts(workdir: Path) -> dict[str, int]:
    """Active rows per entity table of the store the sync wrote."""
    with closing(sqlite3.connect(workdir / "magsync.sqlite")) as conn:
        return {table: conn.execute(f"SELECT count(*) FROM {table} "
                                    "WHERE deleted_at IS NULL").fetchone()[0]
                for table in ("customers", "customer_addresses")}


def main(argv: list[str] | None = None) -> None:
    """Runs one sync and writes the measurements."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--source", type=source_value, action="append", default=[],
                        metavar="KEY=VALUE", help="a source setting (window, concurrency...)")
    args = parser.parse_args(argv)
    source = {"kind": "soap", "url": args.url, "api_user": "bench", **dict(args.source)}
    settings = load_settings(source=source, output_dir=str(args.workdir.resolve()), full=True)
    CLOCK.begin()
    report = run_sync(settings, orchestrated=False)
    CLOCK.end()
    if report.get("status") != "done":
        raise SystemExit(f"sync ended {report.get('status')}: {report.get('error')}")
    counts = report["counts"]
    customers = sum(n for action, n in counts.get("customer", {}).items() if action != "deleted")
    used = settings.source.model_dump(include={"window", "multicall_size", "concurrency"})
    write_result(args.result, CLOCK, customers, counts=counts,
                 stages_s=report.get("timings_s", {}), stored=stored_counts(args.workdir),
                 source_settings=used)
    print(json.dumps({"body_s": CLOCK.body_s, "counts": counts}))


if __name__ == "__main__":
    main()
