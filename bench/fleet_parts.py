"""The fleet simulation's moving parts: the PostgreSQL target and what it saw, the process
workers and the CPU they used, the work pool's readiness."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DB_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
PG_COUNTERS = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted",
               "blks_read", "blks_hit")
TICKS = os.sysconf("SC_CLK_TCK")


@contextmanager
def scratch_database(admin_url: str = ADMIN_URL) -> Iterator[tuple[str, str]]:
    """A new, empty PostgreSQL database (its name, its URL); dropped afterwards."""
    name = f"magsync_fleet_sim_{secrets.token_hex(4)}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield name, DB_URL.format(db=name)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        engine.dispose()


def pg_counters(db: str, admin_url: str = ADMIN_URL) -> dict[str, int]:
    """pg_stat_database's cumulative counters of one database (flushed by each backend at
    its exit at the latest, so read once the writers have disconnected)."""
    engine = sa.create_engine(admin_url)
    with engine.connect() as conn:
        row = conn.execute(sa.text(f"SELECT {', '.join(PG_COUNTERS)} FROM pg_stat_database "
                                   "WHERE datname = :db"), {"db": db}).one()
    engine.dispose()
    return {name: int(cast(int, value) or 0) for name, value in zip(PG_COUNTERS, row, strict=True)}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """after - before, counter by counter."""
    return {k: after[k] - before.get(k, 0) for k in after}


class ConnectionSampler:
    """Samples how many backends are connected to a database, in a thread, until stopped."""

    def __init__(self, db: str, every_s: float = 0.25, admin_url: str = ADMIN_URL) -> None:
        self.db, self.every_s, self.peak = db, every_s, 0
        self._engine = sa.create_engine(admin_url, pool_size=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db")
        with self._engine.connect() as conn:
            while not self._stop.is_set():
                self.peak = max(self.peak, int(conn.execute(query, {"db": self.db}).scalar_one()))
                conn.rollback()  # a fresh snapshot of pg_stat_activity next time
                self._stop.wait(self.every_s)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._engine.dispose()


def proc_cpu_s(pid: int) -> float:
    """A live process's own user + system CPU seconds (/proc/PID/stat), 0 when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


class Workers:
    """`prefect worker start` processes on one pool, each in its own process group; on
    stop, the CPU each used with the flow-run processes it started and reaped (wait4)."""

    def __init__(self, bin_dir: Path, env: dict[str, str], cwd: Path, logs: Path) -> None:
        self.bin_dir, self.env, self.cwd, self.logs = bin_dir, env, cwd, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.cpu_s = 0.0

    def start(self, pool: str, count: int, runs_each: int) -> list[str]:
        """Starts `count` more workers, each running at most `runs_each` flow runs at once;
        the names of all started so far."""
        self.logs.mkdir(parents=True, exist_ok=True)
        for n in range(len(self.procs) + 1, len(self.procs) + count + 1):
            name = f"{pool}-w{n}"
            with (self.logs / f"{name}.log").open("wb") as log:
                self.procs[name] = subprocess.Popen(
                    [str(self.bin_dir / "prefect"), "worker", "start", "--pool", pool,
                     "--type", "process", "--name", name, "--limit", str(runs_each)],
                    env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True)
        return list(self.procs)

    def stop(self, grace_s: float = 20) -> float:
        """Stops every worker's group (SIGTERM, then SIGKILL); returns their CPU seconds."""
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            self.cpu_s += _reap(proc, grace_s)
        self.procs.clear()
        return self.cpu_s


def _reap(proc: subprocess.Popen[bytes], grace_s: float) -> float:
    """Waits for one worker (killing its group after grace_s); its CPU with its children's."""
    deadline = time.monotonic() + grace_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything the worker left in its group
    return float(usage.ru_utime + usage.ru_stime)


def online_workers(api_url: str, pool: str) -> set[str]:
    """The names of the pool's workers the server counts as online."""
    req = urllib.request.Request(f"{api_url}/work_pools/{pool}/workers/filter",
                                 data=b"{}", headers={"Content-Type": "application/json"},
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            found: list[dict[str, Any]] = json.loads(resp.read())
    except urllib.error.HTTPError as err:
        if err.code == 404:  # no pool yet: the first worker creates it
            return set()
        raise
    return {w["name"] for w in found if w.get("status") == "ONLINE"}


def wait_online(api_url: str, pool: str, names: list[str], timeout_s: float = 180) -> None:
    """Waits until every named worker has announced itself to the server."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if set(names) <= online_workers(api_url, pool):
            return
        time.sleep(0.5)
    raise RuntimeError(f"workers {names} not online on pool {pool} after {timeout_s:.0f} s")


def pg_version(admin_url: str = ADMIN_URL) -> str:
    """The PostgreSQL server's version."""
    engine = sa.create_engine(admin_url)
    with engine.connect() as conn:
        version = str(conn.execute(sa.text("SHOW server_version")).scalar_one())
    engine.dispose()
    return version.split(maxsplit=1)[0]
