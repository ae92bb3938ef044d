"""Killed runs and concurrent runs, with real processes and a real Prefect server."""

from __future__ import annotations

import gc
import os
import random
import shutil
import signal
import subprocess
import time
import traceback
from pathlib import Path

import pytest

from magsync.flows.crash import CRASH_ENV, PAUSE_ENV, PAUSE_FILE_ENV, POINTS
from tests.launcher import preload
from tests.prefect_server import BIN, PrefectServer, group_alive
from tests.servers import target_for
from tests.synchelp import REPORTS, dump_url
from tests.test_cli import ROOT
from tests.test_sync import export_v1, export_v2

pytestmark = pytest.mark.slow


def start(server: PrefectServer, src: Path, out: Path, url: str,
          env: dict[str, str] | None = None, *extra: str) -> subprocess.Popen[str]:
    """A `magsync sync --full` in its own process group."""
    args = [str(BIN / "magsync"), "sync", "--input", str(src), "--output-dir", str(out),
            "--target", url, "--full", "--allow-mass-delete", "--batch-size", "4", *extra]
    return subprocess.Popen(args, cwd=ROOT, text=True, env={**server.env, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    deadline = time.monotonic() + 10
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_alive(proc.pid), "a killed sync left a process behind"
    return proc.returncode, err


def run(server: PrefectServer, src: Path, out: Path, url: str, **env: str) -> tuple[int, str]:
    return finish(start(server, src, out, url, env))


def forked(src: Path, out: Path, url: str, **env: str) -> int:
    """The same sync in a forked child running the flow's steps without the Prefect API:
    the test process has every import loaded, so a run costs no start-up. Returns the
    exit code, or minus the signal that killed it."""
    preload()  # once per process: else every child imports Great Expectations again
    from magsync.flows.settings import load_settings
    from magsync.flows.sync import run_sync

    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        gc.freeze()  # the collector leaves pytest's objects alone: no copying of their pages
        code = 1
        try:
            os.setsid()
            os.environ.update(env)
            settings = load_settings(source={"input": str(src)}, output_dir=str(out),
                                     target={"url": url}, full=True, allow_mass_delete=True,
                                     batch_size=4)
            run_sync(settings, orchestrated=False)
            code = 0
        except BaseException:  # noqa: BLE001 - report anything, then leave
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert not group_alive(pid), "a killed sync left a process behind"
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("crash-inputs")
    return export_v1(folder / "v1.csv"), export_v2(folder / "v2.csv")


BASELINES: dict[str, tuple[dict[str, list[tuple]], Path]] = {}


def baseline(server: PrefectServer, tmp: Path, dialect: str,
             inputs: tuple[Path, Path]) -> tuple[dict[str, list[tuple]], Path]:
    """The uninterrupted result of v1 then v2 (computed once per dialect), and a SQLite
    store holding v1 only."""
    if dialect not in BASELINES:
        v1, v2 = inputs
        out = tmp / f"baseline-{dialect}"
        with target_for(dialect, str(out)) as url:
            assert forked(v1, out, url) == 0
            after_v1 = tmp / f"v1-{dialect}.sqlite"
            if dialect == "sqlite":
                shutil.copy(out / "magsync.sqlite", after_v1)
            assert forked(v2, out, url) == 0
            BASELINES[dialect] = (dump_url(url), after_v1)
    return BASELINES[dialect]


def converges(server: PrefectServer, tmp: Path, dialect: str, inputs: tuple[Path, Path],
              interrupt: str) -> None:
    """v1, then v2 interrupted, then v2 again, ends like v1 then v2 uninterrupted."""
    v1, v2 = inputs
    expected, after_v1 = baseline(server, tmp.parent, dialect, inputs)
    with target_for(dialect, str(tmp / "crash")) as url:
        if dialect == "sqlite":
            (tmp / "crash").mkdir(parents=True, exist_ok=True)
            shutil.copy(after_v1, tmp / "crash" / "magsync.sqlite")
        else:
            assert forked(v1, tmp / "crash", url) == 0
        if interrupt == "random":  # the real command, killed from outside
            proc = start(server, v2, tmp / "crash", url)
            time.sleep(random.Random(7).uniform(1.0, 4.0))
            os.killpg(proc.pid, signal.SIGKILL)
            finish(proc)
        else:
            code = forked(v2, tmp / "crash", url, **{CRASH_ENV: interrupt})
            assert code == -signal.SIGKILL, f"the run did not reach {interrupt}"
        assert forked(v2, tmp / "crash", url) == 0  # the rerun completes the job
        assert dump_url(url) == expected


@pytest.mark.parametrize("point", [*POINTS, "random"])
def test_sqlite_run_killed_anywhere_converges(untracked: PrefectServer, tmp_path: Path,
                                              inputs: tuple[Path, Path], point: str) -> None:
    converges(untracked, tmp_path, "sqlite", inputs, point)


@pytest.mark.parametrize("point", ["merge-transaction", "random"])
def test_postgresql_run_killed_converges(untracked: PrefectServer, tmp_path: Path,
                                         inputs: tuple[Path, Path], point: str) -> None:
    converges(untracked, tmp_path, "postgresql", inputs, point)


def test_killed_report_leaves_partial_records(untracked: PrefectServer, tmp_path: Path,
                                              inputs: tuple[Path, Path]) -> None:
    out = tmp_path / "out"
    code = forked(inputs[0], out, f"sqlite:///{out}/magsync.sqlite", **{CRASH_ENV: "report"})
    assert code == -signal.SIGKILL
    parts = list((out / REPORTS).glob("*/records.parts/part-*.parquet"))
    assert parts, "the partial report of a killed run is gone"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_lock_blocks_then_frees_after_kill(prefect_server: PrefectServer, tmp_path: Path,
                                           inputs: tuple[Path, Path], dialect: str) -> None:
    v1, _ = inputs
    marker = tmp_path / "held"
    with target_for(dialect, str(tmp_path / "out")) as url:
        holder = start(prefect_server, v1, tmp_path / "out", url,
                       {PAUSE_ENV: "first-batch", PAUSE_FILE_ENV: str(marker)})
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert holder.poll() is None, holder.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the holder never reached its first batch"
            time.sleep(0.2)
        code, err = run(prefect_server, v1, tmp_path / "out2", url)
        assert code == 3, err[-2000:]
        message = [line for line in err.splitlines() if line.startswith("magsync:")]
        assert len(message) == 1
        assert message[0].startswith("magsync: target locked by run ")
        assert f"pid {marker.read_text()}" in message[0] and "since" in message[0]
        os.killpg(holder.pid, signal.SIGKILL)
        finish(holder)
        # The lock is the target's, whoever runs: the next run (forked, no start-up) gets it.
        assert forked(v1, tmp_path / "out3", url) == 0
