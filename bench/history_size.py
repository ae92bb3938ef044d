"""What the change history weighs after many re-syncs of a 1%-changed input.

python -m bench.history_size --scale 1m [--runs 30] [--out bench/out] [--results FILE]

From the bench's generated inputs (`bench/out/<scale>/customers.csv` and
`customers_changed.csv`, generated as `bench.run` does when missing), a first load, then
`--runs` re-syncs alternating the two inputs (each is a ~1% change of the other: edits,
deletes and additions both ways), all in this process through the path
`bench/magsync_case.py` measures (flows/sync.py::run_sync, untracked, full mode, default
settings, history on). After the first load and after every 10th re-sync it measures
`exports/.../history/<table>` per entity: bytes on disk, files, versions (the Parquet rows),
bytes per version. Prints the table and appends it to RESULTS.md. Sizes do not depend on
the machine's load; the CPU seconds beside them do a little.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import generate
from bench.report import append_results, environment
from bench.run import BASE, CHANGED, PREFECT_ENV, REPO, load_average, prepare_inputs, scale_label

EVERY = 10  # re-syncs between two measurements


@dataclass(frozen=True)
class Size:
    """One entity's history folder at one point."""

    entity: str
    bytes: int
    files: int
    versions: int

    @property
    def per_version(self) -> float:
        """Bytes on disk per version row."""
        return self.bytes / self.versions if self.versions else 0.0


def measure(exports: Path) -> list[Size]:
    """The size of every entity's history under `exports` (published files only)."""
    import pyarrow.parquet as pq

    from magsync.load.history import history_files
    from magsync.transform.schema import LOAD_ORDER

    sizes = []
    for entity in LOAD_ORDER:
        files = history_files(exports, entity)
        sizes.append(Size(entity.name, sum(f.stat().st_size for f in files), len(files),
                          sum(pq.read_metadata(f).num_rows for f in files)))
    return sizes


def sync_once(csv: Path, workdir: Path) -> tuple[dict[str, Any], float]:
    """One full sync of `csv` into the store under `workdir`, as bench/magsync_case.py runs
    it; returns the report and the CPU seconds it took."""
    from bench.magsync_case import run_steps

    cpu = time.process_time()
    report = run_steps({"source": {"kind": "csv", "input": str(csv.resolve())},
                        "output_dir": str(workdir.resolve()), "full": True})
    if report.get("status") != "done":
        raise SystemExit(f"sync ended {report.get('status')}: {report.get('error')}")
    return report, time.process_time() - cpu


def history_root(workdir: Path) -> Path:
    """The exports folder of the bench's default source under `workdir`."""
    from magsync.flows.settings import load_settings
    from magsync.load.layout import exports_dir

    settings = load_settings(output_dir=str(workdir.resolve()))
    return exports_dir(settings.output_dir, settings.source.name)


def run(folder: Path, runs: int) -> tuple[list[tuple[str, list[Size], float]], dict[str, Any]]:
    """The first load and `runs` re-syncs; the sizes after the first and every 10th."""
    import shutil

    workdir = folder / "runs" / "history_size"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    os.chdir(workdir)  # no magsync.toml of the caller's is picked up
    exports = history_root(workdir)
    points: list[tuple[str, list[Size], float]] = []
    report, cpu = sync_once(folder / BASE, workdir)
    total_cpu = cpu
    points.append(("after the first load", measure(exports), total_cpu))
    last: dict[str, Any] = report
    for n in range(1, runs + 1):
        last, cpu = sync_once(folder / (CHANGED if n % 2 else BASE), workdir)
        total_cpu += cpu
        print(f"re-sync {n}/{runs}: {cpu:.1f} CPU s, counts {last.get('counts')}",
              file=sys.stderr, flush=True)
        if n % EVERY == 0 or n == runs:
            points.append((f"after {n} re-syncs", measure(exports), total_cpu))
            print(table(points[-1:]), file=sys.stderr, flush=True)  # a partial series too
    return points, last


def table(points: list[tuple[str, list[Size], float]]) -> str:
    """The markdown table: one row per point and entity, then the point's total."""
    lines = ["| point | entity | bytes | MB | files | versions | bytes/version |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for label, sizes, _ in points:
        total = Size("total", sum(s.bytes for s in sizes), sum(s.files for s in sizes),
                     sum(s.versions for s in sizes))
        for s in [*sizes, total]:
            name = f"**{s.entity}**" if s.entity == "total" else s.entity
            lines.append(f"| {label} | {name} | {s.bytes:,} | {s.bytes / 1e6:.1f} | "
                         f"{s.files} | {s.versions:,} | {s.per_version:.1f} |")
    return "\n".join(lines)


def section(label: str, n: int, runs: int, points: list[tuple[str, list[Size], float]],
            last: dict[str, Any], loads: tuple[str, str]) -> str:
    """The RESULTS.md section."""
    env = environment(REPO)
    seed_total = sum(s.bytes for s in points[0][1])
    end_total = sum(s.bytes for s in points[-1][1])
    return "\n".join([
        f"## {env['date']} · history size · {runs} re-syncs · scale {label} ({n:,} "
        "customers)",
        "",
        f"- `python -m bench.history_size --scale {label} --runs {runs}`: a first load of "
        f"{BASE}, then {runs} full re-syncs alternating {CHANGED} and {BASE} (each a ~1% "
        "change of the other), in one process through flows/sync.py::run_sync "
        "(untracked, default settings, history on, no compaction)",
        f"- machine: {env['machine']}; magsync revision: {env['revision']}",
        f"- 1-minute load average before / after: {loads[0]} / {loads[1]}",
        "",
        table(points),
        "",
        f"- history grew from {seed_total / 1e6:.1f} MB (first load: every record "
        f"`created`) to {end_total / 1e6:.1f} MB; "
        f"{(end_total - seed_total) / runs / 1e6:.2f} MB per re-sync on average",
        f"- CPU s of the whole series (process time, first load included): "
        f"{points[-1][2]:.0f}",
        f"- last re-sync's counts: {last.get('counts')}",
        "",
    ])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.history_size", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=generate.parse_scale, required=True)
    parser.add_argument("--runs", type=int, default=30, help="re-syncs after the first load")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    parser.add_argument("--seed", type=int, default=42)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the series, prints the table, appends it to RESULTS."""
    args = _parser().parse_args(argv)
    label = scale_label(args.scale)
    folder = (args.out / label).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    prepare_inputs(args.scale, folder, args.seed)
    for name in [k for k in os.environ if k.startswith("MAGSYNC_")]:
        del os.environ[name]  # default settings, as the bench's children run
    os.environ.update(PREFECT_ENV)
    os.environ.setdefault("PREFECT_HOME", str(args.out.resolve() / "prefect-home"))
    results = args.results.resolve()
    load_before = load_average()
    points, last = run(folder, args.runs)
    text = section(label, args.scale, args.runs, points, last, (load_before, load_average()))
    print(text)
    append_results(results, text)
    print(f"appended to {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
