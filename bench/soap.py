"""The SOAP benchmark: magsync's full SOAP sync against the naive client, on the emulator.

python -m bench.soap [--customers 20000] [--naive-sample 2000] [--out bench/out]
                     [--results bench/RESULTS.md] [--source KEY=VALUE ...]

Serves a generated store (customers, two addresses each on average) from the emulator in a
process of its own, with a latency model (20 ms a request, 3 ms a call, 4 requests served at
once), then runs, each in its own measured child: (a) magsync's sync into a fresh SQLite
store, (b) the naive zeep client on its first customers, extrapolated. Prints one table and
the ratio, checks magsync's counts against the store and appends to RESULTS.md.
What each column means: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.measure import run_child
from bench.report import _version, append_results, environment
from bench.run import REPO, child_env, last_line, load_average, scale_label
from bench.soap_store import KEY_ENV, EmulatorProcess, stats_delta

TARGET_RATIO = 10.0
COLUMNS = ("case", "wall s", "body s", "customers", "s for all", "customers/s",
           "client CPU s", "HTTP requests", "calls", "peak RSS MB")


@dataclass
class SoapCase:
    """One measured client run and what the server saw of it."""

    label: str
    ok: bool = True
    note: str = ""
    wall_s: float = 0.0
    body_s: float = 0.0
    customers: int = 0  # customers whose addresses were fetched in the body
    total_s: float = 0.0  # for every customer of the store (extrapolated for the naive one)
    all_customers: int = 0
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0  # the client process's CPU, spawn to exit (the emulator has its own)
    server: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Customers per second, over the time for every customer."""
        return self.all_customers / self.total_s if self.total_s > 0 else 0.0

    def cells(self) -> list[str]:
        """The table cells."""
        if not self.ok:
            return [self.label, f"failed: {self.note}", *[""] * (len(COLUMNS) - 2)]
        return [self.label, f"{self.wall_s:.1f}", f"{self.body_s:.2f}", f"{self.customers:,}",
                f"{self.total_s:.1f}", f"{self.rate:,.0f}", f"{self.cpu_s:.1f}",
                f"{self.server.get('requests', 0):,}", f"{self.server.get('calls', 0):,}",
                f"{self.peak_rss_mb:,.0f}"]


@dataclass
class Harness:
    """Where things go and how the children run."""

    folder: Path
    env: dict[str, str]
    timeout_s: float | None
    emulator: EmulatorProcess | None = None

    def child(self, key: str, module: str, *argv: str) -> SoapCase:
        """Runs one case script in its own measured process; reads back its result."""
        assert self.emulator is not None
        workdir = self.folder / "runs" / key
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        result = self.folder / "runs" / f"{key}.json"
        result.unlink(missing_ok=True)
        before = self.emulator.stats()
        seen = run_child([sys.executable, "-m", module, "--url", self.emulator.url,
                          "--result", str(result), *argv], env=self.env, cwd=workdir,
                         log=self.folder / "logs" / f"{key}.log", timeout_s=self.timeout_s)
        server = stats_delta(before, self.emulator.stats())
        if seen.returncode != 0 or not result.exists():
            note = f"exit {seen.returncode}: {last_line(seen.log)} (log {seen.log})"
            return SoapCase(key, ok=False, note=note)
        data = json.loads(result.read_text(encoding="utf-8"))
        return SoapCase(key, wall_s=seen.wall_s, body_s=data["body_s"],
                        peak_rss_mb=seen.peak_rss_mb, cpu_s=seen.cpu_s, server=server,
                        data=data)


def run_magsync(h: Harness, sources: list[str]) -> SoapCase:
    """(a) magsync's full sync into a fresh store; its counts checked against the store."""
    assert h.emulator is not None
    workdir = h.folder / "runs" / "magsync"
    extra = [arg for s in sources for arg in ("--source", s)]
    case = h.child("magsync", "bench.soap_case", "--workdir", str(workdir), *extra)
    case.label = "(a) magsync full SOAP sync"
    if case.ok:
        case.customers = case.all_customers = h.emulator.customers
        case.total_s = case.body_s
        problem = count_problem(case.data, h.emulator.customers, h.emulator.addresses)
        if problem:
            case.ok, case.note = False, problem
    return case


def count_problem(data: dict[str, Any], customers: int, addresses: int) -> str:
    """Why magsync's counts disagree with the store, or '' when they agree."""
    counts = data.get("counts", {})
    want = {"customer": customers, "address": addresses}
    for entity, n in want.items():
        got = counts.get(entity, {})
        if got.get("created", 0) != n or got.get("faulted", 0):
            return f"{entity} counts {got} against {n} in the store"
    stored = data.get("stored", {})
    if stored != {"customers": customers, "customer_addresses": addresses}:
        return f"stored rows {stored} against {customers} / {addresses} in the store"
    return ""


def run_naive(h: Harness, sample: int) -> SoapCase:
    """(b) the naive client on its first `sample` customers, extrapolated to all."""
    case = h.child("naive", "bench.soap_naive", "--sample", str(sample))
    case.label = f"(b) naive zeep client, first {sample:,} extrapolated"
    if case.ok:
        case.customers = case.data["timed_customers"]
        case.all_customers = case.data["customers"]
        case.total_s = case.data["estimated_s"]
    return case


def text_table(cases: list[SoapCase]) -> str:
    """The console table."""
    rows = [list(COLUMNS), *(c.cells() for c in cases)]
    widths = [max(len(r[i]) for r in rows if len(r) == len(COLUMNS)) for i in range(len(COLUMNS))]
    return "\n".join("  ".join([r[0].ljust(widths[0]), *(v.rjust(w) for v, w in
                                                         zip(r[1:], widths[1:], strict=True))])
                     for r in rows)


def markdown_table(cases: list[SoapCase]) -> str:
    """The table as GitHub markdown."""
    return "\n".join(["| " + " | ".join(COLUMNS) + " |",
                      "|---" + "|---:" * (len(COLUMNS) - 1) + "|",
                      *("| " + " | ".join(c.cells()) + " |" for c in cases)])


def ratio_line(magsync: SoapCase, naive: SoapCase) -> str:
    """magsync's customers/s over the naive client's, against the 10x target."""
    if not (magsync.ok and naive.ok and naive.rate > 0):
        return "customers/s magsync/naive: n/a"
    ratio = magsync.rate / naive.rate
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    return f"customers/s magsync/naive: {ratio:.1f}x (target {TARGET_RATIO:.0f}x: {verdict})"


V2_SHARE = 0.85  # issue 19: v2 at >= 85% of its latency-model ceiling


V1_TARGET = 900.0  # issue 13: customers/s through v1 with the latency model, 4 slots


def ceiling_lines(args: argparse.Namespace, magsync: SoapCase) -> list[str]:
    """Customers/s against the latency model's ceiling, every slot busy: for v1 from the
    requests and calls the server saw, (requests x per request + calls x per call) / slots;
    for v2 and WS-I one address request per customer, a v2 operation counting as one call."""
    if not magsync.ok or not args.max_concurrent:
        return []
    if args.api == "v1":
        busy_s = (magsync.server.get("requests", 0) * args.per_request_ms
                  + magsync.server.get("calls", 0) * args.per_call_ms) / 1e3
        ceiling = (f"{magsync.all_customers / (busy_s / args.max_concurrent):.0f} customers/s"
                   if busy_s else "none (no latency)")
        verdict = "met" if magsync.rate >= V1_TARGET else "NOT met"
        return [f"(a) SOAP v1: {magsync.rate:.0f} customers/s, client CPU "
                f"{magsync.cpu_s:.1f} s; latency-model ceiling {ceiling} "
                f"({args.max_concurrent} slots); target >= {V1_TARGET:.0f} customers/s: "
                f"{verdict}"]
    ceiling = args.max_concurrent / ((args.per_request_ms + args.per_call_ms) / 1e3)
    share = magsync.rate / ceiling
    verdict = "met" if share >= V2_SHARE else "NOT met"
    return [f"(a) SOAP {args.api}: {magsync.rate:.1f} customers/s = {share:.0%} of the "
            f"latency-model ceiling {ceiling:.1f} ({args.max_concurrent} slots / "
            f"{args.per_request_ms + args.per_call_ms:g} ms an operation); target >= "
            f"{V2_SHARE:.0%} ({V2_SHARE * ceiling:.0f} customers/s): {verdict}"]


def notes(args: argparse.Namespace, magsync: SoapCase, naive: SoapCase,
          load_before: str) -> list[str]:
    """Context for the results entry."""
    out = [f"latency model: {args.per_request_ms:g} ms a request + {args.per_call_ms:g} ms a "
           f"call (a multiCall: each call it runs), at most {args.max_concurrent} requests "
           "served at once; the emulator runs in its own process",
           "(a) flows/sync.py::run_sync(orchestrated=False): the flow's steps as plain "
           "functions, no Prefect API; body = run_sync (WSDL, check, login, stage with "
           "validation, merge, Parquet export, report)"]
    if magsync.ok:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in magsync.data.get("stages_s", {}).items())
        out += [f"(a) source settings: {json.dumps(magsync.data.get('source_settings'))}; "
                f"counts {json.dumps(magsync.data.get('counts'))}",
                f"(a) server saw {json.dumps(magsync.server.get('operations'))}, "
                f"at most {magsync.server.get('max_in_flight')} requests in flight",
                f"(a) stage times s (nested): {stages}"]
    if naive.ok:
        d = naive.data
        out.append(f"(b) WSDL + login + customer.list of all {d['fixed_s']:.2f} s, then "
                   f"{d['per_customer_s'] * 1e3:.1f} ms per customer over "
                   f"{d['timed_customers']:,} ({d['sample_addresses']:,} addresses); "
                   f"time for all = fixed + per customer x {d['customers']:,}; "
                   f"server saw {json.dumps(naive.server.get('operations'))}")
    out += ["peak RSS: the client process (wait4 high-water mark), not the emulator",
            f"1-minute load average before / after: {load_before} / {load_average()} "
            f"(on {os.cpu_count()} cores)"]
    return out


def section(args: argparse.Namespace, store: str, cases: list[SoapCase],
            lines: list[str]) -> str:
    """One markdown section for RESULTS.md."""
    env = environment(REPO)
    api = "" if args.api == "v1" else f" {args.api}"
    return "\n".join([f"## {env['date']} · SOAP{api} · {args.customers:,} customers", "",
                      f"- store: {store}", f"- machine: {env['machine']}",
                      f"- Python {env['python']}; {env['versions']}, zeep {_version('zeep')}",
                      f"- magsync revision: {env['revision']}", "", markdown_table(cases), "",
                      *(f"- {line}" for line in lines), ""])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.soap", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=20_000)
    p.add_argument("--naive-sample", type=int, default=2_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--per-request-ms", type=float, default=20.0)
    p.add_argument("--per-call-ms", type=float, default=3.0)
    p.add_argument("--max-concurrent", type=int, default=4, help="0: no cap")
    p.add_argument("--api", choices=["v1", "v2", "wsi"], default="v1",
                   help="the SOAP dialect magsync reads (v2, wsi: one request per customer "
                        "for its addresses; the emulator serves WS-I for wsi)")
    p.add_argument("--source", action="append", default=[], metavar="KEY=VALUE",
                   help="a magsync source setting for (a), e.g. concurrency=4")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    p.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    p.add_argument("--no-results", action="store_true", help="print only")
    p.add_argument("--timeout", type=float, default=None, help="kill a case after S seconds")
    return p


def main(argv: list[str] | None = None) -> int:
    """Serves the store, runs both clients, prints, checks, appends; 1 if a case failed."""
    args = _parser().parse_args(argv)
    folder = (args.out / f"soap-{scale_label(args.customers)}").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(16)
    env = {**child_env(args.out.resolve() / "prefect-home"), KEY_ENV: key,
           "MAGSYNC_SOURCE__API_KEY": key}
    server_argv = ["--customers", str(args.customers), "--seed", str(args.seed),
                   "--per-request-ms", str(args.per_request_ms),
                   "--per-call-ms", str(args.per_call_ms),
                   "--max-concurrent", str(args.max_concurrent),
                   *(["--wsi"] * (args.api == "wsi"))]
    load_before = load_average()
    with EmulatorProcess(server_argv, env, folder / "logs" / "emulator.log") as emulator:
        h = Harness(folder, env, args.timeout, emulator)
        store = (f"{emulator.customers:,} customers, {emulator.addresses:,} addresses "
                 f"(magento.dataset, seed {args.seed}, two addresses a customer on average)")
        magsync = run_magsync(h, [*args.source, *([f"api={args.api}"] * (args.api != "v1"))])
        naive = run_naive(h, args.naive_sample)
    cases = [magsync, naive]
    print(f"\nSOAP: {store}\n\n{text_table(cases)}\n\n{ratio_line(magsync, naive)}")
    if not all(c.ok for c in cases):
        print("\na case failed: RESULTS not written", file=sys.stderr)
        return 1
    print("\n".join(ceiling_lines(args, magsync)))
    lines = [ratio_line(magsync, naive), *ceiling_lines(args, magsync),
             *notes(args, magsync, naive, load_before)]
    if not args.no_results:
        append_results(args.results, section(args, store, cases, lines))
        print(f"\nappended to {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
