"""The benchmark harness end to end at 300 customers: every case runs, the table and a
RESULTS section come out. No timing assertions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import run
from bench.report import CaseResult, append_results, history_cost_line, ratios


@pytest.mark.slow
def test_harness_runs_every_case_and_appends_results(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "RESULTS.md"
    out = tmp_path / "out"

    code = run.main(["--scale", "300", "--out", str(out), "--results", str(results),
                     "--timeout", "120"])

    printed = capsys.readouterr().out
    assert code == 0, printed
    table = printed[printed.index("case "):]
    for label in run.CASES.values():
        line = next(ln for ln in table.splitlines() if ln.startswith(label))
        assert "failed" not in line and "skipped" not in line, line
    for name, _ in ratios({}):
        assert f"{name}: " in printed and f"{name}: n/a" not in printed
    cost = next(ln for ln in printed.splitlines()
                if ln.startswith("history cost, 1%-changed re-sync (b)/(b0): "))
    assert re.search(r": \d+\.\d\dx \(target <= 1\.10x: (met|not met);", cost), cost

    section = results.read_text(encoding="utf-8")
    assert section.startswith("# Benchmark results")
    assert "## " in section and "scale 300 (300 customers)" in section
    for fact in ("machine: ", "nproc", "memory", "Python 3.", "pandas ", "pyarrow ",
                 "SQLAlchemy ", "prefect "):
        assert fact in section
    rows = [ln for ln in section.splitlines() if ln.startswith("| (")]
    assert [r.split(" | ")[0].lstrip("| ") for r in rows] == list(run.CASES.values())
    # The re-sync floor and magsync agree on what changed (same records, same verdicts).
    assert "(b) magsync counts" in section and "(d) re-sync floor counts" in section
    assert "- history cost, 1%-changed re-sync (b)/(b0): " in section

    # (b) and (b0) re-sync the same input on copies of (a)'s store; only (b) adds history.
    def history_files(key: str) -> list[str]:
        runs = out / "300" / "runs" / key
        return sorted(p.name for p in runs.rglob("history/customers/run_id=*.parquet"))
    first = history_files("first")
    assert len(first) == 1
    assert history_files("changed_no_history") == first
    assert len(history_files("changed")) == 2

    # The cases "without Prefect" run no task on any Prefect server (a temporary one costs
    # seconds and would be counted as magsync's).
    for key in ("first", "changed", "changed_no_history", "unchanged"):
        log = (out / "300" / "logs" / f"{key}.log").read_text(encoding="utf-8")
        assert "temporary server" not in log and "Task run" not in log, (key, log[-500:])
    assert "Task run" in (out / "300" / "logs" / "prefect.log").read_text("utf-8")

    # The generated inputs are reused while the manifest matches.
    assert run.prepare_inputs(300, out / "300", seed=42) is False


def test_results_are_appended_after_a_header(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    append_results(path, "## first\n")
    append_results(path, "## second\n")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark results")
    assert text.index("## first") < text.index("## second")
    assert text.count("# Benchmark results") == 1


def test_ratio_is_missing_when_a_side_did_not_run() -> None:
    first = CaseResult("first", "a", body_s=2.0)
    floor = CaseResult("floor_load", "d", body_s=1.0)
    skipped = CaseResult("naive", "e", status="skipped", note="--skip-naive")
    got = dict(ratios({"first": first, "floor_load": floor, "naive": skipped}))
    assert got["first load magsync/floor"] == 2.0
    assert got["first load naive/magsync"] is None


@pytest.mark.parametrize(("with_history", "line"), [
    (2.1, "1.05x (target <= 1.10x: met;"), (2.4, "1.20x (target <= 1.10x: not met;")])
def test_history_cost_says_its_direction_and_target(with_history: float, line: str) -> None:
    without = CaseResult("changed_no_history", "b0", body_s=2.0, extra={"body_cpu_s": 1.0})
    changed = CaseResult("changed", "b", body_s=with_history, extra={"body_cpu_s": 1.1})
    got = history_cost_line({"changed": changed, "changed_no_history": without})
    assert got.startswith(f"history cost, 1%-changed re-sync (b)/(b0): {line}"), got
    assert "CPU 1.10x" in got and "above 1.00x history slows the re-sync" in got
    assert history_cost_line({"changed": changed}).endswith(": n/a")


@pytest.mark.parametrize(("count", "label"), [(300, "300"), (100_000, "100k"),
                                              (1_000_000, "1m"), (2_500, "2500")])
def test_scale_label(count: int, label: str) -> None:
    assert run.scale_label(count) == label
