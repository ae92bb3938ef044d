"""The CSV source: every format, with continuation rows straddling tiny batches."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.csv_export import EE_ADDRESS_HEADER, EE_MAIN_HEADER
from magsync.extract.csv_source import CsvSource
from magsync.transform.prepare import prepare
from magsync.transform.schema import KEY_COL
from tests.csvbuild import CE_HEADER, address_fields, continuation, customer_row, write_csv

GENDERS = {"Male": 1, "Female": 2}


def read(path: Path, batch_size: int) -> dict[str, pd.DataFrame]:
    """Every prepared batch of the source, concatenated per entity; faults under 'faults'."""
    frames: dict[str, list[pd.DataFrame]] = {}
    faults = []
    for raw in CsvSource(path, batch_size=batch_size, website_codes={"base": 1, "eu": 2},
                         block_bytes=64):
        prepared = prepare(raw, GENDERS)
        frames.setdefault(raw.entity.name, []).append(prepared.frame)
        faults.extend(prepared.faults)
    out = {k: pd.concat(v, ignore_index=True) for k, v in frames.items()}
    out["faults"] = pd.DataFrame([f.to_dict() for f in faults])
    return out


def ce_file(tmp_path: Path, **kw: bool) -> Path:
    rows = [
        customer_row("ann@example.com", **address_fields(street="1 Main St\nApt 2")),
        continuation(street="2 Side St", city="Paris", country="fr"),
        continuation(street="3 Third St", city="Rome", country="IT"),
        customer_row("bob@example.com", first="Bøb"),
        customer_row("cy@example.com", website="eu", **address_fields(city="Berlin")),
        continuation(city="Bonn"),
    ]
    return write_csv(tmp_path / "export.csv", rows, **kw)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 100])
@pytest.mark.parametrize("variant", [{}, {"bom": True}, {"crlf": True}])
def test_ce_one_file(tmp_path: Path, batch_size: int, variant: dict[str, bool]) -> None:
    out = read(ce_file(tmp_path, **variant), batch_size)
    customers, addresses = out["customer"], out["address"]
    assert customers[KEY_COL].tolist() == ['[1,"ann@example.com"]', '[1,"bob@example.com"]',
                                           '[2,"cy@example.com"]']
    assert customers["firstname"].tolist() == ["Ann", "Bøb", "Ann"]
    got = list(zip(addresses["customer_key"], addresses["ordinal"], addresses["city"],
                   strict=True))
    assert got == [('[1,"ann@example.com"]', 1, "London"), ('[1,"ann@example.com"]', 2, "Paris"),
                   ('[1,"ann@example.com"]', 3, "Rome"), ('[2,"cy@example.com"]', 1, "Berlin"),
                   ('[2,"cy@example.com"]', 2, "Bonn")]
    assert addresses["street"].iloc[0] == "1 Main St\nApt 2"
    assert addresses["country_id"].iloc[1] == "FR"
    assert addresses["_line"].tolist() == [2, 4, 5, 7, 8]
    assert out["faults"].empty


def test_extension_columns_kept_in_extra(tmp_path: Path) -> None:
    header = [*CE_HEADER, "loyalty_tier", "_address_floor"]
    rows = [[*customer_row("a@x.com", **address_fields()), "gold", "3"],
            [*customer_row("b@x.com"), "", ""]]
    out = read(write_csv(tmp_path / "x.csv", rows, header), 1)
    assert out["customer"]["extra"].tolist()[0] == '{"loyalty_tier":"gold"}'
    assert pd.isna(out["customer"]["extra"].iloc[1])
    assert out["address"]["extra"].tolist() == ['{"_address_floor":"3"}']


def test_continuation_after_an_unreadable_customer_is_orphaned(tmp_path: Path) -> None:
    bad = customer_row("bad@x.com")[:-1]  # wrong field count
    rows = [customer_row("a@x.com", **address_fields()), bad, continuation(city="Nowhere"),
            customer_row("c@x.com"), continuation(city="Lyon")]
    out = read(write_csv(tmp_path / "x.csv", rows), 2)
    faults = out["faults"].sort_values("source_line")
    assert list(zip(faults["rule"], faults["source_line"], strict=True)) == [
        ("field_count", 3), ("orphan_address", 4)]
    assert out["address"]["city"].tolist() == ["London", "Lyon"]


def test_ee_two_files(tmp_path: Path) -> None:
    main = [dict.fromkeys(EE_MAIN_HEADER, "") | {
        "email": e, "_website": "base", "website_id": "1", "firstname": "A", "lastname": "B",
        "created_at": "2020-01-01 00:00:00"} for e in ("a@x.com", "b@x.com")]
    write_csv(tmp_path / "customers.csv", [list(r.values()) for r in main], EE_MAIN_HEADER)
    addr = [dict.fromkeys(EE_ADDRESS_HEADER, "") | {
        "_website": "base", "_email": e, "_entity_id": i, "street": "S", "city": "C",
        "country_id": "de", "postcode": "1", "telephone": "2"}
        for e, i in (("a@x.com", "10"), ("b@x.com", "11"), ("A@X.com", "12"))]
    write_csv(tmp_path / "addresses.csv", [list(r.values()) for r in addr], EE_ADDRESS_HEADER)
    out = read(tmp_path, 1)
    assert out["customer"][KEY_COL].tolist() == ['[1,"a@x.com"]', '[1,"b@x.com"]']
    assert out["address"][KEY_COL].tolist() == ["[10]", "[11]", "[12]"]
    assert out["address"]["customer_key"].tolist() == ['[1,"a@x.com"]', '[1,"b@x.com"]',
                                                       '[1,"a@x.com"]']


def test_canonical_files(tmp_path: Path) -> None:
    (tmp_path / "groups.csv").write_text("customer_group_id,customer_group_code\n1,General\n")
    (tmp_path / "customers.csv").write_text(
        "customer_id,website_id,email,firstname,lastname\n5,1,a@x.com,A,B\n")
    (tmp_path / "addresses.csv").write_text(
        "customer_address_id,customer_id,street,city,country_id,postcode,telephone\n"
        "9,5,S,C,NL,1,2\n")
    out = read(tmp_path, 2)
    assert out["group"][KEY_COL].tolist() == ["[1]"]
    assert out["customer"][KEY_COL].tolist() == ["[5]"]
    assert out["address"]["customer_key"].tolist() == ["[5]"]
    assert out["address"][KEY_COL].tolist() == ["[9]"]
