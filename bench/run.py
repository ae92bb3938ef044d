"""The benchmark harness: magsync beside its floors and the naive route, one table.

python -m bench.run --scale 100k [--out bench/out] [--results bench/RESULTS.md]
                    [--skip-naive] [--skip-floor] [--skip-prefect]
python -m bench.run --case small [--repeat 5] [--skip-prefect]   (bench/small.py)

Generates the Magento export for the scale once (reused while its manifest matches), runs
every case in its own child process, one at a time, prints the table and the ratios and
appends them to RESULTS.md. What each case measures: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import generate
from bench.measure import run_child
from bench.report import (
    CaseResult,
    append_results,
    environment,
    ratio_lines,
    results_section,
    text_table,
)

REPO = Path(__file__).resolve().parent.parent
CASES = {
    "first": "(a) magsync first load",
    "prefect": "(a') magsync first load, Prefect flow",
    "changed": "(b) magsync re-sync, 1% changed",
    "changed_no_history": "(b0) magsync re-sync, 1% changed, history off",
    "unchanged": "(c) magsync re-sync, unchanged",
    "floor_load": "(d) floor first load",
    "floor_resync": "(d) floor re-sync, 1% changed",
    "naive": "(e) naive pandas first load",
}
BASE, CHANGED = "customers.csv", "customers_changed.csv"
# Offline and quiet, as the CLI runs it (STACK.md); read when prefect is imported.
PREFECT_ENV = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_UI_ENABLED": "false",
}


@dataclass
class Bench:
    """One harness run: where things go and how children run."""

    folder: Path  # <out>/<scale>
    env: dict[str, str]
    timeout_s: float | None

    def workdir(self, key: str, fresh: bool = True) -> Path:
        """The case's own folder under runs/, emptied unless `fresh` is False."""
        path = self.folder / "runs" / key
        if fresh and path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def measure(self, key: str, module: str, csv: Path, workdir: Path,
                *extra: str) -> CaseResult:
        """Runs one case script in its own process and reads back its result."""
        result = self.folder / "runs" / f"{key}.json"
        result.unlink(missing_ok=True)
        argv = [sys.executable, "-m", module, "--input", str(csv), "--workdir", str(workdir),
                "--result", str(result), *extra]
        seen = run_child(argv, env=self.env, cwd=workdir, log=self.folder / "logs" / f"{key}.log",
                         timeout_s=self.timeout_s)
        if seen.returncode != 0 or not result.exists():
            note = f"exit {seen.returncode}: {last_line(seen.log)} (log {seen.log})"
            return CaseResult(key, CASES.get(key, key), status="failed", note=note)
        data = json.loads(result.read_text(encoding="utf-8"))
        prefect_s = None
        if data.get("prefect_s") is not None:
            # Everything but start-up, imports and the body: Prefect's server start, task
            # orchestration and the server's shutdown when the child exits.
            startup = max(0.0, data["started_epoch"] - seen.spawned_epoch)
            prefect_s = seen.wall_s - startup - data["imports_s"] - data["body_s"]
        return CaseResult(
            key, CASES.get(key, key), wall_s=seen.wall_s, body_s=data["body_s"],
            imports_s=data["imports_s"], prefect_s=prefect_s, rows=data["rows"],
            peak_rss_mb=seen.peak_rss_mb,
            extra={**data, "largest_process_mb": seen.largest_process_mb,
                   "tree_sampled_mb": seen.tree_sampled_mb})


def last_line(log: Path) -> str:
    """The last non-empty line of a log, for a failure note."""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip()[:200] if lines else "no output"


def scale_label(n: int) -> str:
    """100000 -> '100k', 1000000 -> '1m', 300 -> '300'."""
    if n and n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def prepare_inputs(n: int, folder: Path, seed: int) -> bool:
    """Writes customers.csv and customers_changed.csv unless the manifest says they are
    there for this scale and seed with the recorded sizes; True when (re)generated."""
    manifest = folder / "manifest.json"
    want = {"customers": n, "seed": seed}
    if manifest.exists():
        have = json.loads(manifest.read_text(encoding="utf-8"))
        sizes = have.pop("sizes", {})
        if have == want and all((folder / name).exists()
                                and (folder / name).stat().st_size == size
                                for name, size in sizes.items()) and len(sizes) == 2:
            return False
    manifest.unlink(missing_ok=True)
    generate.main(["--scale", str(n), "--out", str(folder), "--seed", str(seed), "--changed"])
    sizes = {name: (folder / name).stat().st_size for name in (BASE, CHANGED)}
    manifest.write_text(json.dumps({**want, "sizes": sizes}), encoding="utf-8")
    return True


def child_env(prefect_home: Path) -> dict[str, str]:
    """The children's environment: no MAGSYNC_* settings, Prefect offline, bench importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGSYNC_")}
    env.update(PREFECT_ENV)
    env["PREFECT_HOME"] = str(prefect_home)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def copy_store(src: Path, dst: Path) -> None:
    """Copies the SQLite store (and any WAL or journal beside it) and the exports, as a
    re-sync finds them in its output folder."""
    for path in src.glob("magsync.sqlite*"):
        shutil.copy2(path, dst / path.name)
    if (src / "exports").is_dir():
        shutil.copytree(src / "exports", dst / "exports")


# Re-syncs on a copy of (a)'s store: (b0) is (b) with `history = false`, measured right
# after it on the same input and the same copy, so (b)/(b0) is what the history costs.
RESYNCS = (("changed", CHANGED, ()), ("changed_no_history", CHANGED, ("--history", "off")),
           ("unchanged", BASE, ()))


def run_magsync(bench: Bench, skip_prefect: bool) -> list[CaseResult]:
    """Cases (a), (a') and, on a copy of (a)'s store, (b), (b0) and (c)."""
    folder = bench.folder
    first_dir = bench.workdir("first")
    results = [bench.measure("first", "bench.magsync_case", folder / BASE, first_dir)]
    for key, csv, extra in RESYNCS:
        if not results[0].ok:
            results.append(CaseResult(key, CASES[key], "skipped", "the first load failed"))
            continue
        workdir = bench.workdir(key)
        copy_store(first_dir, workdir)
        results.append(bench.measure(key, "bench.magsync_case", folder / csv, workdir,
                                     *extra))
    if skip_prefect:
        results.append(CaseResult("prefect", CASES["prefect"], "skipped", "--skip-prefect"))
    else:
        results.append(bench.measure("prefect", "bench.magsync_case", folder / BASE,
                                     bench.workdir("prefect"), "--mode", "prefect"))
    return results


def run_floors(bench: Bench, regenerated: bool) -> list[CaseResult]:
    """The two floors; the re-sync floor's store is built once, unmeasured, per input."""
    folder = bench.folder
    results = [bench.measure("floor_load", "bench.floor_load", folder / BASE,
                             bench.workdir("floor_load"))]
    base = folder / "floor_base"
    if regenerated or not (base / "floor.sqlite").exists():
        setup = bench.measure("floor_setup", "bench.floor_resync", folder / BASE,
                              bench.workdir("floor_setup"))
        if not setup.ok:
            return [*results, CaseResult("floor_resync", CASES["floor_resync"], "failed",
                                         f"building its store: {setup.note}")]
        shutil.rmtree(base, ignore_errors=True)
        (folder / "runs" / "floor_setup").rename(base)
    workdir = bench.workdir("floor_resync")
    shutil.copy2(base / "floor.sqlite", workdir / "floor.sqlite")
    results.append(bench.measure("floor_resync", "bench.floor_resync", folder / CHANGED,
                                 workdir))
    return results


def load_average() -> str:
    """The 1-minute load average (other work on the machine skews every time)."""
    return f"{os.getloadavg()[0]:.2f}"


def notes(results: dict[str, CaseResult], prefect_home_fresh: bool,
          load_before: str) -> list[str]:
    """Context for the results entry: how things were measured, cross-checks."""
    out = [f"1-minute load average before / after the cases: {load_before} / "
           f"{load_average()} (on {os.cpu_count()} cores)",
           "peak RSS: the larger of the kernel's high-water mark of the largest process "
           "(wait4) and the sampled (20 Hz) sum over the child's process tree"]
    first = results.get("first")
    if first and first.ok:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in first.extra.get("stages_s", {}).items())
        out.append(f"magsync first-load stage times s (nested: stage includes normalise "
                   f"and diff): {stages}")
    prefect = results.get("prefect")
    if prefect and prefect.ok:
        where = (f"PREFECT_API_URL={os.environ['PREFECT_API_URL']}"
                 if os.environ.get("PREFECT_API_URL") else
                 "its temporary server" + (" on a fresh PREFECT_HOME" if prefect_home_fresh
                                           else " on a reused PREFECT_HOME"))
        in_call = prefect.extra.get("prefect_s") or 0.0
        out.append(f"(a') Prefect s = wall minus start-up, imports and the report's flow body "
                   f"(open_run to finish): server start, task runs, server stop at exit "
                   f"({in_call:.1f} s of it inside the sync_flow call); runs against {where}")
    changed, floor = results.get("changed"), results.get("floor_resync")
    if changed and changed.ok:
        out.append(f"(b) magsync counts: {json.dumps(changed.extra.get('counts'))}")
        stages = changed.extra.get("stages_s", {})
        if "merge" in stages and "export" in stages:
            out.append(f"(b) merge / export s (history written in both): "
                       f"{stages['merge']:.2f} / {stages['export']:.2f}")
    plain = results.get("changed_no_history")
    if plain and plain.ok:
        stages = plain.extra.get("stages_s", {})
        if "merge" in stages and "export" in stages:
            out.append(f"(b0) merge / export s: {stages['merge']:.2f} / "
                       f"{stages['export']:.2f}")
    if floor and floor.ok:
        out.append(f"(d) re-sync floor counts: {json.dumps(floor.extra.get('counts'))}")
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=generate.parse_scale,
                        help="customers: 100k, 1m or a count (required but for --case small)")
    parser.add_argument("--case", choices=["scale", "small"], default="scale",
                        help="small: the sample's whole-process times (bench/small.py)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per small case (median)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md",
                        help="markdown file the results are appended to")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument("--skip-prefect", action="store_true")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds after which a case is killed")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs every case, prints the table, appends RESULTS; 1 if a case failed."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.case == "small":
        return run_small(args)
    if args.scale is None:
        parser.error("--scale is required")
    label = scale_label(args.scale)
    folder = (args.out / label).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    regenerated = prepare_inputs(args.scale, folder, args.seed)
    prefect_home = args.out.resolve() / "prefect-home"
    prefect_home_fresh = not (prefect_home / "prefect.db").exists()
    bench = Bench(folder, child_env(prefect_home), args.timeout)
    load_before = load_average()
    measured = run_magsync(bench, args.skip_prefect)
    if args.skip_floor:
        measured += [CaseResult(k, CASES[k], "skipped", "--skip-floor")
                     for k in ("floor_load", "floor_resync")]
    else:
        measured += run_floors(bench, regenerated)
    measured.append(CaseResult("naive", CASES["naive"], "skipped", "--skip-naive")
                    if args.skip_naive else
                    bench.measure("naive", "bench.naive", folder / BASE, bench.workdir("naive")))
    by_key = {r.key: r for r in measured}
    ordered = [by_key[k] for k in CASES]
    print(f"\nscale {label}: {args.scale:,} customers, input {folder / BASE}\n")
    print(text_table(ordered))
    print("\n" + "\n".join(ratio_lines(by_key)))
    if any(r.status == "failed" for r in ordered):
        print("\na case failed: RESULTS not written", file=sys.stderr)
        return 1
    sizes = ", ".join(f"{n} {(folder / n).stat().st_size / 1e6:.1f} MB" for n in (BASE, CHANGED))
    section = results_section(f"{label} ({args.scale:,} customers)",
                              f"{sizes} (bench.generate, seed {args.seed})", ordered,
                              environment(REPO), notes(by_key, prefect_home_fresh, load_before))
    append_results(args.results, section)
    print(f"\nappended to {args.results}")
    return 0


def run_small(args: argparse.Namespace) -> int:
    """The `small` case: prints its section and appends it to RESULTS."""
    from bench import small

    load_before = load_average()
    measured, extra = small.run(args.repeat, with_server=not args.skip_prefect)
    text = small.section(measured, extra, environment(REPO), args.repeat,
                         (load_before, load_average()))
    print(text)
    append_results(args.results, text)
    print(f"appended to {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
