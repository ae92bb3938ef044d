"""The `small` case: what a new user waits for, `magsync sync` on data/sample, whole process.

python -m bench.run --case small [--repeat 5] [--results bench/RESULTS.md]

Each measurement is the wall time of the `magsync` console script from spawn to exit
(interpreter start, imports, the run, exit), median of `--repeat`:
- first: `make run`'s command into a fresh output folder, no Prefect API configured
  (an untracked run; fresh PREFECT_HOME);
- second: the same command again into a copy of a finished first run's folder (an
  unchanged re-sync);
- tracked: the first run with PREFECT_API_URL pointing at a running `prefect server
  start` (started once, outside the measurement): a Prefect flow run with its task runs.
Where the time goes: `python -X importtime` of the untracked run's imports and the run
report's stage times. Targets (issue 14): first <= 5 s, second <= 4 s, tracked <= first + 3 s.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
MAGSYNC = Path(sys.executable).parent / "magsync"
TARGETS = {"first": 5.0, "second": 4.0}
TRACKED_EXTRA_S = 3.0
QUIET = {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
         "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore", "PREFECT_UI_ENABLED": "false"}


def base_env(prefect_home: Path) -> dict[str, str]:
    """The environment of a new user: no MAGSYNC_*, no Prefect API, a fresh home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MAGSYNC_"))}
    return {**env, **QUIET, "PREFECT_HOME": str(prefect_home)}


def sync(out: Path, env: dict[str, str]) -> float:
    """One `magsync sync` of the sample into `out`: its wall seconds (spawn to exit)."""
    argv = [str(MAGSYNC), "sync", "--source", "csv", "--input", str(SAMPLE), "--full",
            "--output-dir", str(out)]
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=out.parent, capture_output=True, text=True,
                          check=False, timeout=600)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"magsync exited {done.returncode}: {done.stderr[-2000:]}")
    return wall


def median_of(repeat: int, once: Callable[[int], float]) -> tuple[float, list[float]]:
    """The median of `repeat` calls of `once(i)`, and every value."""
    values = [once(i) for i in range(repeat)]
    return statistics.median(values), values


def measure(work: Path, repeat: int, api_url: str | None) -> dict[str, tuple[float, list[float]]]:
    """first, second (and tracked when `api_url`) medians in seconds."""
    env = base_env(work / "prefect-home")
    sync(work / "warm-up", env)  # page cache and .pyc files, as a warm machine has them
    seed = work / "seeded"
    sync(seed, env)
    out: dict[str, tuple[float, list[float]]] = {}
    out["first"] = median_of(repeat, lambda i: sync(work / f"first-{i}", env))

    def second(i: int) -> float:
        folder = work / f"second-{i}"
        shutil.copytree(seed, folder)
        return sync(folder, env)

    out["second"] = median_of(repeat, second)
    if api_url:
        tracked_env = {**env, "PREFECT_API_URL": api_url}
        sync(work / "tracked-warm-up", tracked_env)
        out["tracked"] = median_of(repeat, lambda i: sync(work / f"tracked-{i}", tracked_env))
    return out


def import_costs(top: int = 8) -> list[tuple[str, float]]:
    """The heaviest top-level packages an untracked first run imports (cumulative s)."""
    code = ("import magsync.flows.cli, magsync.flows.sync_steps, magsync.flows.pipeline; "
            "from magsync.transform.gx_import import import_great_expectations; "
            "import_great_expectations()")  # a first run validates rows
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=REPO,
                          capture_output=True, text=True, check=True)
    costs: dict[str, float] = {}
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and m.group(2) == " ":  # top level: one blank after the bar
            name = m.group(3).split(".")[0]
            costs[name] = costs.get(name, 0.0) + int(m.group(1)) / 1e6
    return sorted(costs.items(), key=lambda kv: -kv[1])[:top]


def stage_times(work: Path) -> dict[str, float]:
    """The stage times (s) the first measured run's report recorded."""
    (report,) = (work / "first-0" / "reports" / "source=default").iterdir()
    summary = json.loads((report / "summary.json").read_text())
    return {k: round(float(v), 2) for k, v in (summary.get("timings_s") or
                                                summary.get("stages_s") or {}).items()}


def verdicts(m: dict[str, tuple[float, list[float]]]) -> list[str]:
    """One line per target: met or not met."""
    lines = []
    for key, target in TARGETS.items():
        value = m[key][0]
        lines.append(f"{key}: {value:.2f} s (target <= {target:.0f} s: "
                     f"{'met' if value <= target else 'not met'})")
    if "tracked" in m:
        extra = m["tracked"][0] - m["first"][0]
        lines.append(f"tracked - first: {extra:+.2f} s (target <= +{TRACKED_EXTRA_S:.0f} s: "
                     f"{'met' if extra <= TRACKED_EXTRA_S else 'not met'})")
    return lines


def run(repeat: int, with_server: bool) -> tuple[dict[str, tuple[float, list[float]]],
                                                   list[str]]:
    """Measures every small case; the medians and the notes on where time goes."""
    with tempfile.TemporaryDirectory(prefix="magsync-small-") as tmp:
        work = Path(tmp)
        if with_server:
            sys.path.insert(0, str(REPO))
            from tests.prefect_server import running_server

            (work / "server-home").mkdir()
            with running_server(work / "server-home") as server:
                measured = measure(work, repeat, server.api_url)
        else:
            measured = measure(work, repeat, None)
        notes = ["imports (cumulative s, -X importtime, one process): "
                 + ", ".join(f"{n} {s:.2f}" for n, s in import_costs()),
                 f"first run's report stage times s: {json.dumps(stage_times(work))}"]
    return measured, notes


def section(measured: dict[str, tuple[float, list[float]]], notes: list[str],
            env: dict[str, str], repeat: int, load: tuple[str, str]) -> str:
    """The RESULTS.md section of a small run."""
    rows = [f"| {key} | {median:.2f} | {', '.join(f'{v:.2f}' for v in values)} |"
            for key, (median, values) in measured.items()]
    lines = [f"## {env['date']} · small (data/sample: 1,000 customers, 1,869 addresses)", "",
             f"- machine: {env['machine']}", f"- Python {env['python']}; {env['versions']}",
             f"- magsync revision: {env['revision']}",
             f"- whole-process wall time of `magsync sync --source csv --input data/sample "
             f"--full`, median of {repeat}", "",
             "| case | median s | runs s |", "|---|---:|---|", *rows, "",
             *(f"- {line}" for line in verdicts(measured)),
             f"- 1-minute load average before / after: {load[0]} / {load[1]} "
             f"(on {os.cpu_count()} cores)",
             *(f"- {note}" for note in notes), ""]
    return "\n".join(lines)
