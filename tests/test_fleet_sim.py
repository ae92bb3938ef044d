"""The fleet simulation's pure parts (bench/fleet_sim.py, bench/fleet_section.py): the fleet
file it writes, reading the fleet report, the count check, the extrapolation and the
RESULTS section. The simulation itself is not run here: with the session's Prefect server
it still starts emulators, a worker, `magsync deploy` and `magsync fleet` with two flow-run
processes (about 50 CPU seconds), too much for the suite; `make bench-fleet` runs it and
exits 1 when a store's rows did not land."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench import fleet_sim
from bench.fleet_section import (
    ConfigResult,
    Plan,
    SimOptions,
    SoapRate,
    latest_soap_rate,
    overlap,
    plan_from,
    section_text,
)

ROOT = Path(__file__).resolve().parent.parent
# A SOAP section as bench/soap.py writes it: the simulation's extrapolation reads its rate.
SOAP_SECTION = """# Benchmark results

## 2026-01-01 00:00 UTC · SOAP · 20,000 customers

- (a) SOAP v1: 800 customers/s, client CPU 20.0 s; latency-model ceiling 1155 customers/s
"""


def test_overlap_counts_windows_open_together() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    s = timedelta(seconds=1)
    assert overlap([]) == 0
    assert overlap([(t, t + 2 * s), (t + s, t + 3 * s), (t + 4 * s, t + 5 * s)]) == 2
    assert overlap([(t, t + s), (t + s, t + 2 * s)]) == 1  # one ends as the next starts


def test_latest_soap_rate_reads_the_newest_v1_section() -> None:
    text = SOAP_SECTION + """
## 2026-01-02 00:00 UTC · SOAP v2 · 20,000 customers

- (a) SOAP v2: 900 customers/s, client CPU 10.0 s

## 2026-01-03 00:00 UTC · SOAP · 10,000 customers

- (a) SOAP v1: 500 customers/s, client CPU 15.0 s; ceiling
"""
    rate = latest_soap_rate(text)
    assert rate is not None
    assert (rate.customers_per_s, rate.cpu_s_per_customer) == (500, 0.0015)
    assert "2026-01-03" in rate.source
    assert latest_soap_rate("# nothing measured\n") is None
    assert latest_soap_rate((ROOT / "bench" / "RESULTS.md").read_text()) is not None


def test_plan_sizes_workers_machines_and_the_target() -> None:
    plan = Plan(stores=50, customers=200_000, window_s=7200,
                soap=SoapRate(800, 0.001, "test"), fixed_s=10, rows_per_customer=3,
                write_rows_per_s=6000, max_writers=4)
    assert (plan.fetch_s, plan.write_s, plan.store_s) == (250, 100, 360)
    assert plan.runs_at_once == math.ceil(50 * 360 / 7200) == 3
    assert plan.cores_per_run == pytest.approx(0.8)
    assert plan.machines() == 2  # 3 runs x 0.8 core on 2-core machines
    assert plan.target_busy_s == 50 * 100 / 4
    assert "3 runs at once needed" in "\n".join(plan.lines())


def test_plan_from_takes_a_worker_slot_per_store_from_the_least_contended_run() -> None:
    base = ConfigResult(1, body_s=60, store_s={"a": 20, "b": 20}, write_s={"a": 1, "b": 3},
                        rows_reported=12_000)
    plan = plan_from(base, SimOptions(customers=2_000), SoapRate(1000, 0.001, "test"))
    assert plan.fixed_s == 60 / 2 - 2 - 2  # slot time - fetch - mean write window
    assert plan.write_rows_per_s == 12_000 / 4
    assert plan.rows_per_customer == 12_000 / 4_000


def test_the_fleet_file_it_writes_is_a_valid_fleet(tmp_path: Path) -> None:
    from magsync.flows.fleet_file import load_fleet

    path = tmp_path / "stores.toml"
    path.write_text(fleet_sim.fleet_toml(
        tmp_path / "out", "postgresql+psycopg://postgres@127.0.0.1:5432/x",
        {"store01": "http://127.0.0.1:1/api/soap/", "store02": "http://127.0.0.1:2/api/soap/"},
        max_writers=3))
    fleet = load_fleet(path)
    assert [s.name for s in fleet.stores] == ["store01", "store02"]
    assert fleet.targets["warehouse"].max_writers == 3
    assert {s.source.api_key_env for s in fleet.stores} == {fleet_sim.KEY_ENV}


def _report(states: dict[str, tuple[str, str]]) -> dict[str, object]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    stores = []
    for i, (name, (state, status)) in enumerate(states.items()):
        start = t0 + timedelta(seconds=10 * i)
        stores.append({
            "store": name, "state": state, "status": status, "duration_s": 5.0 + i,
            "counts": {"customer": {"created": 2}, "address": {"created": 4, "updated": 1}},
            "write_window": {"start": start.isoformat(),
                             "end": (start + timedelta(seconds=12)).isoformat()}})
    return {"started_at": t0.isoformat(),
            "finished_at": (t0 + timedelta(seconds=30)).isoformat(), "stores": stores}


def test_read_report_takes_times_windows_and_rows() -> None:
    result = ConfigResult(2)
    fleet_sim.read_report(result, _report({"a": ("COMPLETED", "done"),
                                           "b": ("COMPLETED", "done")}))
    assert result.body_s == 30
    assert result.store_s == {"a": 5.0, "b": 6.0}
    assert result.write_s == {"a": 12.0, "b": 12.0}
    assert result.writers_at_once == 2  # b's window opens at 10 s, a's closes at 12 s
    assert result.rows_reported == 2 * 7


@pytest.mark.parametrize(("states", "landed", "problem"), [
    ({"a": ("COMPLETED", "done")}, {"a": (2, 4)}, ""),
    ({"a": ("FAILED", "refused")}, {}, "stores not synced: a FAILED/refused"),
    ({"a": ("COMPLETED", "done")}, {"a": (2, 3)}, "landed (customers, addresses)"),
    ({"a": ("COMPLETED", "done")}, {}, "landed (customers, addresses) {}"),
])
def test_count_problem_names_a_store_whose_rows_did_not_land(
        states: dict[str, tuple[str, str]], landed: dict[str, tuple[int, int]],
        problem: str) -> None:
    found = fleet_sim.count_problem(_report(states), landed, {"a": (2, 4)})
    assert found.startswith(problem) if problem else found == ""


def test_the_section_has_the_table_the_notes_and_the_extrapolation(tmp_path: Path) -> None:
    results_md = tmp_path / "RESULTS.md"
    results_md.write_text(SOAP_SECTION)
    runs = []
    for workers, wall in ((1, 60.0), (2, 40.0)):
        r = ConfigResult(workers, wall_s=wall, load_before=1.5, load_after=2)
        fleet_sim.read_report(r, _report({"store01": ("COMPLETED", "done"),
                                          "store02": ("COMPLETED", "done")}))
        r.pg = {"xact_commit": 40, "tup_inserted": 900, "tup_updated": 10}
        runs.append(r)
    env = {"date": "2026-01-01 00:00 UTC", "machine": "x86_64, 2 cores", "python": "3.11.7",
           "versions": "prefect 3.9.1", "revision": "abc1234"}
    text = section_text(SimOptions(stores=2, customers=2), runs,
                        {"store01": (2, 4), "store02": (2, 4)}, 1.25, results_md, env, "15.2")

    assert text.startswith("## 2026-01-01 00:00 UTC · fleet · 2 stores x 2 customers\n")
    table = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert len(table) == 1 + 2 and table[0].startswith("| workers | wall s |")
    assert table[1].startswith("| 1 | 60.0 | 30.0 | 120 |")  # 2 stores in 60 s: 120 an hour
    assert "| 910 |" in table[1] and "| 1.50 / 2.00 |" in table[1]
    assert "1 -> 2 workers 1.50x" in text and "(above 1: faster)" in text
    assert "PostgreSQL 15.2" in text and "1-minute load average at the start: 1.25" in text
    assert "2 worker(s): store s store01 5.0, store02 6.0" in text
    assert "extrapolation to 50 stores x 200,000 customers in 2.0 h" in text
    assert "runs at once needed" in text and "machine(s) of 2 cores" in text


def test_no_extrapolation_without_a_soap_section(tmp_path: Path) -> None:
    r = ConfigResult(1, wall_s=10, body_s=9)
    fleet_sim.read_report(r, _report({"a": ("COMPLETED", "done")}))
    env = {"date": "d", "machine": "m", "python": "p", "versions": "v", "revision": "r"}
    text = section_text(SimOptions(stores=1, customers=2), [r], {"a": (2, 4)}, 1.0,
                        tmp_path / "missing.md", env, "15")
    assert "extrapolation: n/a" in text
