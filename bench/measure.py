"""Run one child process and measure its wall time and the peak RSS of its process tree.

Peak RSS is the larger of two readings:
- the kernel's exact high-water mark of the largest single process in the tree, from
  `os.wait4` on the child (`ru_maxrss`: the child, or a descendant it waited for);
- the sum of VmRSS over the child and all its descendants (found through
  /proc/PID/task/TID/children), sampled every `poll_s` seconds while it runs.
A one-process case is measured exactly by the first; a tree (the Prefect case, whose
temporary API server is a subprocess) by the second, which can miss a spike shorter than
the sampling interval. Linux only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024


@dataclass
class Measured:
    """What the harness saw of one child from outside."""

    returncode: int
    wall_s: float
    peak_rss_mb: float
    largest_process_mb: float  # wait4 ru_maxrss
    tree_sampled_mb: float  # peak of the sampled sum over the tree
    log: Path
    spawned_epoch: float  # time.time() just before the spawn
    cpu_s: float = 0.0  # wait4: the child's user + system CPU seconds (and its reaped children's)


def descendants(pid: int) -> list[int]:
    """pid and every live descendant of it."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                text = Path(f"/proc/{current}/task/{tid}/children").read_text()
            except OSError:
                continue
            todo.extend(int(p) for p in text.split())
    return found


def tree_rss_bytes(pid: int) -> int:
    """Sum of the resident set sizes of pid's process tree now."""
    total = 0
    for member in descendants(pid):
        try:
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue  # it ended between listing and reading
    return total


def run_child(argv: list[str], *, env: dict[str, str], cwd: Path, log: Path,
              poll_s: float = 0.05, timeout_s: float | None = None) -> Measured:
    """Runs argv (stdout and stderr to `log`) until it exits; measures it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    peak_tree = 0
    with log.open("wb") as out:
        spawned = time.time()
        start = time.perf_counter()
        # Own session, so a timeout can end the child's whole tree (and only it).
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        while True:
            # wait4 rather than Popen.poll: it hands back the child's own rusage.
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak_tree = max(peak_tree, tree_rss_bytes(proc.pid))
            if timeout_s is not None and time.perf_counter() - start > timeout_s:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(poll_s)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped above, not by Popen
    largest = usage.ru_maxrss * 1024  # KiB on Linux
    return Measured(returncode=proc.returncode, wall_s=wall,
                    peak_rss_mb=max(largest, peak_tree) / MB, largest_process_mb=largest / MB,
                    tree_sampled_mb=peak_tree / MB, log=log, spawned_epoch=spawned,
                    cpu_s=usage.ru_utime + usage.ru_stime)
