"""End to end: real CSV files, a real SQLite store; two tests through the Prefect flow."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from tests.csvbuild import address_fields, continuation, customer_row, write_csv
from tests.synchelp import EXPORTS, active, db, dump, records, sync


def export_v1(path: Path) -> Path:
    rows = []
    for i in range(1, 21):
        rows.append(customer_row(f"c{i}@example.com", first=f"F{i}",
                                 **address_fields(city=f"City{i}")))
        if i % 3 == 0:
            rows.append(continuation(city=f"Second{i}"))
    return write_csv(path, rows)


def export_v2(path: Path) -> Path:
    """c2 renamed, c5 gets a new city, c7 and c8 gone, c21 new."""
    rows = []
    for i in [*range(1, 7), *range(9, 22)]:
        first = "Renamed" if i == 2 else f"F{i}"
        city = "Moved" if i == 5 else f"City{i}"
        rows.append(customer_row(f"c{i}@example.com", first=first,
                                 **address_fields(city=city)))
        if i % 3 == 0:
            rows.append(continuation(city=f"Second{i}"))
    return write_csv(path, rows)


def actions(report: dict) -> set[tuple[str, str, str]]:
    return {(r["entity"], r["action"], r["key"]) for r in records(report)}


@pytest.mark.usefixtures("prefect_harness")  # the real flow: a completed State
def test_edits_removals_additions_exactly(tmp_path: Path) -> None:
    out = tmp_path / "out"
    state, first = sync(export_v1(tmp_path / "v1.csv"), out, full=True, batch_size=4, tracked=True)
    assert state.is_completed(), state.message
    assert first["counts"]["customer"] == {"created": 20}
    assert first["counts"]["address"] == {"created": 26}

    v2 = export_v2(tmp_path / "v2.csv")
    state, second = sync(v2, out, batch_size=4, allow_mass_delete=True, tracked=True)
    assert state.is_completed(), state.message
    assert "deleted" not in second["counts"]["customer"]  # no deletion without --full
    state, third = sync(v2, out, full=True, batch_size=3, allow_mass_delete=True, tracked=True)
    assert state.is_completed(), state.message
    got = actions(third)
    assert {a for a in actions(second) if a[1] == "created"} == {
        ("customer", "created", '[1,"c21@example.com"]'),
        ("address", "created", '[[1,"c21@example.com"],1]'),
        ("address", "created", '[[1,"c21@example.com"],2]')}
    assert got == {
        ("customer", "deleted", '[1,"c7@example.com"]'),
        ("customer", "deleted", '[1,"c8@example.com"]'),
        ("address", "deleted", '[[1,"c7@example.com"],1]'),
        ("address", "deleted", '[[1,"c8@example.com"],1]'),
    }, "the incremental run before it already applied the edits and the addition"
    updated = {(r["key"], r["changed_fields"]) for r in records(second)
               if r["action"] == "updated"}
    assert updated == {('[1,"c2@example.com"]', "firstname"),
                       ('[[1,"c5@example.com"],1]', "city")}
    assert '[1,"c7@example.com"]' not in active(out, "customers")
    with db(out) as conn:  # soft delete keeps the row, and takes the addresses along
        assert conn.execute("SELECT count(*) FROM customer_addresses WHERE deleted_at IS "
                            "NOT NULL").fetchone() == (2,)


def test_rerun_unchanged_and_restore(tmp_path: Path) -> None:
    out = tmp_path / "out"
    v1 = export_v1(tmp_path / "v1.csv")
    sync(v1, out, full=True)
    _, again = sync(v1, out, full=True)
    assert again["counts"]["customer"] == {"unchanged": 20}
    assert records(again) == []
    sync(export_v2(tmp_path / "v2.csv"), out, full=True, allow_mass_delete=True)
    _, back = sync(v1, out, full=True, allow_mass_delete=True)
    restored = {r["key"] for r in records(back) if r["action"] == "restored"}
    assert '[1,"c7@example.com"]' in restored
    assert '[1,"c7@example.com"]' in active(out, "customers")


def test_hard_delete_removes_rows(tmp_path: Path) -> None:
    out = tmp_path / "out"
    state, first = sync(export_v1(tmp_path / "v1.csv"), out, full=True)
    assert state.is_completed(), state.message
    assert first["counts"]["customer"] == {"created": 20}
    state, second = sync(export_v2(tmp_path / "v2.csv"), out, full=True, hard_delete=True,
                         allow_mass_delete=True)
    assert state.is_completed(), state.message
    assert second["counts"]["customer"]["deleted"] == 2
    assert second["counts"]["address"]["deleted"] == 2
    with db(out) as conn:  # the rows are gone, not marked: no soft-deleted row is left
        emails = {e for (e,) in conn.execute("SELECT email FROM customers")}
        assert len(emails) == 19 and {"c1@example.com", "c21@example.com"} <= emails
        assert not emails & {"c7@example.com", "c8@example.com"}
        assert conn.execute("SELECT count(*) FROM customers WHERE deleted_at IS NOT NULL"
                            ).fetchone() == (0,)
        assert conn.execute("SELECT count(*), count(deleted_at) FROM customer_addresses"
                            ).fetchone() == (26, 0)


def test_stored_customer_whose_row_now_fails_stays_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sync(export_v1(tmp_path / "v1.csv"), out, full=True)
    before = dump(out)
    rows = [customer_row(f"c{i}@example.com", first=f"F{i}", **address_fields(city=f"City{i}"))
            if i != 4 else customer_row("c4@example.com", first="F4", dob="1985-13-45 00:00:00",
                                        **address_fields(city="City4"))
            for i in range(1, 21)]
    for i in (3, 6, 9, 12, 15, 18):  # keep their second addresses in place
        rows.insert(rows.index(customer_row(f"c{i}@example.com", first=f"F{i}",
                                            **address_fields(city=f"City{i}"))) + 1,
                    continuation(city=f"Second{i}"))
    state, report = sync(write_csv(tmp_path / "bad.csv", rows), out, full=True,
                         max_fault_ratio=0.5)
    assert state.is_completed(), state.message
    faulted = [r for r in records(report) if r["action"] == "faulted"]
    assert {(r["key"], r["rule"]) for r in faulted if r["entity"] == "customer"} == {
        ('[1,"c4@example.com"]', "bad_date")}
    assert report["counts"]["customer"].get("deleted", 0) == 0
    after = dump(out)
    for table, rows in before.items():
        changed = set(after[table]) ^ set(rows)
        assert not changed, f"{table} changed: {sorted(changed, key=repr)[:4]}"


@pytest.mark.usefixtures("prefect_harness")  # the real flow: a Failed State
def test_guards_refuse_when_the_offence_is_in_the_last_batch(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sync(export_v1(tmp_path / "v1.csv"), out, full=True)
    before = dump(out)
    rows = [customer_row(f"c{i}@example.com", first="Changed") for i in range(1, 21)]
    rows += [customer_row(f"bad{i}@example.com", dob="never") for i in range(5)]
    state, report = sync(write_csv(tmp_path / "faults.csv", rows), out, full=True,
                         batch_size=2, tracked=True)
    assert state.is_failed()
    assert "fault ratio" in state.message
    assert report["exit_code"] == 1 and report["status"] == "refused"
    assert dump(out) == before

    few = write_csv(tmp_path / "few.csv", [customer_row(f"c{i}@example.com", first=f"F{i}")
                                           for i in range(1, 15)])
    state, report = sync(few, out, full=True, batch_size=2, tracked=True)
    assert state.is_failed() and "--allow-mass-delete" in state.message
    assert dump(out) == before


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sync(export_v1(tmp_path / "v1.csv"), out, full=True)
    dbfile = out / "magsync.sqlite"
    before = hashlib.sha256(dbfile.read_bytes()).hexdigest()
    tables = dump(out, ("customers", "customer_addresses", "customer_groups", "magsync_runs",
                        "magsync_state", "magsync_faults"))
    exports = {p: p.stat().st_mtime_ns for p in (out / EXPORTS).iterdir()}
    state, report = sync(export_v2(tmp_path / "v2.csv"), out, full=True, dry_run=True,
                         allow_mass_delete=True)
    assert state.is_completed() and report["status"] == "dry-run"
    assert report["counts"]["customer"]["deleted"] == 2
    assert hashlib.sha256(dbfile.read_bytes()).hexdigest() == before
    assert dump(out, tuple(tables)) == tables
    assert {p: p.stat().st_mtime_ns for p in (out / EXPORTS).iterdir()} == exports


def test_dry_run_on_a_new_target_creates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    state, report = sync(export_v1(tmp_path / "v1.csv"), out, dry_run=True)
    assert state.is_completed(), state.message
    assert report["counts"]["customer"] == {"created": 20}
    assert not (out / "magsync.sqlite").exists()
    assert not (out / EXPORTS).exists()


def test_parquet_exports_typed_and_without_secrets(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rows = [customer_row("a@example.com", password_hash="SENTINEL:hash", rp_token="SENTINEL2",
                         dob="1980-02-03 00:00:00", **address_fields(
                             **{"_address_default_billing_": "1"}))]
    sync(write_csv(tmp_path / "s.csv", rows), out)
    con = duckdb.connect()
    exports = out / "exports" / "source=default"
    customers = con.execute(f"DESCRIBE SELECT * FROM '{exports}/customers.parquet'").fetchall()
    types = {name: kind for name, kind, *_ in customers}
    assert types["customer_id"] == "BIGINT"
    assert types["created_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["dob"] == "DATE"
    assert types["disable_auto_group_change"] == "BOOLEAN"
    assert not {"password_hash", "rp_token", "confirmation", "password"} & set(types)
    row = con.execute(f"SELECT email, dob, created_at FROM '{exports}/customers.parquet'"
                      ).fetchone()
    assert str(row[1]) == "1980-02-03"
    addr = con.execute("SELECT is_default_billing, postcode FROM "
                       f"'{exports}/customer_addresses.parquet'").fetchone()
    assert addr == (True, "06612")
