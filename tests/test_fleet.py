"""A fleet end to end on real parts: `prefect server start`, a process work pool with two
`prefect worker start` processes, three emulator stores (one answering HTTP 500s and
holding a bad record, one slow), one PostgreSQL target, exports to moto's S3 server on
loopback (each worker and the fleet command keep their own local working copy, as on
separate machines); `magsync deploy`, then `magsync fleet`."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from magsync.magento.emulator import FaultInjection, Latency, generated_store, run_emulator
from tests.prefect_server import BIN, PrefectServer
from tests.s3server import CREDENTIALS, duckdb_rows, moto_s3, s3, storage_options
from tests.servers import fresh_database

ROOT = Path(__file__).resolve().parent.parent
KEY = "fleet-test-key"
SIZES = {"alpha": 12, "faulty": 25, "slow": 8}
# The target's limit. The stores' runs wait for each other after their first batch and
# each write phase is held 3 s: without the limit, the writes overlap.
MAX_WRITERS = 1
HELD_S = "3"
BUCKET = "fleet-exports"


def fleet_toml(out: str, target: str, urls: dict[str, str], stores: list[str]) -> str:
    """The fleet file of the test's stores."""
    text = (f'output_dir = "{out}"\n[targets.warehouse]\nurl = "{target}"\n'
            f"max_writers = {MAX_WRITERS}\n")
    for name in stores:
        text += (f'[[stores]]\nname = "{name}"\ntarget = "warehouse"\n'
                 f'schedule = "30 2 * * *"\nfull_schedule = "30 3 * * 0"\n'
                 f'[stores.source]\nkind = "soap"\nurl = "{urls[name]}"\napi_user = "etl"\n'
                 f'api_key_env = "{name.upper()}_MAGENTO_KEY"\nretries = 8\n'
                 f"backoff_base_s = 0.01\n")
    return text


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`magsync ARGS` in a subprocess."""
    return subprocess.run([str(BIN / "magsync"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)


@contextmanager
def worker(env: dict[str, str], pool: str, name: str, log: Path,
           limit: int | None = None) -> Iterator[int]:
    """`prefect worker start` in its own process group (at most `limit` flow runs at
    once); killed (group) on exit."""
    cap = ["--limit", str(limit)] if limit else []
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", pool,
                                 "--type", "process", "--name", name, *cap], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc.pid
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def active_customers(db: str) -> dict[str, int]:
    """Active customers per store (`source`) in the target."""
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text(
            "SELECT source, count(*) FROM customers WHERE deleted_at IS NULL "
            "GROUP BY source")).all())
    engine.dispose()
    return rows


def max_overlap(windows: list[dict[str, str]]) -> int:
    """The most write windows open at one instant."""
    edges = sorted([(datetime.fromisoformat(w["start"]), 1) for w in windows]
                   + [(datetime.fromisoformat(w["end"]), -1) for w in windows],
                   key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


@pytest.mark.slow
def test_fleet_on_a_work_pool(prefect_server: PrefectServer, tmp_path: Path) -> None:
    faulty = generated_store(SIZES["faulty"], seed=3)
    # One customer of 25 faulted (4%; its addresses fault with it): under max_fault_ratio
    # (5%), so the store lands its other records and reports the fault. A store that
    # fails outright is tests/test_fleet_crash.py's (the fleet's exit code 1).
    broken = min(faulty.customer_ids(), key=lambda cid: len(faulty.addresses_of(cid)))
    faulty.update_customer(broken, {"email": "broken-email"})
    pool = f"fleet-{secrets.token_hex(3)}"
    out = f"s3://{BUCKET}/fleet"
    env = {**prefect_server.env, **CREDENTIALS, "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PREFECT_RUNNER_POLL_FREQUENCY": "1", "MAGSYNC_TEST_PAUSE_AT": "after-commit",
           "MAGSYNC_TEST_PAUSE_S": HELD_S,  # and all three stores stage together:
           "MAGSYNC_TEST_BARRIER": f"first-batch:{len(SIZES)}:{tmp_path / 'barrier'}",
           **{f"{n.upper()}_MAGENTO_KEY": KEY for n in SIZES}}
    with ExitStack() as stack:
        db = stack.enter_context(fresh_database("postgresql"))
        endpoint = stack.enter_context(moto_s3(BUCKET))
        env["AWS_ENDPOINT_URL"] = endpoint  # the endpoint as a worker's environment gives it
        env["MAGSYNC_REMOTE__LOCAL_DIR"] = str(tmp_path / "cli-copy")
        emus = {
            "alpha": stack.enter_context(run_emulator(
                generated_store(SIZES["alpha"], seed=1), users={"etl": KEY})),
            "faulty": stack.enter_context(run_emulator(
                faulty, users={"etl": KEY}, faults=FaultInjection(seed=7, http500_rate=0.15))),
            "slow": stack.enter_context(run_emulator(
                generated_store(SIZES["slow"], seed=2), users={"etl": KEY},
                latency=Latency(per_request=0.1, max_concurrent=1))),
        }
        urls = {name: emu.url for name, emu in emus.items()}
        fleet = tmp_path / "stores.toml"
        fleet.write_text(fleet_toml(out, db, urls, list(SIZES)))
        created = subprocess.run([str(BIN / "prefect"), "work-pool", "create", pool, "--type",
                                  "process"], env=env, capture_output=True, text=True,
                                 timeout=120, check=False)
        assert created.returncode == 0, created.stderr[-2000:]
        deployed = cli(env, "deploy", "--pool", pool, "--fleet", str(fleet), "--json")
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        done = json.loads(deployed.stdout.splitlines()[-1])
        assert sorted(done["deployed"]) == sorted(
            [f"magsync-sync/{n}{s}" for n in SIZES for s in ("", "-full")]
            + ["magsync-fleet/fleet"])
        assert f"magsync-target-warehouse={MAX_WRITERS}" in done["limits"]
        for n in (1, 2):
            machine = {**env, "MAGSYNC_REMOTE__LOCAL_DIR": str(tmp_path / f"w{n}-copy")}
            stack.enter_context(worker(machine, pool, f"w{n}", tmp_path / f"worker{n}.log"))
        ran = cli(env, "fleet", "--fleet", str(fleet), "--json", "--timeout", "400")
        report = json.loads(ran.stdout.splitlines()[-1]) if ran.stdout else {}
        assert ran.returncode == 0, (ran.stderr[-3000:], report)  # no store failed
        http500 = emus["faulty"].stats.http500
        pruned = cli(env, "deploy", "--pool", pool, "--prune", "--json", "--fleet",
                     str(_without_slow(fleet, out, db, urls)))
        stores = {s["store"]: s for s in report["stores"]}
        landed = active_customers(db)
        exported = {name: pd.read_parquet(f"{out}/exports/source={name}/customers.parquet",
                                          storage_options=storage_options(endpoint))
                    for name in SIZES}
        by_duckdb = duckdb_rows(endpoint, out, "customers")
        bucket = s3(endpoint)
        faulty_reports = bucket.find(f"{BUCKET}/fleet/reports/source=faulty")
        fleet_json = json.loads(bucket.cat_file(f"{report['report_dir']}/fleet.json"))
    assert report["failed"] == [] and fleet_json["failed"] == []
    # all three stores land in the one target, told apart by `source`; the faulty store
    # lands all but its bad customer, whom its report names
    expected = {name: size - (name == "faulty") for name, size in SIZES.items()}
    for name in SIZES:
        assert stores[name]["state"] == "COMPLETED" and stores[name]["status"] == "done"
        assert stores[name]["counts"]["customer"]["created"] == expected[name]
        assert len(exported[name]) == expected[name]
    assert landed == expected and by_duckdb == expected
    bad = stores["faulty"]
    assert bad["counts"]["customer"]["faulted"] == 1, bad
    assert ("email_syntax", "customer") in {(f["rule"], f["entity"]) for f in bad["faults"]}
    assert http500 > 0  # answered by retries: the others' runs and its own unaffected
    assert any(f.endswith("/summary.json") for f in faulty_reports), faulty_reports
    windows = [s["write_window"] for s in stores.values() if s["write_window"]]
    assert len(windows) == len(SIZES) and max_overlap(windows) <= MAX_WRITERS
    assert report["report_dir"].startswith(f"{out}/fleet/")
    assert pruned.returncode == 0, pruned.stderr[-3000:]
    assert json.loads(pruned.stdout.splitlines()[-1])["removed"] == [
        "magsync-sync/slow", "magsync-sync/slow-full"]


def _without_slow(fleet: Path, out: str, db: str, urls: dict[str, str]) -> Path:
    smaller = fleet.with_name("stores-2.toml")
    smaller.write_text(fleet_toml(out, db, urls, ["alpha", "faulty"]))
    return smaller


def test_deploy_refuses_a_sqlite_target_on_a_pool_of_many_runs(prefect_harness: Path,
                                                                tmp_path: Path) -> None:
    """A SQLite target's run lock is a file on one machine: its fleet deploys only on a
    pool that runs one flow at a time."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate

    from magsync.flows.fleet_deploy import check_pool, deploy
    from magsync.flows.fleet_file import load_fleet
    from magsync.transform.errors import ConfigError

    fleet = tmp_path / "stores.toml"
    fleet.write_text(fleet_toml("out", f"sqlite:///{tmp_path}/t.sqlite", {"a": "http://a/"},
                                ["a"]))
    pool = f"sqlite-{secrets.token_hex(3)}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        with pytest.raises(ConfigError, match=f"work pool '{pool}' allows unlimited"):
            deploy(load_fleet(fleet), pool, prune=False)
        assert all(d.work_pool_name != pool for d in client.read_deployments())
        client.update_work_pool(pool, WorkPoolUpdate(concurrency_limit=1))
        check_pool(client, load_fleet(fleet), pool)  # one at a time: accepted
