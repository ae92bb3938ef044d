"""The fleet's parent flow: every store's deployment as its own flow run, one report."""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Failed

from magsync.flows.settings import load_settings
from magsync.load.fleet_report import FleetReport, store_outcome
from magsync.load.remote import fetch_newest_report, open_remote, put_folder

SYNC_FLOW = "magsync-sync"
POLL_S = 2.0


@flow(name="magsync-fleet", persist_result=False, log_prints=False)
def fleet_flow(stores: list[str], output_dir: str, full: bool = False,
               timeout_s: float | None = None) -> Any:
    """Runs every store's sync deployment (the `-full` one with `full`) as its own flow
    run on the work pool, waits for all, writes the fleet report. One store failing never
    stops the others; the fleet run fails when any store did."""
    from prefect.deployments import run_deployment

    logger = get_run_logger()
    report = FleetReport(started_at=datetime.now(UTC))
    suffix = "-full" if full else ""
    runs: dict[str, Any] = {}
    for store in stores:  # timeout 0: scheduled now, awaited below all together
        runs[store] = run_deployment(f"{SYNC_FLOW}/{store}{suffix}", timeout=0,
                                     as_subflow=True)
        logger.info("store %s: flow run %s", store, runs[store].id)
    finished = _wait({s: r.id for s, r in runs.items()}, timeout_s)
    settings = load_settings(output_dir=output_dir)  # a URL: its local copy and endpoint
    remote = open_remote(settings.remote.url, settings.remote.endpoint_url) \
        if settings.remote.url else None
    with tempfile.TemporaryDirectory(prefix="magsync-fleet-") as scratch:
        for store in stores:
            fr = finished[store]
            state = fr.state.type.value if fr.state else "UNKNOWN"
            duration = fr.total_run_time.total_seconds() if fr.total_run_time else None
            reports = settings.output_dir
            if remote is not None:  # the runs published their reports from any worker
                reports = Path(scratch)
                fetch_newest_report(remote, store, reports)
            report.stores.append(store_outcome(
                reports, store, state, str(fr.id), fr.start_time, duration,
                fr.state.message if fr.state else None))
    report.finished_at = datetime.now(UTC)
    folder = report.write(settings.output_dir)
    where = str(folder)
    if remote is not None:
        rel = folder.relative_to(settings.output_dir).as_posix()
        put_folder(settings.output_dir, remote, rel, last="fleet.json")
        where = f"{remote.url}/{rel}"
    logger.info("fleet report: %s\n%s", where, report.summary_text())
    result = {**report.to_dict(), "report_dir": where}
    if report.failed:
        return Failed(message=f"stores failed: {', '.join(report.failed)}", data=result)
    return result


def _wait(ids: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
    """Polls the flow runs until each is in a final state (or the timeout passes)."""
    from prefect.client.orchestration import get_client

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    done: dict[str, Any] = {}
    with get_client(sync_client=True) as client:
        while True:
            for store, run_id in ids.items():
                if store not in done:
                    fr = client.read_flow_run(run_id)
                    if fr.state is not None and fr.state.is_final():
                        done[store] = fr
            if len(done) == len(ids):
                return done
            if deadline is not None and time.monotonic() > deadline:
                return {**{s: client.read_flow_run(i) for s, i in ids.items()}, **done}
            time.sleep(POLL_S)
