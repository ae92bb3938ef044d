"""The fleet simulation: N emulator stores on Prefect process workers into one PostgreSQL.

python -m bench.fleet_sim [--stores 6] [--customers 2000] [--workers 1,2,4]
                          [--max-writers 4] [--runs-per-worker 1] [--out bench/out]
                          [--results bench/RESULTS.md] [--no-results]

Starts a real `prefect server start`, one emulator process per store with the latency model
(20 ms a request, 3 ms a call, 4 requests served at once), then for each worker count: a
scratch PostgreSQL database on 127.0.0.1:5432, a stores.toml, a process work pool,
`magsync deploy --pool`, that many `prefect worker start` processes (each its own process
group, one flow run at a time), and `magsync fleet`. Records wall time, per-store times,
the target's load (write windows from the run reports, writers at once, connections,
pg_stat_database deltas), client CPU and the load average; checks that every store's
customers and addresses landed; prints a table and appends it to RESULTS.md.
What each column means: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa

from bench.fleet_parts import (
    ConnectionSampler,
    Workers,
    delta,
    pg_counters,
    pg_version,
    proc_cpu_s,
    scratch_database,
    wait_online,
)
from bench.fleet_section import ConfigResult, SimOptions, overlap, section_text, text_table
from bench.measure import run_child
from bench.report import append_results, environment
from bench.run import REPO, child_env, last_line
from bench.soap_store import API_USER, KEY_ENV, EmulatorProcess

BIN = Path(sys.executable).parent
# Workers ask for runs and flow runs check their state every second (Prefect's defaults:
# 10 s), so the simulation measures the syncs rather than the polling.
POLL_ENV = {"PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_RUNNER_POLL_FREQUENCY": "1"}


@dataclass
class Fleet:
    """The running stores and where a configuration's files go."""

    opts: SimOptions
    folder: Path
    api_url: str
    env: dict[str, str]  # the workers' and CLI's: the server's, the key, fast polling
    emulators: dict[str, EmulatorProcess] = field(default_factory=dict)

    def expected(self) -> dict[str, tuple[int, int]]:
        """Per store: the customers and addresses its emulator holds."""
        return {n: (e.customers, e.addresses) for n, e in self.emulators.items()}


def fleet_toml(out: Path, target_url: str, urls: dict[str, str], max_writers: int) -> str:
    """The fleet file: every store a SOAP source on its own emulator, one target."""
    text = (f'output_dir = "{out}"\n[targets.warehouse]\nurl = "{target_url}"\n'
            f"max_writers = {max_writers}\n")
    for name, url in urls.items():
        text += (f'[[stores]]\nname = "{name}"\ntarget = "warehouse"\n[stores.source]\n'
                 f'kind = "soap"\nurl = "{url}"\napi_user = "{API_USER}"\n'
                 f'api_key_env = "{KEY_ENV}"\n')
    return text


def start_stores(opts: SimOptions, folder: Path, env: dict[str, str]
                 ) -> dict[str, EmulatorProcess]:
    """One emulator process per store, each its own data (seed + i) and latency model."""
    def start(i: int) -> EmulatorProcess:
        argv = ["--customers", str(opts.customers), "--seed", str(opts.seed + i),
                "--per-request-ms", str(opts.per_request_ms),
                "--per-call-ms", str(opts.per_call_ms),
                "--max-concurrent", str(opts.max_concurrent)]
        return EmulatorProcess(argv, env, folder / "logs" / f"store{i:02d}.log")

    with ThreadPoolExecutor(opts.stores) as pool:  # each waits for its READY line
        started = list(pool.map(start, range(1, opts.stores + 1)))
    return {f"store{i:02d}": emu for i, emu in enumerate(started, start=1)}


def _cli(env: dict[str, str], cwd: Path, *argv: str) -> str:
    """A `prefect` or `magsync` command that must succeed; its stdout."""
    done = subprocess.run([str(BIN / argv[0]), *argv[1:]], env=env, cwd=cwd, timeout=300,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:2])} exit {done.returncode}: "
                           f"{done.stderr.strip()[-800:]}")
    return done.stdout


def run_config(fleet: Fleet, workers: int) -> ConfigResult:
    """One fleet run on `workers` process workers into a fresh database; measured."""
    result = ConfigResult(workers, load_before=os.getloadavg()[0])
    out = fleet.folder / f"workers-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    (out / "logs").mkdir(parents=True)
    pool = f"fleet-sim-{secrets.token_hex(3)}-w{workers}"
    with scratch_database() as (db, url):
        if not fleet.opts.empty_target:
            create_schema(url)
        stores_toml = out / "stores.toml"
        urls = {n: e.url for n, e in fleet.emulators.items()}
        stores_toml.write_text(fleet_toml(out / "output", url, urls, fleet.opts.max_writers))
        crew = Workers(BIN, fleet.env, out, out / "logs")
        try:  # the first worker creates the pool (type process), then the others join
            for count in (1, workers - 1):
                names = crew.start(pool, count, fleet.opts.runs_per_worker)
                wait_online(fleet.api_url, pool, names)
            _cli(fleet.env, out, "magsync", "deploy", "--pool", pool, "--fleet",
                 str(stores_toml))
            pg_before, emu_before = pg_counters(db), _emulators_now(fleet)
            with ConnectionSampler(db) as sampler:
                seen = run_child([str(BIN / "magsync"), "fleet", "--fleet", str(stores_toml),
                                  "--json", "--timeout", str(fleet.opts.timeout_s)],
                                 env=fleet.env, cwd=out, log=out / "logs" / "fleet.log")
        finally:
            crew.stop()
        emu_after = _emulators_now(fleet)
        time.sleep(1)  # the writers' last statistics reach pg_stat_database
        result.pg = delta(pg_before, pg_counters(db))
        landed = landed_counts(url)
    result.load_after = os.getloadavg()[0]
    result.wall_s, result.peak_connections = seen.wall_s, sampler.peak
    result.client_cpu_s = crew.cpu_s + seen.cpu_s
    result.emulator_cpu_s = emu_after["cpu_s"] - emu_before["cpu_s"]
    result.pg["soap_requests"] = int(emu_after["requests"] - emu_before["requests"])
    report = newest_fleet_report(out / "output")
    if report is None:
        result.ok, result.note = False, f"no fleet report: {last_line(seen.log)} ({seen.log})"
        return result
    read_report(result, report)
    problem = count_problem(report, landed, fleet.expected())
    if problem:
        result.ok, result.note = False, problem
    return result


def create_schema(url: str) -> None:
    """The target's tables, as a first sync creates them: stores' first runs into an empty
    PostgreSQL database migrate it at once and can collide (docs/scaling.md)."""
    from magsync.load.sql_store import SqlTarget

    target = SqlTarget(url, source="fleet-sim")
    target.migrate()
    target.engine.dispose()


def _emulators_now(fleet: Fleet) -> dict[str, float]:
    stats = [e.stats() for e in fleet.emulators.values()]
    return {"cpu_s": sum(proc_cpu_s(e.proc.pid) for e in fleet.emulators.values()),
            "requests": sum(s["requests"] for s in stats)}


def newest_fleet_report(output_dir: Path) -> dict[str, Any] | None:
    """The newest fleet.json under the output folder, or None."""
    found = sorted((output_dir / "fleet").glob("*/fleet.json"))
    return json.loads(found[-1].read_text(encoding="utf-8")) if found else None


def read_report(result: ConfigResult, report: dict[str, Any]) -> None:
    """Per-store times, write windows, writers at once and rows, from the fleet report."""
    start, end = report["started_at"], report["finished_at"]
    if start and end:
        result.body_s = (datetime.fromisoformat(end) - datetime.fromisoformat(start)
                         ).total_seconds()
    windows = []
    for store in report["stores"]:
        if store.get("duration_s") is not None:
            result.store_s[store["store"]] = float(store["duration_s"])
        for counts in (store.get("counts") or {}).values():
            result.rows_reported += sum(counts.get(k, 0) for k in ("created", "updated",
                                                                   "deleted"))
        window = store.get("write_window")
        if window:
            begun, ended = (datetime.fromisoformat(window[k]) for k in ("start", "end"))
            windows.append((begun, ended))
            result.write_s[store["store"]] = (ended - begun).total_seconds()
    result.writers_at_once = overlap(windows)


def landed_counts(url: str) -> dict[str, tuple[int, int]]:
    """Per source: the live customers and addresses in the target."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        got: dict[str, list[int]] = {}
        for i, table in enumerate(("customers", "customer_addresses")):
            for source, n in conn.execute(sa.text(
                    f"SELECT source, count(*) FROM {table} WHERE deleted_at IS NULL "
                    "GROUP BY source")).all():
                got.setdefault(str(source), [0, 0])[i] = int(cast(int, n))
    engine.dispose()
    return {source: (c, a) for source, (c, a) in got.items()}


def count_problem(report: dict[str, Any], landed: dict[str, tuple[int, int]],
                  expected: dict[str, tuple[int, int]]) -> str:
    """Why the run does not add up (a store not synced, rows missing), or ''."""
    bad = [f"{s['store']} {s['state']}/{s.get('status')}" for s in report["stores"]
           if s["state"] != "COMPLETED" or s.get("status") != "done"]
    if bad:
        return "stores not synced: " + ", ".join(bad)
    if landed != expected:
        return f"landed (customers, addresses) {landed} against the stores' {expected}"
    return ""


def simulate(opts: SimOptions, folder: Path, api_url: str, server_env: dict[str, str]
             ) -> tuple[list[ConfigResult], dict[str, tuple[int, int]]]:
    """Every worker count in turn against the same stores; the results and the stores."""
    key = secrets.token_hex(16)
    env = {**server_env, **POLL_ENV, KEY_ENV: key}
    emu_env = {**child_env(folder / "emulator-home"), KEY_ENV: key}
    fleet = Fleet(opts, folder, api_url, env)
    try:
        fleet.emulators = start_stores(opts, folder, emu_env)
        results = [run_config(fleet, n) for n in opts.workers]
        return results, fleet.expected()
    finally:
        for emulator in fleet.emulators.values():
            emulator.close()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.fleet_sim", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stores", type=int, default=6)
    p.add_argument("--customers", type=int, default=2_000, help="per store")
    p.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    p.add_argument("--runs-per-worker", type=int, default=1, help="each worker's --limit")
    p.add_argument("--max-writers", type=int, default=4, help="the target's limit")
    p.add_argument("--per-request-ms", type=float, default=20.0)
    p.add_argument("--per-call-ms", type=float, default=3.0)
    p.add_argument("--max-concurrent", type=int, default=4, help="a store's slots; 0: none")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--timeout", type=float, default=1800, help="a fleet run's limit (s)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    p.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    p.add_argument("--no-results", action="store_true", help="print only")
    p.add_argument("--empty-target", action="store_true",
                   help="leave the schema to the stores' first runs (default: created first)")
    return p


def options(args: argparse.Namespace) -> SimOptions:
    """The simulation's options from the command line."""
    return SimOptions(stores=args.stores, customers=args.customers,
                      workers=[int(w) for w in args.workers.split(",")],
                      runs_per_worker=args.runs_per_worker, max_writers=args.max_writers,
                      per_request_ms=args.per_request_ms, per_call_ms=args.per_call_ms,
                      max_concurrent=args.max_concurrent, seed=args.seed,
                      timeout_s=args.timeout, empty_target=args.empty_target)


def main(argv: list[str] | None = None, server: Any = None) -> int:
    """Starts a Prefect server (or uses `server`), simulates, prints, appends; 1 if a
    configuration failed or its counts did not add up."""
    from tests.prefect_server import running_server

    args = _parser().parse_args(argv)
    opts = options(args)
    folder = (args.out / f"fleet-{opts.stores}x{opts.customers}").resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    load_start = os.getloadavg()[0]
    if server is None:
        (folder / "server-home").mkdir()
        with running_server(folder / "server-home") as started:
            results, stores = simulate(opts, folder, started.api_url, started.env)
    else:
        results, stores = simulate(opts, folder, server.api_url, server.env)
    print(f"\nfleet: {opts.stores} stores x {opts.customers:,} customers\n\n"
          f"{text_table(results)}\n")
    if not all(r.ok for r in results):
        print("a configuration failed: RESULTS not written", file=sys.stderr)
        return 1
    section = section_text(opts, results, stores, load_start, args.results,
                           environment(REPO), pg_version())
    print(section)
    if not args.no_results:
        append_results(args.results, section)
        print(f"appended to {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
