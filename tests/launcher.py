"""`magsync` runs in forked children of one process that imported the CLI once.

A `magsync` process spends most of its time importing (Great Expectations, pandas,
SQLAlchemy: 4-7 s here). Where a test needs a run's exit code and output but not the
console script's start-up, it runs `magsync ARGS` through a launcher: one process imports
the CLI (and what a run imports lazily) once, then forks a fresh child per run that does
what the console script does, `sys.exit(flows.cli.main())`, with its own stdout, stderr
and exit code (an uncaught exception prints its Traceback as it would from the shell).
The launcher's environment is fixed when it starts (untracked: no Prefect API), and it
never imports Prefect, as an untracked `magsync` does not.
"""

from __future__ import annotations

import gc
import json
import os
import pty
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.prefect_server import BIN, PrefectServer, group_alive

ROOT = Path(__file__).resolve().parent.parent


def preload() -> None:
    """Imports what every run would import again in its forked child: Great Expectations
    (imported lazily at a run's first validation, seconds each time), the parquet writer and
    the server dialects' drivers. Only imports: each child builds its own GX context."""
    import psycopg  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import pymysql  # noqa: F401
    import sqlalchemy.dialects.mysql
    import sqlalchemy.dialects.postgresql  # noqa: F401

    from magsync.transform.gx_import import import_great_expectations

    import_great_expectations()  # as a run imports it, before any GX submodule
    from great_expectations.execution_engine import PandasExecutionEngine  # noqa: F401


def serve() -> None:
    """The launcher's loop: imports the CLI once, then per JSON line on stdin (argv and
    two file paths) forks a child that runs it and prints the child's exit code."""
    from magsync.flows import cli, sync_steps  # noqa: F401  (the costly imports, once)

    preload()
    # What is loaded now stays out of the collector's reach: without this, each child's
    # exit (collection, then teardown) touches every imported object, copying the pages
    # fork shared, and a run's exit costs seconds instead of a fraction of one.
    gc.freeze()
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: a `magsync` process from here on
            signal.alarm(300)
            os.environ.update(job.get("env", {}))
            for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
                target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(target, fd)
                os.close(target)
            sys.argv = ["magsync", *job["argv"]]
            sys.exit(cli.script())
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


class Launcher:
    """The parent side of `serve`: runs `magsync ARGS` in a forked child."""

    def __init__(self, server: PrefectServer) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "python"), "-c", "from tests.launcher import serve; serve()"],
            cwd=ROOT, env=server.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, start_new_session=True)

    def run(self, *args: str, logs: Path, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """One `magsync` run, `env` added to the launcher's environment; its output goes
        through files under `logs`."""
        out, err = logs / "stdout.txt", logs / "stderr.txt"
        code = self._run(list(args), str(out), str(err), env or {})
        return subprocess.CompletedProcess(["magsync", *args], code,
                                           out.read_text(errors="replace"),
                                           err.read_text(errors="replace"))

    def run_on_terminal(self, *args: str) -> tuple[int, str]:
        """One `magsync` run with its stdout and stderr on a pseudo-terminal (isatty, a
        width), as from an interactive shell; its exit code and all it wrote there."""
        master, slave = pty.openpty()
        chunks: list[bytes] = []
        reader = threading.Thread(target=_drain, args=(master, chunks), daemon=True)
        reader.start()  # a full terminal buffer would block the run
        try:
            code = self._run(list(args), os.ttyname(slave), os.ttyname(slave), {})
        finally:
            os.close(slave)  # the child's copies are closed: the reader sees the end
            reader.join(timeout=60)
            os.close(master)
        return code, b"".join(chunks).decode(errors="replace")

    def _run(self, argv: list[str], stdout: str, stderr: str, env: dict[str, str]) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        job = {"argv": argv, "stdout": stdout, "stderr": stderr, "env": env}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        code = self.proc.stdout.readline()
        assert code, "the launcher died"
        return int(code)

    def close(self) -> None:
        """Ends the launcher and checks it left no process behind."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        assert not group_alive(self.proc.pid), "a run left a process behind"


def _drain(master: int, chunks: list[bytes]) -> None:
    """Reads a pseudo-terminal until every writer has closed it."""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: no writer left
            return
        if not data:
            return
        chunks.append(data)
