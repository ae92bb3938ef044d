"""The SOAP benchmark end to end at 60 customers without latency: the emulator child, both
measured clients, the count check, the table and a RESULTS section. No timing assertions."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import soap
from bench.soap_store import balanced_records, stats_delta


@pytest.mark.slow
def test_soap_bench_runs_both_clients_and_appends_results(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "RESULTS.md"

    code = soap.main(["--customers", "60", "--naive-sample", "20", "--per-request-ms", "0",
                      "--per-call-ms", "0", "--out", str(tmp_path / "out"),
                      "--results", str(results), "--timeout", "120",
                      "--source", "window=25", "--source", "multicall_size=7"])

    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "60 customers, 120 addresses" in printed
    for label in ("(a) magsync full SOAP sync", "(b) naive zeep client, first 20"):
        line = next(ln for ln in printed.splitlines() if ln.startswith(label))
        assert "failed" not in line, line
    assert "customers/s magsync/naive: " in printed and ": n/a" not in printed
    header = next(ln for ln in printed.splitlines() if ln.startswith("case"))
    assert "client CPU s" in header
    v1 = next(ln for ln in printed.splitlines() if ln.startswith("(a) SOAP v1: "))
    assert "client CPU 0.0 s" not in v1 and "target >= 900 customers/s" in v1

    section = results.read_text(encoding="utf-8")
    assert "· SOAP · 60 customers" in section
    for fact in ("machine: ", "Python 3.", "zeep ", "magsync revision: ", "latency model",
                 '"window": 25', '"multicall_size": 7', "per customer over 20"):
        assert fact in section, fact
    rows = [ln for ln in section.splitlines() if ln.startswith("| (")]
    assert len(rows) == 2
    assert '"multiCall": ' in section and '"call": ' in section  # (a) batches, (b) not


@pytest.mark.parametrize("customers", [1, 7, 60, 500])
def test_store_has_two_addresses_a_customer(customers: int) -> None:
    records = balanced_records(customers, seed=3)
    assert len(records) == customers
    addresses = [a for _, group in records for a in group]
    assert len(addresses) == 2 * customers
    assert len({a["customer_address_id"] for a in addresses}) == len(addresses)
    assert all(len(group) <= 3 for _, group in records)
    assert balanced_records(customers, seed=3) == records  # seeded


def test_count_problem_names_the_disagreement() -> None:
    good = {"counts": {"customer": {"created": 2}, "address": {"created": 4}},
            "stored": {"customers": 2, "customer_addresses": 4}}
    assert soap.count_problem(good, 2, 4) == ""
    faulted = {**good, "counts": {"customer": {"created": 2},
                                  "address": {"created": 4, "faulted": 1}}}
    assert "address" in soap.count_problem(faulted, 2, 4)
    assert "stored rows" in soap.count_problem({**good, "stored": {}}, 2, 4)


def test_stats_delta() -> None:
    before = {"requests": 3, "calls": 1, "operations": {"login": 1}, "max_in_flight": 1}
    after = {"requests": 8, "calls": 11, "operations": {"login": 2, "multiCall": 4},
             "max_in_flight": 2}
    assert stats_delta(before, after) == {"requests": 5, "calls": 10, "max_in_flight": 2,
                                          "operations": {"login": 1, "multiCall": 4}}
