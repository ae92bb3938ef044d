"""The synthetic Magento data set, its CSV export writers, the sample and the bench generator."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench.csv_export import (
    CE_HEADER,
    EE_ADDRESS_HEADER,
    EE_MAIN_HEADER,
    write_ce_export,
    write_ee_export,
)
from magsync.magento.dataset import (
    BASE_END,
    BASE_START,
    CHANGED_END,
    CHANGED_START,
    GROUPS,
    iter_customers,
    iter_customers_changed,
)

ROOT = Path(__file__).resolve().parents[1]

# Copied from MAGENTO.md ("exactly as a real store wrote it" / Magento's attribute reference).
CE_HEADER_TEXT = (
    "email,_website,_store,website_id,store_id,created_in,prefix,firstname,middlename,lastname,"
    "suffix,group_id,dob,password_hash,taxvat,confirmation,created_at,gender,rp_token,"
    "rp_token_created_at,disable_auto_group_change,password_created_at,rp_customer_id,password,"
    "_address_prefix,_address_firstname,_address_middlename,_address_lastname,_address_suffix,"
    "_address_company,_address_street,_address_city,_address_country_id,_address_region,"
    "_address_postcode,_address_telephone,_address_fax,_address_vat_id,"
    "_address_default_billing_,_address_default_shipping_"
)
EE_MAIN_TEXT = (
    "email,_website,_store,confirmation,created_at,created_in,disable_auto_group_change,dob,"
    "firstname,gender,group_id,lastname,middlename,password_hash,prefix,rp_token,"
    "rp_token_created_at,store_id,suffix,taxvat,website_id,password"
)
EE_ADDRESS_TEXT = (
    "_website,_email,_entity_id,city,company,country_id,fax,firstname,lastname,middlename,"
    "postcode,prefix,region,region_id,street,suffix,telephone,vat_id,vat_is_valid,"
    "vat_request_date,vat_request_id,vat_request_success,_address_default_billing_,"
    "_address_default_shipping_"
)
CUSTOMER_KEYS = {
    "customer_id", "created_at", "updated_at", "store_id", "website_id", "created_in",
    "firstname", "lastname", "email", "group_id", "disable_auto_group_change",
}
CUSTOMER_OPTIONAL = {
    "middlename", "prefix", "suffix", "dob", "taxvat", "gender", "default_billing",
    "default_shipping", "confirmation", "password_hash",
}
ADDRESS_KEYS = {
    "customer_address_id", "created_at", "updated_at", "firstname", "lastname", "street",
    "city", "country_id", "postcode", "telephone", "is_default_billing", "is_default_shipping",
}
ADDRESS_OPTIONAL = {
    "region", "region_id", "company", "fax", "middlename", "prefix", "suffix", "vat_id",
}
TS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
HASH = re.compile(r"^([0-9a-f]{64}:[A-Za-z0-9]{32}|[0-9a-f]{32}:[A-Za-z0-9]{2})$")


@pytest.fixture(scope="module")
def records() -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """A few thousand customers, enough for the ratios to show."""
    return list(iter_customers(3000))


def read_csv(path: Path) -> list[list[str]]:
    """All records of a CSV file, header included."""
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_prefix_is_stable_whatever_n() -> None:
    assert list(iter_customers(40)) == list(iter_customers(300))[:40]
    assert list(iter_customers(40, seed=7)) != list(iter_customers(40))


def test_start_id_offsets_customer_and_address_ids() -> None:
    stream = list(iter_customers(20, start_id=1001))
    assert [c["customer_id"] for c, _ in stream] == list(range(1001, 1021))
    address_ids = [a["customer_address_id"] for _, addresses in stream for a in addresses]
    assert address_ids == list(range(3001, 3001 + len(address_ids)))


def test_customer_shapes(records: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
    for c, addresses in records:
        assert CUSTOMER_KEYS <= c.keys() <= CUSTOMER_KEYS | CUSTOMER_OPTIONAL
        assert None not in c.values()
        assert BASE_START <= c["created_at"] <= c["updated_at"] <= BASE_END
        assert TS.match(c["created_at"]) and TS.match(c["updated_at"])
        assert (c["website_id"], c["store_id"]) in {(1, 1), (2, 2)}
        assert 1 <= c["group_id"] <= 6
        assert c.get("gender", 1) in {1, 2}
        assert re.match(r"^\d{4}-\d\d-\d\d 00:00:00$", c.get("dob", "2000-01-01 00:00:00"))
        assert HASH.match(c.get("password_hash", "0" * 32 + ":ab"))
        ids = {a["customer_address_id"] for a in addresses}
        assert c.get("default_billing", min(ids, default=0)) in ids | {0}
        for a in addresses:
            assert ADDRESS_KEYS <= a.keys() <= ADDRESS_KEYS | ADDRESS_OPTIONAL
            assert isinstance(a["postcode"], str)
            is_billing = c.get("default_billing") == a["customer_address_id"]
            assert a["is_default_billing"] is is_billing
            is_shipping = c.get("default_shipping") == a["customer_address_id"]
            assert a["is_default_shipping"] is is_shipping


def test_data_set_mix(records: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
    n = len(records)
    address_ids = [a["customer_address_id"] for _, addresses in records for a in addresses]
    assert address_ids == sorted(set(address_ids))
    assert 1.7 < len(address_ids) / n < 2.1
    per_site = Counter((c["email"].lower(), c["website_id"]) for c, _ in records)
    assert max(per_site.values()) == 1
    per_email = Counter(c["email"].lower() for c, _ in records)
    assert 0.03 < sum(v == 2 for v in per_email.values()) / len(per_email) < 0.07
    unicode_names = sum(not (c["firstname"] + c["lastname"]).isascii() for c, _ in records)
    assert 0.06 < unicode_names / n < 0.14
    streets = [a["street"] for _, addresses in records for a in addresses]
    assert any("\n" in s for s in streets)
    assert any(a["postcode"].startswith("0") for _, adr in records for a in adr)
    assert any("&" in a.get("company", "") for _, adr in records for a in adr)
    assert any("+" in c["email"] for c, _ in records)


def test_groups_match_the_recorded_store() -> None:
    assert [g["customer_group_id"] for g in GROUPS] == list(range(7))
    assert GROUPS[4]["customer_group_code"] == "VIP Ünïcode Kunden"
    assert GROUPS[6]["customer_group_code"] == "Staff & Friends <test>"


def test_ce_header_is_exact(tmp_path: Path) -> None:
    assert ",".join(CE_HEADER) == CE_HEADER_TEXT
    assert ",".join(EE_MAIN_HEADER) == EE_MAIN_TEXT
    assert ",".join(EE_ADDRESS_HEADER) == EE_ADDRESS_TEXT
    path = tmp_path / "c.csv"
    write_ce_export(path, iter_customers(3))
    assert path.read_bytes().split(b"\n", 1)[0] == CE_HEADER_TEXT.encode()


def test_ce_rows_and_continuations(
    tmp_path: Path, records: list[tuple[dict[str, Any], list[dict[str, Any]]]]
) -> None:
    sample = records[:300]
    path = tmp_path / "c.csv"
    written = write_ce_export(path, sample)
    header, *rows = read_csv(path)
    assert written == len(rows) == sum(max(1, len(a)) for _, a in sample)
    col = {name: i for i, name in enumerate(header)}
    split = col["_address_prefix"]
    it = iter(rows)
    for c, addresses in sample:
        main = next(it)
        assert main[col["email"]] == c["email"]
        assert main[col["_website"]] == {1: "base", 2: "eu"}[c["website_id"]]
        assert main[col["_store"]] == {1: "default", 2: "eu_en"}[c["store_id"]]
        assert main[col["created_at"]] == c["created_at"]
        assert main[col["dob"]] == c.get("dob", "")
        assert main[col["password_hash"]] == c.get("password_hash", "")
        assert main[col["password"]] == ""
        assert main[col["gender"]] == {1: "Male", 2: "Female", None: ""}[c.get("gender")]
        lines = [main] + [next(it) for _ in addresses[1:]]
        for row in lines[1:]:
            assert row[:split] == [""] * split
        for row, a in zip(lines, addresses, strict=False):
            assert row[col["_address_street"]] == a["street"]
            assert row[col["_address_postcode"]] == a["postcode"]
            assert row[col["_address_default_billing_"]] == ("1" if a["is_default_billing"] else "")
        if not addresses:
            assert main[split:] == [""] * (len(header) - split)


def test_multiline_street_is_quoted(
    tmp_path: Path, records: list[tuple[dict[str, Any], list[dict[str, Any]]]]
) -> None:
    pick = next(r for r in records if any("\n" in a["street"] for a in r[1]))
    street = next(a["street"] for a in pick[1] if "\n" in a["street"])
    path = tmp_path / "c.csv"
    write_ce_export(path, [pick])
    assert f'"{street}"' in path.read_text(encoding="utf-8")
    streets = [r[CE_HEADER.index("_address_street")] for r in read_csv(path)[1:]]
    assert street in streets


def test_bom_crlf_and_gender_labels(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    people = [
        ({"customer_id": 1, "website_id": 1, "store_id": 1, "email": "a@example.com",
          "gender": 1}, [{"street": "1 A St\nApt 2", "is_default_billing": True}]),
        ({"customer_id": 2, "website_id": 2, "store_id": 2, "email": "b@example.com",
          "gender": 2}, []),
        ({"customer_id": 3, "website_id": 2, "store_id": 2, "email": "c@example.com",
          "gender": 3}, []),
        ({"customer_id": 4, "website_id": 1, "store_id": 1, "email": "d@example.com"}, []),
    ]
    write_ce_export(path, people, gender_labels={1: "Male", 2: "Female", 3: "Divers"},
                    bom=True, crlf=True)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and raw.count(b"\r\n") == 5
    assert b'"1 A St\nApt 2"' in raw
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(CE_HEADER)
    assert [r[CE_HEADER.index("gender")] for r in rows[1:]] == ["Male", "Female", "Divers", ""]


def test_extra_columns_are_appended(tmp_path: Path) -> None:
    stream = [(c | {"loyalty_tier": "gold"} if c["customer_id"] == 2 else c, a)
              for c, a in iter_customers(3)]
    path = tmp_path / "c.csv"
    write_ce_export(path, stream, extra_columns=("loyalty_tier",))
    header, *rows = read_csv(path)
    assert header[-1] == "loyalty_tier"
    assert {len(r) for r in rows} == {len(header)}
    assert [r[-1] for r in rows if r[0]] == ["", "gold", ""]


def test_ee_two_files_are_consistent(
    tmp_path: Path, records: list[tuple[dict[str, Any], list[dict[str, Any]]]]
) -> None:
    sample = records[:300]
    main_path, address_path = tmp_path / "main.csv", tmp_path / "addresses.csv"
    counts = write_ee_export(main_path, address_path, sample)
    main_header, *mains = read_csv(main_path)
    address_header, *addresses = read_csv(address_path)
    assert (main_header, address_header) == (list(EE_MAIN_HEADER), list(EE_ADDRESS_HEADER))
    assert counts == (len(mains), len(addresses)) == (300, sum(len(a) for _, a in sample))
    customers = {(r[1], r[0]) for r in mains}
    assert all((r[0], r[1]) in customers for r in addresses)
    by_id = {a["customer_address_id"]: a for _, adr in sample for a in adr}
    for r in addresses:
        a = by_id[int(r[2])]
        assert r[EE_ADDRESS_HEADER.index("street")] == a["street"]
        assert r[EE_ADDRESS_HEADER.index("region_id")] == str(a.get("region_id", ""))
    assert all(r[EE_MAIN_HEADER.index("password")] == "" for r in mains)


def test_changed_variant_ratios() -> None:
    n = 10_000
    base = {c["customer_id"]: (c, a) for c, a in iter_customers(n)}
    changed = {c["customer_id"]: (c, a) for c, a in iter_customers_changed(n)}
    deleted, added = base.keys() - changed.keys(), changed.keys() - base.keys()
    kept = base.keys() & changed.keys()
    edited = {k for k in kept if base[k][0] != changed[k][0]}
    edited_addresses = [
        (x, y) for k in kept for x, y in zip(base[k][1], changed[k][1], strict=True) if x != y
    ]
    assert 5 <= len(deleted) <= 45
    assert len(added) == 20 and min(added) == n + 1
    assert 60 <= len(edited) <= 150
    assert 100 <= len(edited_addresses) <= 300
    for k in edited:
        assert CHANGED_START <= changed[k][0]["updated_at"] <= CHANGED_END
    for x, y in edited_addresses:
        assert y["updated_at"] > BASE_END and x["customer_address_id"] == y["customer_address_id"]
    top = max(a["customer_address_id"] for _, adr in base.values() for a in adr)
    assert all(a["customer_address_id"] > top for k in added for a in changed[k][1])
    assert all(changed[k][0]["created_at"] >= CHANGED_START for k in added)
    per_site = Counter((c["email"].lower(), c["website_id"]) for c, _ in changed.values())
    assert max(per_site.values()) == 1
    assert list(iter_customers_changed(500)) == list(iter_customers_changed(500))


def test_sample_is_reproduced_byte_for_byte(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "data" / "make_sample.py"), "--out",
                    str(tmp_path)], check=True, capture_output=True)
    for name in ("customers.csv", "groups.csv", "README.md"):
        assert (tmp_path / name).read_bytes() == (ROOT / "data" / "sample" / name).read_bytes()
    rows = read_csv(tmp_path / "customers.csv")
    assert rows[0][-1] == "loyalty_tier"
    assert Counter(len(r) for r in rows) == {len(CE_HEADER) + 1: len(rows) - 1, len(CE_HEADER): 1}


def test_bench_generate_cli(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.generate", "--scale", "0.3k", "--out", str(tmp_path),
         "--changed"], cwd=ROOT, check=True, capture_output=True, text=True)
    assert "rows" in done.stdout
    rows = read_csv(tmp_path / "customers.csv")
    assert sum(1 for r in rows[1:] if r[0]) == 300
    assert (tmp_path / "customers_changed.csv").exists()
