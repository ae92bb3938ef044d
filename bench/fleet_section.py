"""The fleet simulation's results: one row per worker count, the extrapolation to a larger
fleet, and the RESULTS.md section. Pure: no processes, no servers."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

COLUMNS = ("workers", "wall s", "fleet body s", "stores/hour", "store s (mean / max)",
           "write windows s (mean / max)", "writers at once", "peak connections",
           "target commits", "target rows ins+upd", "client CPU s", "load 1-min before / after")
SOAP_LINE = re.compile(r"^- \(a\) SOAP v1: (\d+) customers/s, client CPU ([\d.]+) s")
SOAP_HEADING = re.compile(r"^## (.+?) · SOAP · ([\d,]+) customers$")


@dataclass
class SimOptions:
    """What to simulate."""

    stores: int = 6
    customers: int = 2_000
    workers: list[int] = field(default_factory=lambda: [1, 2, 4])
    runs_per_worker: int = 1
    max_writers: int = 4
    per_request_ms: float = 20.0
    per_call_ms: float = 3.0
    max_concurrent: int = 4
    seed: int = 42
    timeout_s: float = 1800.0
    empty_target: bool = False  # leave the schema to the stores' first runs


@dataclass
class ConfigResult:
    """One worker count: the fleet run and what the target and the machine saw of it."""

    workers: int
    ok: bool = True
    note: str = ""
    wall_s: float = 0.0  # `magsync fleet`, spawn to exit
    body_s: float = 0.0  # the fleet report's started_at to finished_at
    store_s: dict[str, float] = field(default_factory=dict)  # per store: its flow run
    write_s: dict[str, float] = field(default_factory=dict)  # per store: its write window
    writers_at_once: int = 0  # the most write windows open at one instant
    peak_connections: int = 0  # to the target's database, sampled
    rows_reported: int = 0  # created + updated + deleted, summed over the stores' reports
    pg: dict[str, int] = field(default_factory=dict)  # pg_stat_database deltas
    client_cpu_s: float = 0.0  # workers (with their flow-run processes) + `magsync fleet`
    emulator_cpu_s: float = 0.0  # the stores' servers
    load_before: float = 0.0
    load_after: float = 0.0

    @property
    def stores_per_hour(self) -> float:
        """Stores synced per hour of wall time."""
        return len(self.store_s) * 3600 / self.wall_s if self.wall_s > 0 else 0.0

    def cells(self) -> list[str]:
        """The table cells."""
        if not self.ok:
            return [str(self.workers), f"failed: {self.note}", *[""] * (len(COLUMNS) - 2)]
        stores, writes = list(self.store_s.values()), list(self.write_s.values())
        return [str(self.workers), f"{self.wall_s:.1f}", f"{self.body_s:.1f}",
                f"{self.stores_per_hour:,.0f}", _mean_max(stores), _mean_max(writes),
                str(self.writers_at_once), str(self.peak_connections),
                f"{self.pg.get('xact_commit', 0):,}",
                f"{self.pg.get('tup_inserted', 0) + self.pg.get('tup_updated', 0):,}",
                f"{self.client_cpu_s:.1f}", f"{self.load_before:.2f} / {self.load_after:.2f}"]


def _mean_max(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{sum(values) / len(values):.1f} / {max(values):.1f}"


def markdown_table(results: list[ConfigResult]) -> str:
    """The table as GitHub markdown."""
    return "\n".join(["| " + " | ".join(COLUMNS) + " |",
                      "|---:" * len(COLUMNS) + "|",
                      *("| " + " | ".join(r.cells()) + " |" for r in results)])


def text_table(results: list[ConfigResult]) -> str:
    """The console table."""
    rows = [list(COLUMNS), *(r.cells() for r in results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True))
                     for r in rows)


@dataclass
class SoapRate:
    """The single-store SOAP rate a RESULTS.md `· SOAP ·` section measured."""

    customers_per_s: float
    cpu_s_per_customer: float
    source: str  # which section


def latest_soap_rate(results_md: str) -> SoapRate | None:
    """The newest SOAP v1 section's customers/s and client CPU per customer, or None."""
    found: SoapRate | None = None
    heading: tuple[str, int] | None = None
    for line in results_md.splitlines():
        head = SOAP_HEADING.match(line)
        if head:
            heading = (head.group(1), int(head.group(2).replace(",", "")))
        elif line.startswith("## "):
            heading = None
        rate = SOAP_LINE.match(line)
        if rate and heading:
            found = SoapRate(float(rate.group(1)), float(rate.group(2)) / heading[1],
                             f"the {heading[0]} SOAP section ({heading[1]:,} customers)")
    return found


@dataclass
class Plan:
    """A fleet's sizing from measured rates: the arithmetic of docs/scaling.md."""

    stores: int
    customers: int  # per store
    window_s: float
    soap: SoapRate
    fixed_s: float  # per store, besides fetching: start-up, validation, merge of a small store
    rows_per_customer: float  # rows written per customer (itself and its addresses)
    write_rows_per_s: float  # one writer's rows per second of its write window
    max_writers: int

    @property
    def fetch_s(self) -> float:
        """One store's SOAP fetch at the measured rate."""
        return self.customers / self.soap.customers_per_s

    @property
    def write_s(self) -> float:
        """One store's write window at the measured write rate."""
        return self.customers * self.rows_per_customer / self.write_rows_per_s

    @property
    def store_s(self) -> float:
        """One store's sync, end to end."""
        return self.fixed_s + self.fetch_s + self.write_s

    @property
    def runs_at_once(self) -> int:
        """Concurrent runs (workers of one run each) for every store to fit the window."""
        return math.ceil(self.stores * self.store_s / self.window_s)

    @property
    def cores_busy(self) -> float:
        """Client cores kept busy on average over the window, for the fetches alone."""
        return self.stores * self.customers * self.soap.cpu_s_per_customer / self.window_s

    @property
    def target_busy_s(self) -> float:
        """The target's write windows laid end to end, max_writers at a time (assumes the
        target's write rate holds with that many writers)."""
        return self.stores * self.write_s / self.max_writers

    @property
    def cores_per_run(self) -> float:
        """Client cores one run keeps busy fetching at the measured rate."""
        return self.soap.cpu_s_per_customer * self.soap.customers_per_s

    def machines(self, cores: int = 2) -> int:
        """Machines of `cores` cores for runs_at_once runs at full rate."""
        return math.ceil(self.runs_at_once * self.cores_per_run / cores)

    def lines(self) -> list[str]:
        """The extrapolation, one step a line."""
        return [
            f"extrapolation to {self.stores} stores x {self.customers:,} customers in "
            f"{self.window_s / 3600:.1f} h: per-store fetch {self.customers:,} / "
            f"{self.soap.customers_per_s:.0f} customers/s ({self.soap.source}) = "
            f"{self.fetch_s:.0f} s; write {self.customers * self.rows_per_customer:,.0f} "
            f"rows / {self.write_rows_per_s:,.0f} rows/s (one writer, this run) = "
            f"{self.write_s:.0f} s; fixed {self.fixed_s:.1f} s a store (this run: a "
            f"worker's time per store minus its fetch and write); a store {self.store_s:.0f} s",
            f"all stores one after another: {self.stores * self.store_s:,.0f} s against a "
            f"window of {self.window_s:,.0f} s: {self.runs_at_once} runs at once needed "
            f"(workers of one run each), no headroom",
            f"client CPU: {self.soap.cpu_s_per_customer * 1e3:.2f} ms a customer fetched; "
            f"one run at full rate keeps {self.cores_per_run:.2f} core busy, "
            f"{self.runs_at_once} runs {self.runs_at_once * self.cores_per_run:.1f} cores: "
            f"{self.machines()} machine(s) of 2 cores (this machine alone: "
            f"{'met' if self.machines() <= 1 else 'not met'})",
            f"target: {self.stores} write windows of {self.write_s:.0f} s, "
            f"{self.max_writers} at a time = {self.target_busy_s:,.0f} s of the "
            f"{self.window_s:,.0f} s window (if one writer's rate holds with "
            f"{self.max_writers} at once)",
        ]


def results_section(title: str, facts: list[str], results: list[ConfigResult],
                    notes: list[str]) -> str:
    """One markdown section for RESULTS.md."""
    return "\n".join([f"## {title}", "", *(f"- {f}" for f in facts), "",
                      markdown_table(results), "", *(f"- {n}" for n in notes), ""])


def read_rate(path: Path) -> SoapRate | None:
    """latest_soap_rate of a RESULTS.md file, None when it has none or is missing."""
    return latest_soap_rate(path.read_text(encoding="utf-8")) if path.exists() else None


def overlap(windows: list[tuple[datetime, datetime]]) -> int:
    """The most windows open at one instant (one ending as another starts: not both)."""
    edges = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def base_config(results: list[ConfigResult]) -> ConfigResult | None:
    """The run with the fewest workers that succeeded: the least contended one."""
    ok = [r for r in results if r.ok and r.store_s and r.write_s]
    return min(ok, key=lambda r: r.workers) if ok else None


def plan_from(base: ConfigResult, opts: SimOptions, soap: SoapRate, *, stores: int = 50,
              customers: int = 200_000, window_s: float = 7200) -> Plan:
    """The extrapolation from the least contended run: its per-store fixed part (a worker
    slot's time per store, i.e. the fleet body x slots / stores, minus a store's fetch at
    the bench's rate and its mean write window; at least 0), its rows per customer and its
    write rate (rows over write-window seconds: with the write's fixed part, so low for
    small stores)."""
    slots = base.workers * opts.runs_per_worker
    slot_s = base.body_s * slots / len(base.store_s)
    mean_write = sum(base.write_s.values()) / len(base.write_s)
    fixed = max(0.0, slot_s - opts.customers / soap.customers_per_s - mean_write)
    synced = len(base.store_s) * opts.customers
    per_writer = base.rows_reported / sum(base.write_s.values())
    return Plan(stores, customers, window_s, soap, fixed, base.rows_reported / synced,
                per_writer, opts.max_writers)


def speedups(results: list[ConfigResult]) -> str:
    """Wall time of the fewest workers over each other count's (above 1: faster)."""
    ok = sorted((r for r in results if r.ok), key=lambda r: r.workers)
    if len(ok) < 2:
        return "speed-up: n/a (one worker count)"
    first = ok[0]
    parts = [f"{first.workers} -> {r.workers} workers {first.wall_s / r.wall_s:.2f}x"
             for r in ok[1:]]
    return ("speed-up, wall time of the fewest workers over the others' (above 1: faster): "
            + ", ".join(parts))


def config_notes(r: ConfigResult) -> list[str]:
    """A worker count's per-store times and the target's counters."""
    stores = ", ".join(f"{name} {s:.1f}" for name, s in sorted(r.store_s.items()))
    pg = r.pg
    return [f"{r.workers} worker(s): store s {stores}; target pg_stat_database deltas: "
            f"commits {pg.get('xact_commit', 0):,}, rollbacks {pg.get('xact_rollback', 0):,}, "
            f"inserted {pg.get('tup_inserted', 0):,}, updated {pg.get('tup_updated', 0):,}, "
            f"deleted {pg.get('tup_deleted', 0):,} (the reports: {r.rows_reported:,} rows "
            f"created/updated/deleted); SOAP requests {pg.get('soap_requests', 0):,}; "
            f"emulators' CPU {r.emulator_cpu_s:.1f} s"]


def section_text(opts: SimOptions, results: list[ConfigResult],
                 stores: dict[str, tuple[int, int]], load_start: float,
                 results_path: Path, env: dict[str, str], pg_version: str) -> str:
    """The fleet section for RESULTS.md: facts, the table, per-run notes, extrapolation."""
    customers = sum(c for c, _ in stores.values())
    addresses = sum(a for _, a in stores.values())
    facts = [f"stores: {len(stores)} emulator processes x {opts.customers:,} customers "
             f"({customers:,} customers, {addresses:,} addresses in all; magento.dataset, "
             f"seeds {opts.seed + 1}-{opts.seed + len(stores)}); latency model "
             f"{opts.per_request_ms:g} ms a request + {opts.per_call_ms:g} ms a call, "
             f"{opts.max_concurrent} requests served at once per store",
             f"target: PostgreSQL {pg_version} on 127.0.0.1:5432, a fresh database per "
             f"worker count, " + ("empty (the stores' first runs create the schema)"
                                  if opts.empty_target else "its schema created first "
                                  "(SqlTarget.migrate), as after a fleet's first night")
             + f"; max_writers = {opts.max_writers}",
             f"workers: `prefect worker start --type process --limit "
             f"{opts.runs_per_worker}` each its own process; PREFECT_WORKER_QUERY_SECONDS=1, "
             f"PREFECT_RUNNER_POLL_FREQUENCY=1; one `prefect server start` (SQLite)",
             f"machine: {env['machine']}",
             f"Python {env['python']}; {env['versions']}",
             f"magsync revision: {env['revision']}"]
    notes = [f"every store's customers and addresses landed, checked per source in the "
             f"target for each worker count; 1-minute load average at the start: "
             f"{load_start:.2f} (on a machine shared with other work)",
             "wall s: `magsync fleet` spawn to exit (its start-up, the parent flow, every "
             "store's run); fleet body s: the fleet report's start to finish; store s: each "
             "flow run's run time; write windows: each run's merge + export under the "
             "target's slot (its report); writers at once: the most windows open together; "
             "peak connections: backends on the target's database, sampled every 0.25 s",
             "client CPU s: the workers with the flow-run processes they started (wait4) "
             "plus `magsync fleet`; the emulators' CPU (the stores' side) is not in it",
             speedups(results), *(n for r in results if r.ok for n in config_notes(r))]
    base, soap = base_config(results), read_rate(results_path)
    if base is not None and soap is not None:
        notes += plan_from(base, opts, soap).lines()
    else:
        notes.append("extrapolation: n/a (no successful run or no SOAP section in "
                     f"{results_path.name})")
    title = f"{env['date']} · fleet · {len(stores)} stores x {opts.customers:,} customers"
    return results_section(title, facts, results, notes)
