"""The benchmark's results: one row per case, the ratios, the console table, RESULTS.md."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("pandas", "pyarrow", "SQLAlchemy", "prefect", "magsync")
RESULTS_HEADER = """# Benchmark results

Appended by `python -m bench.run` (`make bench SCALE=...`), newest last. What each case
measures: bench/README.md. Times in seconds; body = measured in-process from the first byte
read to the last byte written; rows = customer + address records.
"""


@dataclass
class CaseResult:
    """One measured case (or why it was not measured)."""

    key: str
    label: str
    status: str = "ok"  # ok, failed, skipped
    note: str = ""
    wall_s: float = 0.0
    body_s: float = 0.0
    imports_s: float = 0.0
    prefect_s: float | None = None
    rows: int = 0
    peak_rss_mb: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the case ran and succeeded."""
        return self.status == "ok"

    @property
    def startup_imports_s(self) -> float:
        """Process start-up plus imports: wall minus body minus Prefect's share."""
        return self.wall_s - self.body_s - (self.prefect_s or 0.0)

    @property
    def rows_per_s(self) -> float:
        """Records per second of body time."""
        return self.rows / self.body_s if self.body_s > 0 else 0.0


COLUMNS = ("case", "wall s", "body s", "start-up+imports s", "of which imports s",
           "Prefect s", "rows", "rows/s", "peak RSS MB")


def cells(r: CaseResult) -> list[str]:
    """The table cells of one case."""
    if not r.ok:
        return [r.label, f"{r.status}: {r.note}", *[""] * (len(COLUMNS) - 2)]
    prefect = "" if r.prefect_s is None else f"{r.prefect_s:.1f}"
    return [r.label, f"{r.wall_s:.1f}", f"{r.body_s:.2f}", f"{r.startup_imports_s:.1f}",
            f"{r.imports_s:.1f}", prefect, f"{r.rows:,}", f"{r.rows_per_s:,.0f}",
            f"{r.peak_rss_mb:,.0f}"]


def ratios(results: dict[str, CaseResult]) -> list[tuple[str, float | None]]:
    """Body-time ratios: magsync over its floor, naive over magsync."""
    def ratio(num: str, den: str) -> float | None:
        a, b = results.get(num), results.get(den)
        if a is None or b is None or not (a.ok and b.ok) or b.body_s <= 0:
            return None
        return a.body_s / b.body_s
    return [
        ("first load magsync/floor", ratio("first", "floor_load")),
        ("1%-changed re-sync magsync/floor", ratio("changed", "floor_resync")),
        ("unchanged re-sync magsync/re-sync floor", ratio("unchanged", "floor_resync")),
        ("first load naive/magsync", ratio("naive", "first")),
    ]


def text_table(results: list[CaseResult]) -> str:
    """The console table; a case that did not run gets its reason instead of numbers."""
    measured = [cells(r) for r in results if r.ok]
    widths = [max(len(row[i]) for row in [list(COLUMNS), *measured])
              for i in range(len(COLUMNS))]
    lines = []
    for r in results:
        row = cells(r)
        if not r.ok:
            lines.append(f"{row[0].ljust(widths[0])}  {row[1]}")
            continue
        lines.append("  ".join([row[0].ljust(widths[0]),
                                *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]))
    head = "  ".join([COLUMNS[0].ljust(widths[0]),
                      *(c.rjust(w) for c, w in zip(COLUMNS[1:], widths[1:], strict=True))])
    return "\n".join([head, *lines])


# The bound on what the change history adds to the 1%-changed re-sync.
HISTORY_COST_TARGET = 1.10


def history_cost(results: dict[str, CaseResult]) -> float | None:
    """(b)/(b0) body times: the re-sync with history over the same re-sync without."""
    with_history, without = results.get("changed"), results.get("changed_no_history")
    if with_history is None or without is None or not (with_history.ok and without.ok) \
            or without.body_s <= 0:
        return None
    return with_history.body_s / without.body_s


def history_cost_line(results: dict[str, CaseResult]) -> str:
    """The history's cost on the 1%-changed re-sync, with its target and whether it is met
    (above 1.00x: history makes the re-sync slower)."""
    name = "history cost, 1%-changed re-sync (b)/(b0)"
    value = history_cost(results)
    if value is None:
        return f"{name}: n/a"
    met = "met" if value <= HISTORY_COST_TARGET else "not met"
    cpu = [results[k].extra.get("body_cpu_s") for k in ("changed", "changed_no_history")]
    of_cpu = f"; CPU {cpu[0] / cpu[1]:.2f}x" if all(cpu) else ""  # type: ignore[operator]
    return (f"{name}: {value:.2f}x (target <= {HISTORY_COST_TARGET:.2f}x: {met}; body "
            f"times{of_cpu}; above 1.00x history slows the re-sync)")


def ratio_lines(results: dict[str, CaseResult]) -> list[str]:
    """One line per ratio, 'n/a' where a side is missing; then the history's cost."""
    return [*(f"{name}: {'n/a' if value is None else f'{value:.2f}x'}"
              for name, value in ratios(results)), history_cost_line(results)]


def markdown_table(results: list[CaseResult]) -> str:
    """The table as GitHub markdown."""
    head = "| " + " | ".join(COLUMNS) + " |"
    rule = "|---" + "|---:" * (len(COLUMNS) - 1) + "|"
    body = ["| " + " | ".join(cells(r)) + " |" for r in results]
    return "\n".join([head, rule, *body])


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def git_revision(repo: Path) -> str:
    """Short commit of the work tree, marked when it has uncommitted changes."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, check=True,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=repo, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{rev} (with uncommitted changes)" if dirty.strip() else rev


def environment(repo: Path) -> dict[str, str]:
    """Date, machine and versions for the results entry."""
    versions = ", ".join(f"{p} {_version(p)}" for p in PACKAGES)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (nproc), "
                   f"{_memory_gib()} memory, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
        "revision": git_revision(repo),
    }


def results_section(scale: str, inputs: str, results: list[CaseResult],
                    env: dict[str, str], notes: list[str]) -> str:
    """One markdown section for RESULTS.md."""
    by_key = {r.key: r for r in results}
    lines = [
        f"## {env['date']} · scale {scale}",
        "",
        f"- input: {inputs}",
        f"- machine: {env['machine']}",
        f"- Python {env['python']}; {env['versions']}",
        f"- magsync revision: {env['revision']}",
        "",
        markdown_table(results),
        "",
        *(f"- {line}" for line in ratio_lines(by_key)),
        *(f"- {note}" for note in notes),
        "",
    ]
    return "\n".join(lines)


def append_results(path: Path, section: str) -> None:
    """Appends a section, creating the file with its header first if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text(encoding="utf-8") if path.exists() else RESULTS_HEADER
    path.write_text(existing.rstrip("\n") + "\n\n" + section, encoding="utf-8")
