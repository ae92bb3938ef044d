"""Measured child: one magsync sync of a Magento export into the SQLite store under --workdir.

python -m bench.magsync_case --input CSV --workdir DIR --result JSON [--mode steps|prefect]
                            [--history on|off]

--mode steps (default) runs the flow body in-process without Prefect: flows/sync.py::run_sync
with orchestrated=False (the flow's steps as plain functions, no API), timed around run_sync
(source opened, run opened, every step, report written). --mode prefect runs the real
`sync_flow`, which starts Prefect's temporary server; its body is the run report's
started_at to finished_at, and the harness counts the rest of the child's wall time, less
start-up and imports, as Prefect's (server start, task runs, server stop at exit).
Full mode, default settings otherwise (`--history off`: `history = false`, no change history
written, for the history's cost); a store already in --workdir makes it a re-sync.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from bench.child import Clock, case_parser, write_result

CLOCK = Clock()

from prefect.states import State  # noqa: E402  (timed: the imports are a column of their own)

from magsync.flows import sync  # noqa: E402
from magsync.flows.settings import load_settings  # noqa: E402

CLOCK.imported()


def record_count(report: dict[str, Any]) -> int:
    """Customer and address records read (every action but deleted)."""
    counts = report.get("counts", {})
    return sum(n for entity in ("customer", "address")
               for action, n in counts.get(entity, {}).items() if action != "deleted")


def run_steps(overrides: dict[str, Any]) -> dict[str, Any]:
    """The flow body without Prefect: the flow's steps as plain functions
    (run_sync(orchestrated=False)), as an untracked `magsync sync` runs them."""
    settings = load_settings(**overrides)
    cpu = time.process_time()
    CLOCK.begin()
    report = sync.run_sync(settings, orchestrated=False)
    CLOCK.end()
    report["body_cpu_s"] = time.process_time() - cpu  # every thread of this process
    return report


def run_prefect(overrides: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """The real Prefect flow; returns its report and the Prefect overhead in seconds."""
    CLOCK.begin()
    state: State[Any] = sync.sync_flow(overrides, None, return_state=True)  # type: ignore[assignment]
    CLOCK.end()
    report = state.result(raise_on_failure=False)
    if not state.is_completed() or not isinstance(report, dict):
        raise SystemExit(f"sync_flow ended {state.type}: {state.message}")
    flow_call_s = CLOCK.body_s
    started = datetime.fromisoformat(report["started_at"])
    finished = datetime.fromisoformat(report["finished_at"])
    CLOCK.body_s = (finished - started).total_seconds()
    return report, flow_call_s - CLOCK.body_s


def main(argv: list[str] | None = None) -> None:
    """Runs one sync and writes the measurements."""
    parser = case_parser(__doc__)
    parser.add_argument("--mode", choices=["steps", "prefect"], default="steps")
    parser.add_argument("--history", choices=["on", "off"], default="on")
    args = parser.parse_args(argv)
    overrides = {"source": {"kind": "csv", "input": str(args.input.resolve())},
                 "output_dir": str(args.workdir.resolve()), "full": True,
                 "history": args.history == "on"}
    prefect_s = None
    if args.mode == "prefect":
        report, prefect_s = run_prefect(overrides)
    else:
        report = run_steps(overrides)
    if report.get("status") != "done":
        raise SystemExit(f"sync ended {report.get('status')}: {report.get('error')}")
    write_result(args.result, CLOCK, record_count(report), prefect_s=prefect_s,
                 counts=report["counts"], stages_s=report.get("timings_s", {}),
                 body_cpu_s=report.get("body_cpu_s"))


if __name__ == "__main__":
    main()
