"""Validation in the pipeline: each planted rule faults its record, the rest load."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.csvbuild import address_fields, continuation, customer_row, write_csv
from tests.synchelp import active, dump, records, sync

SUITES = Path(__file__).resolve().parent.parent / "expectations"
ROOT = SUITES.parent

PLANTED = [  # (row builder, entity, rule, physical line of the record)
    (lambda: customer_row("not-an-email", **address_fields()), "customer", "email_syntax"),
    (lambda: customer_row("nofirst@example.com", first=""), "customer", "firstname_required"),
    (lambda: customer_row("future@example.com", dob="2999-01-01 00:00:00"), "customer",
     "dob_not_future"),
    (lambda: customer_row("old@example.com", created_at="2001-05-05 10:00:00"), "customer",
     "created_at_range"),
    (lambda: customer_row("gender@example.com", gender="Divers"), "customer", "unknown_gender"),
    (lambda: customer_row("country@example.com", **address_fields(country="XX")), "address",
     "country_code"),
    (lambda: customer_row("nocity@example.com", **address_fields(city="")), "address",
     "city_required"),
    (lambda: customer_row("group@example.com", group_id="99"), "customer", "unknown_group"),
]


def planted_file(tmp: Path) -> tuple[Path, list[tuple[str, str, int]]]:
    """Good customers around one planted fault per rule; returns the expected faults."""
    rows, expected = [], []
    for i, (build, entity, rule) in enumerate(PLANTED):
        rows.append(customer_row(f"good{i}@example.com", **address_fields()))
        rows.append(continuation(city=f"Second{i}"))
        expected.append((entity, rule, len(rows) + 2))  # header is line 1
        rows.append(build())
    rows.append(customer_row("dup@example.com", first="First"))
    expected.append(("customer", "duplicate_key", len(rows) + 1))
    rows.append(customer_row("dup@example.com", first="Last"))
    folder = tmp / "in"
    folder.mkdir()
    write_csv(folder / "customers.csv", rows)
    (folder / "groups.csv").write_text("customer_group_id,customer_group_code\n1,General\n")
    return folder, expected


def faulted(report: dict) -> set[tuple[str, str, int]]:
    return {(r["entity"], r["rule"], r["source_line"]) for r in records(report)
            if r["action"] == "faulted" and r["rule"] != "customer_faulted"}


def test_each_rule_faults_its_record_and_the_rest_loads(tmp_path: Path) -> None:
    src, expected = planted_file(tmp_path)
    out = tmp_path / "out"
    state, report = sync(src, out, max_fault_ratio=0.9, validation_chunk_rows=7)
    assert state.is_completed(), state.message
    assert faulted(report) == set(expected)
    assert {f"good{i}@example.com" for i in range(len(PLANTED))} <= active(
        out, "customers", "email")
    assert len(active(out, "customer_addresses")) == 2 * len(PLANTED)
    assert "Last" in active(out, "customers", "firstname")  # the later duplicate won
    assert "not-an-email" not in active(out, "customers", "email")
    assert report["data_docs"] and Path(report["data_docs"]).exists()
    by_rule = {r["rule"]: r for r in records(report) if r["action"] == "faulted"}
    assert by_rule["email_syntax"]["column"] == "email"
    assert by_rule["email_syntax"]["value"] == "not-an-email"


def test_editing_a_suite_changes_the_outcome(tmp_path: Path) -> None:
    suites = tmp_path / "suites"
    shutil.copytree(SUITES, suites)
    data = json.loads((suites / "customer.json").read_text())
    data["expectations"] = [e for e in data["expectations"]
                            if e.get("meta", {}).get("rule") != "email_syntax"]
    (suites / "customer.json").write_text(json.dumps(data))
    src, _ = planted_file(tmp_path)
    out = tmp_path / "out"
    state, report = sync(src, out, max_fault_ratio=0.9, expectations_dir=str(suites))
    assert state.is_completed(), state.message
    assert "email_syntax" not in {rule for _, rule, _ in faulted(report)}
    assert "not-an-email" in active(out, "customers", "email")


def test_fault_guard_when_the_bad_rows_are_all_in_the_last_chunk(tmp_path: Path) -> None:
    out = tmp_path / "out"
    good = [customer_row(f"c{i}@example.com") for i in range(20)]
    sync(write_csv(tmp_path / "v1.csv", good), out, full=True)
    before = dump(out)
    bad = [customer_row(f"c{i}@example.com", first="Edited") for i in range(20)]
    bad += [customer_row(f"broken{i}") for i in range(4)]  # email_syntax, validated last
    state, report = sync(write_csv(tmp_path / "v2.csv", bad), out, full=True, batch_size=2,
                         validation_chunk_rows=4)
    assert state.is_failed() and "fault ratio" in state.message
    assert report["counts"]["customer"]["faulted"] == 4
    assert dump(out) == before


def test_secrets_never_reach_data_docs(tmp_path: Path) -> None:
    sentinel = "SENTINELDOCS0099"
    rows = [customer_row("bad-email", password_hash=f"{sentinel}:salt", rp_token=sentinel,
                         confirmation=sentinel, **address_fields(country="ZZ")),
            customer_row("ok@example.com", password_hash=f"{sentinel}:s")]
    out = tmp_path / "out"
    state, report = sync(write_csv(tmp_path / "s.csv", rows), out, max_fault_ratio=1.0)
    assert state.is_completed(), state.message
    docs = Path(report["data_docs"]).parent
    files = [p for p in docs.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert sentinel.encode() not in path.read_bytes(), path


def test_faults_command_and_clearing_by_a_corrected_record(tmp_path: Path) -> None:
    out = tmp_path / "out"
    broken = [customer_row("a@example.com"), customer_row("b@example.com", dob="nope")]
    sync(write_csv(tmp_path / "v1.csv", broken), out, max_fault_ratio=0.9)
    listed = subprocess.run([str(ROOT / ".venv" / "bin" / "magsync"), "faults",
                             "--output-dir", str(out)], capture_output=True, text=True,
                            check=True, cwd=ROOT)
    assert '[1,"b@example.com"]\tbad_date\tdob\tnope' in listed.stdout
    fixed = [customer_row("a@example.com"), customer_row("b@example.com")]
    _, report = sync(write_csv(tmp_path / "v2.csv", fixed), out)
    assert any("cleared" in note for note in report["notes"])
    listed = subprocess.run([str(ROOT / ".venv" / "bin" / "magsync"), "faults",
                             "--output-dir", str(out)], capture_output=True, text=True,
                            check=True, cwd=ROOT)
    assert "b@example.com" not in listed.stdout


def test_rerun_tells_corrected_faults_from_ones_faulted_again(tmp_path: Path) -> None:
    out = tmp_path / "out"
    broken = [customer_row("a@example.com"), customer_row("b@example.com", dob="nope"),
              customer_row("c@example.com", dob="never")]
    src = write_csv(tmp_path / "v1.csv", broken)
    sync(src, out, max_fault_ratio=0.9, full=True)
    _, again = sync(src, out, max_fault_ratio=0.9, full=True)  # identical: nothing corrected
    assert not [n for n in again["notes"] if "corrected" in n], again["notes"]
    assert "2 earlier fault(s) superseded: their records faulted again in this run" \
        in again["notes"]
    half = [customer_row("a@example.com"), customer_row("b@example.com"),
            customer_row("c@example.com", dob="never")]
    _, fixed = sync(write_csv(tmp_path / "v2.csv", half), out, max_fault_ratio=0.9, full=True)
    assert "1 earlier fault(s) cleared by corrected records" in fixed["notes"]
    assert "1 earlier fault(s) superseded: their records faulted again in this run" \
        in fixed["notes"]
