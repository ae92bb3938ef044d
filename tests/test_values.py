"""Values a target cannot hold, codes that disagree, duplicates, and the records balance:
faults on every dialect, never a crash, never a wrong row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from magsync.transform.codes import StoreCodes
from magsync.transform.schema import ADDRESS, CUSTOMER, KEY_COL, LINE_COL, SOURCE_COL
from magsync.transform.storable import unstorable
from tests.csvbuild import address_fields, continuation, customer_row, write_csv
from tests.synchelp import records, sync

LONG = "x" * 256


def s(*values: str | None) -> pd.Series:
    return pd.Series(list(values), dtype="str")


def test_unstorable_values_fault_with_rule_and_column() -> None:
    frame = pd.DataFrame({
        "firstname": s("Ann\x00", "Bob", "Cy\tD", None),
        "lastname": s("Smith", LONG, "Ok", "é" * 255),  # 255 characters, 510 bytes: fits
        "password_hash": s(None, None, None, "h\x1b"),
        KEY_COL: s("[1]", "[2]", "[3]", "[4]"),
        SOURCE_COL: s("in.csv", "in.csv", "in.csv", "in.csv"),
        LINE_COL: pd.Series([2, 3, 4, 5]),
    })
    found = unstorable(CUSTOMER, frame)
    got = {label: [(f.rule, f.column, f.value) for f in faults]
           for label, faults in found.items()}
    assert got == {0: [("control_character", "firstname", "Ann\\x00")],  # storable itself
                   1: [("too_long", "lastname", LONG[:200] + "…")],
                   2: [("control_character", "firstname", "Cy\tD")],
                   3: [("control_character", "password_hash", "<redacted>")]}
    assert "U+0000" in found[0][0].message and found[1][0].source_line == 3


def test_street_may_span_lines_but_holds_no_other_control_character() -> None:
    frame = pd.DataFrame({"street": s("1 Main St\nApt 2\tleft", "1 Main\x07St", "y" * 70_000),
                          "city": s("London\n", "Leeds", "York")})
    found = unstorable(ADDRESS, frame)
    assert {label: [(f.rule, f.column) for f in faults] for label, faults in found.items()} == {
        0: [("control_character", "city")], 1: [("control_character", "street")],
        2: [("too_long", "street")]}


def customers(rows: list[tuple[str | None, str | None, str | None, str | None]]) -> pd.DataFrame:
    """(website_code, website_id, store_code, store_id) per row, as normalise types them."""
    out = pd.DataFrame({
        "website_code": s(*(r[0] for r in rows)), "store_code": s(*(r[2] for r in rows)),
        "website_id": pd.Series([r[1] for r in rows], dtype="Int64"),
        "store_id": pd.Series([r[3] for r in rows], dtype="Int64"),
    })
    out[KEY_COL] = [f"[{i}]" for i in range(len(rows))]
    return out


def test_codes_must_be_known_and_agree_with_their_ids() -> None:
    codes = StoreCodes.given({"admin": 0, "base": 1})
    first = customers([("base", "1", "default", "1"), ("base", "2", "default", "1"),
                       ("shop", "2", "fr", "3"), ("nowhere", None, "default", "1"),
                       ("typo", "1", "default", "4"), (None, "1", None, None)])
    got = {label: sorted(f.rule for f in faults)
           for label, faults in codes.check(first).items()}
    assert got == {1: ["website_mismatch"], 3: ["unknown_website_code"],
                   4: ["store_mismatch", "unknown_website_code"]}
    later = customers([("shop", "2", "fr", "3"), ("shop", "3", "default", "3")])
    got = {label: sorted(f.rule for f in faults)
           for label, faults in codes.check(later).items()}
    assert got == {1: ["store_mismatch", "website_mismatch"]}, "pairs learned earlier hold"


def bad_file(path: Path) -> tuple[Path, set[tuple[str, str, str | None, int]]]:
    """One faulty record of each kind among good ones; the faults expected, by line."""
    rows: list[list[str]] = []
    expected: set[tuple[str, str, str | None, int]] = set()

    def add(row: list[str], *fault: tuple[str, str, str | None]) -> None:
        rows.append(row)
        expected.update((*f, len(rows) + 1) for f in fault)

    add(customer_row("nul@example.com", first="An\x00n", **address_fields()),
        ("customer", "control_character", "firstname"),
        ("address", "customer_faulted", "customer_key"))
    add(customer_row(("a" * 250) + "@example.com"), ("customer", "too_long", "email"))
    add(customer_row("long@example.com", last="L" * 300), ("customer", "too_long", "lastname"))
    add(customer_row("city@example.com", **address_fields(city="Lon\x01don")),
        ("address", "control_character", "city"))
    add(customer_row("mismatch@example.com", website_id="2"),
        ("customer", "website_mismatch", "website_code"))
    add(customer_row("unknown@example.com", website="nowhere", website_id=""),
        ("customer", "unknown_website_code", "website_code"),
        ("customer", "missing_key", "email"))
    add(customer_row("store@example.com", _store="default", store_id="7"),
        ("customer", "store_mismatch", "store_code"))
    add(customer_row("zero@example.com", dob="0000-00-00 00:00:00"))
    # A customer listed twice: the later record wins with its one address; the earlier
    # record and both of its addresses fault as duplicates.
    add(customer_row("dup@example.com", first="Early", **address_fields(city="Old1")),
        ("customer", "duplicate_key", None), ("address", "duplicate_key", None))
    add(continuation(city="Old2"), ("address", "duplicate_key", "customer_key"))
    add(customer_row("dup@example.com", first="Late", **address_fields(city="New1")))
    add(customer_row("good@example.com", **address_fields(street="1 Main St\nFlat 2")))
    return write_csv(path, rows), expected


def _table(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def test_bad_values_fault_identically_on_every_dialect(tmp_path: Path, target_url: str) -> None:
    src, expected = bad_file(tmp_path / "bad.csv")
    state, report = sync(src, tmp_path / "out", target={"url": target_url}, full=True,
                         max_fault_ratio=0.9)
    assert state.is_completed(), state.message
    faulted = [r for r in records(report) if r["action"] == "faulted"]
    got = {(r["entity"], r["rule"], r["column"], r["source_line"]) for r in faulted}
    assert got == expected
    assert report["counts"]["customer"] == {"created": 4, "faulted": 7}
    assert report["counts"]["address"] == {"created": 2, "faulted": 4}
    assert report["received"] == {"address": 6, "customer": 11, "group": 1}
    assert report["conservation"] == "ok"
    assert sorted(_table(target_url, "SELECT email, firstname FROM customers")) == [
        ("city@example.com", "Ann"), ("dup@example.com", "Late"),
        ("good@example.com", "Ann"), ("zero@example.com", "Ann")]
    assert _table(target_url, "SELECT dob FROM customers WHERE email = 'zero@example.com'") \
        == [(None,)]
    assert sorted(_table(target_url, "SELECT city, street FROM customer_addresses")) == [
        ("London", "1 Main St\nFlat 2"), ("New1", "1 Main St")]


def test_the_last_record_wins_across_validation_chunks(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = write_csv(tmp_path / "v1.csv", [customer_row("a@example.com", first="Stored"),
                                            customer_row("b@example.com")])
    state, _ = sync(first, out, full=True)
    assert state.is_completed(), state.message
    # The changed record is validated and staged in one chunk; the later record of the
    # same customer, equal to the stored row, comes in another chunk and must still win.
    later = write_csv(tmp_path / "v2.csv", [customer_row("a@example.com", first="Changed"),
                                            customer_row("b@example.com"),
                                            customer_row("a@example.com", first="Stored")])
    state, report = sync(later, out, batch_size=1, validation_chunk_rows=1)
    assert state.is_completed(), state.message
    url = f"sqlite:///{out / 'magsync.sqlite'}"
    assert _table(url, "SELECT firstname FROM customers WHERE email = 'a@example.com'") == [
        ("Stored",)]
    assert report["conservation"] == "ok"
    assert report["received"]["customer"] == 3
