"""One real `prefect server start` on loopback, shared by the subprocess tests."""

from __future__ import annotations

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


@contextmanager
def running_server(home: Path) -> Iterator[PrefectServer]:
    """Starts a server in its own process group; stops it and checks nothing is left."""
    port = free_port()
    env = quiet_env(home)
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(api, proc, home)
        env["PREFECT_API_URL"] = api
        yield PrefectServer(api, home, env)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


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


def no_server(home: Path) -> PrefectServer:
    """The environment of an untracked run: no Prefect API (no URL, no profile), a fresh
    home; `api_url` is empty. The CLI then runs in-process without any server."""
    home.mkdir(parents=True, exist_ok=True)
    return PrefectServer("", home, quiet_env(home))
