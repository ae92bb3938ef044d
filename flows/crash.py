"""Crash points for the crash-safety tests: the process kills itself where told.

`MAGSYNC_TEST_CRASH_AT=<point>` makes the run SIGKILL itself on reaching that point, so
the tests can prove that a run dying there leaves the target consistent and that the
next run completes the job. Unset (always, outside those tests), it does nothing.
"""

from __future__ import annotations

import os
import signal
import time

CRASH_ENV = "MAGSYNC_TEST_CRASH_AT"
POINTS = ("delete-detection", "merge-transaction", "after-commit", "export-before-rename",
          "report")


PAUSE_ENV = "MAGSYNC_TEST_PAUSE_AT"
PAUSE_FILE_ENV = "MAGSYNC_TEST_PAUSE_FILE"
PAUSE_SECONDS_ENV = "MAGSYNC_TEST_PAUSE_S"  # how long (default 600: until killed)


def pause_point(name: str) -> None:
    """Holds the run here (touching a marker file) when the lock test asked for it."""
    if os.environ.get(PAUSE_ENV) != name:
        return
    marker = os.environ.get(PAUSE_FILE_ENV)
    if marker:
        with open(marker, "w") as fh:
            fh.write(str(os.getpid()))
    time.sleep(float(os.environ.get(PAUSE_SECONDS_ENV) or 600))


BARRIER_ENV = "MAGSYNC_TEST_BARRIER"  # "<point>:<runs>:<folder>"


def barrier_point(name: str) -> None:
    """Holds the run here until `runs` runs (processes) reached this point, for at most
    two minutes: the fleet test starts its stores' writes together."""
    spec = os.environ.get(BARRIER_ENV, "")
    point, _, rest = spec.partition(":")
    if point != name:
        return
    runs, _, folder = rest.partition(":")
    os.makedirs(folder, exist_ok=True)
    open(os.path.join(folder, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 120
    while len(os.listdir(folder)) < int(runs) and time.monotonic() < deadline:
        time.sleep(0.1)


def crash_point(name: str) -> None:
    """Dies here, like `kill -9`, when the crash test asked for this point."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def checkpoint(name: str) -> None:
    """The hook the steps below flows/ call at named points: a pause or a crash when a
    test asked for this point, nothing otherwise."""
    pause_point(name)
    barrier_point(name)
    crash_point(name)
