"""A worker killed with its flow run (kill -9 of both process groups): the zombie-run
automation `magsync deploy` creates marks the run Crashed once its heartbeats stop, and a
rerun of the store converges."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlalchemy as sa

from magsync.magento.emulator import generated_store, run_emulator
from tests.prefect_server import BIN, PrefectServer, api_client, group_alive
from tests.servers import fresh_database
from tests.test_fleet import KEY, active_customers, cli, fleet_toml, worker

CUSTOMERS = 6


def flow_run_states(server: PrefectServer, deployment: str) -> list[str]:
    """The state types of the deployment's flow runs, oldest first."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with api_client(server) as client:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=[deployment])), sort=FlowRunSort.START_TIME_ASC)
    return [r.state_type.value if r.state_type else None for r in runs]


@pytest.mark.slow
def test_killed_worker_run_is_crashed_and_a_rerun_converges(prefect_server: PrefectServer,
                                                            tmp_path: Path) -> None:
    """Two stores: the doomed worker (one run at a time) takes one and pauses in it; a
    healthy worker, started then, takes the other. The machine of the first dies."""
    out, pool = tmp_path / "out", f"crash-{secrets.token_hex(3)}"
    names = [f"k{secrets.token_hex(2)}", f"o{secrets.token_hex(2)}"]
    env = {**prefect_server.env, "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
           **{f"{n.upper()}_MAGENTO_KEY": KEY for n in names}}
    held = {**env, "MAGSYNC_TEST_PAUSE_AT": "first-batch",
            "MAGSYNC_TEST_PAUSE_FILE": str(tmp_path / "paused")}
    with ExitStack() as stack:
        db = stack.enter_context(fresh_database("postgresql"))
        emus = {n: stack.enter_context(run_emulator(generated_store(CUSTOMERS, seed=4 + i),
                                                    users={"etl": KEY}))
                for i, n in enumerate(names)}
        fleet = tmp_path / "stores.toml"
        fleet.write_text(fleet_toml(str(out), db, {n: e.url for n, e in emus.items()}, names))
        subprocess.run([str(BIN / "prefect"), "work-pool", "create", pool, "--type",
                        "process"], env=env, capture_output=True, timeout=120, check=True)
        deployed = cli(env, "deploy", "--pool", pool, "--fleet", str(fleet),
                       "--zombie-after", "40")
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        with worker(held, pool, "doomed", tmp_path / "doomed.log", limit=1) as pgid:
            fleet_run = subprocess.Popen([str(BIN / "magsync"), "fleet", "--fleet", str(fleet),
                                          "--json"], env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 300
            while not (tmp_path / "paused").exists() and time.monotonic() < deadline:
                time.sleep(0.5)
            assert (tmp_path / "paused").exists(), (tmp_path / "doomed.log").read_text()[-3000:]
            with worker(env, pool, "other", tmp_path / "other.log"):
                # The machine dies: the worker's process group, and the flow run's (a process
                # worker starts each run in a session of its own: the worker alone would
                # leave it).
                run_pid = int((tmp_path / "paused").read_text())
                os.killpg(pgid, signal.SIGKILL)
                os.killpg(os.getpgid(run_pid), signal.SIGKILL)
                stdout, stderr = fleet_run.communicate(timeout=300)
        assert not group_alive(pgid) and not group_alive(run_pid)
        report = json.loads(stdout.splitlines()[-1])
        assert fleet_run.returncode == 1, stderr[-3000:]
        states = {s["store"]: s["state"] for s in report["stores"]}
        assert sorted(states.values()) == ["COMPLETED", "CRASHED"], report
        crashed = next(n for n, state in states.items() if state == "CRASHED")
        other = next(n for n in names if n != crashed)
        landed_before = active_customers(db)
        with worker(env, pool, "healthy", tmp_path / "healthy.log"):
            again = cli(env, "fleet", "--fleet", str(fleet), "--json")
        assert again.returncode == 0, again.stderr[-3000:]
        landed_after = active_customers(db)
        engine = sa.create_engine(db)
        with engine.connect() as conn:
            runs = conn.execute(sa.text("SELECT source, status FROM magsync_runs")).all()
        engine.dispose()
    # the other store landed while the first's machine died, and was not disturbed by it
    assert landed_before == {other: CUSTOMERS}
    assert landed_after == {crashed: CUSTOMERS, other: CUSTOMERS}
    assert (crashed, "done") in runs and (other, "done") in runs
    started = [s for s in flow_run_states(prefect_server, crashed)
               if s != "SCHEDULED"]  # not the cron's
    assert started == ["CRASHED", "COMPLETED"]
    assert [s for s in flow_run_states(prefect_server, other)
            if s != "SCHEDULED"] == ["COMPLETED", "COMPLETED"]

