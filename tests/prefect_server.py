"""One real `prefect server start` on loopback, shared by the subprocess tests."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


@dataclass
class PrefectServer:
    """A running server: its API URL and the environment that points clients at it."""

    api_url: str
    home: Path
    env: dict[str, str]


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quiet_env(home: Path) -> dict[str, str]:
    """The environment of a subprocess: offline, quiet Prefect in its own home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MAGSYNC_"))}
    env.update({"PREFECT_HOME": str(home), "DO_NOT_TRACK": "1",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
                "PREFECT_UI_ENABLED": "false"})
    return env


def _start(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`prefect server start` in its own process group, its log in `home`; once healthy."""
    port = free_port()
    # No scheduler service: no test reads the runs it would make ahead from the deployments'
    # crons (a hundred per deployment, written to the server's database: CPU for nothing).
    env = {**quiet_env(home), "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"}
    with (home / "server.log").open("wb") as log:
        proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host",
                                 "127.0.0.1", "--port", str(port)], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(api, proc, home)
    except BaseException:
        _stop(proc.pid, proc)
        raise
    return proc, api


def _stop(pgid: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Stops a server's process group: SIGTERM, then SIGKILL after 20 s; waits it out
    (`proc`, the group's leader when it is our child, is reaped on the way)."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc is not None:
            proc.poll()
        if not group_alive(pgid):
            return
        time.sleep(0.1)
    os.killpg(pgid, signal.SIGKILL)
    if proc is not None:
        proc.wait()
    while group_alive(pgid) and time.monotonic() < deadline + 10:
        time.sleep(0.1)


def _served(api: str, home: Path) -> PrefectServer:
    env = quiet_env(home)
    env["PREFECT_API_URL"] = api
    return PrefectServer(api, home, env)


@contextmanager
def running_server(home: Path) -> Iterator[PrefectServer]:
    """Starts a server in its own process group; stops it and checks nothing is left."""
    proc, api = _start(home)
    try:
        yield _served(api, home)
    finally:
        _stop(proc.pid, proc)
        assert not group_alive(proc.pid), "the Prefect server left a process behind"


SHARED_STATE = "prefect-server.json"
_STARTED: list[subprocess.Popen[bytes]] = []  # this worker's started server, kept referenced


def shared_server(root: Path) -> PrefectServer:
    """One server for every pytest-xdist worker of a session, all under `root` (the
    session's shared temporary folder): the first worker to ask starts it, the others
    find it in `root`; `stop_shared(root)` stops it when the whole session ends."""
    with (root / "prefect-server.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        state = root / SHARED_STATE
        if state.exists():
            data = json.loads(state.read_text())
            return _served(data["api_url"], Path(data["home"]))
        home = root / "prefect-server-home"
        home.mkdir()
        proc, api = _start(home)
        _STARTED.append(proc)
        state.write_text(json.dumps({"api_url": api, "home": str(home), "pgid": proc.pid}))
        return _served(api, home)


def stop_shared(root: Path) -> None:
    """Stops the shared server of `root`, if one was started, and checks nothing is left."""
    state = root / SHARED_STATE
    if state.exists():
        pgid = json.loads(state.read_text())["pgid"]
        _stop(pgid)
        assert not group_alive(pgid), "the Prefect server left a process behind"


def _wait_healthy(api: str, proc: subprocess.Popen[bytes], home: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((home / "server.log").read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("prefect server did not become healthy in 90 s")


def group_alive(pgid: int) -> bool:
    """Whether any process of a process group is still running."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def api_client(server: PrefectServer) -> Iterator[Any]:
    """A synchronous Prefect client of `server` in this process: reading what a run left on
    the server needs no interpreter of its own (a Prefect import, seconds, each time)."""
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(server.api_url) as client:
        yield client


def no_server(home: Path) -> PrefectServer:
    """The environment of an untracked run: no Prefect API (no URL, no profile), a fresh
    home; `api_url` is empty. The CLI then runs in-process without any server."""
    home.mkdir(parents=True, exist_ok=True)
    return PrefectServer("", home, quiet_env(home))
