"""Seed an EmulatorStore: a generated data set, or Magento CE customer export CSVs.

A CE one-file export has no entity ids and no updated_at: customers and addresses get ids
in file order (as a store that exported them in id order would have), updated_at is the
customer's created_at, and an address's timestamps are its customer's created_at. Values
are kept as written (stray spaces included); empty cells are nulls; the `password` column
is never read; unknown columns are ignored.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from magsync.magento.emulator.fields import GENDER_IDS
from magsync.magento.emulator.store import EmulatorStore

log = logging.getLogger(__name__)

_CUSTOMER_COLUMNS = (
    "email",
    "website_id",
    "store_id",
    "created_in",
    "prefix",
    "firstname",
    "middlename",
    "lastname",
    "suffix",
    "group_id",
    "dob",
    "password_hash",
    "taxvat",
    "confirmation",
    "created_at",
    "gender",
    "rp_token",
    "rp_token_created_at",
    "disable_auto_group_change",
    "password_created_at",
    "rp_customer_id",
)
_ADDRESS_COLUMNS = (
    "prefix",
    "firstname",
    "middlename",
    "lastname",
    "suffix",
    "company",
    "street",
    "city",
    "country_id",
    "region",
    "postcode",
    "telephone",
    "fax",
    "vat_id",
)
_INT_COLUMNS = frozenset(
    {
        "website_id",
        "store_id",
        "group_id",
        "disable_auto_group_change",
        "password_created_at",
        "rp_customer_id",
    }
)


def _codes() -> tuple[dict[str, int], dict[str, int]]:
    """Website and store codes (`_website`, `_store`) of the synthetic data set."""
    from magsync.magento.dataset import STORES, WEBSITES

    return {w.code: w.website_id for w in WEBSITES}, {s.code: s.store_id for s in STORES}


def generated_store(customers: int, seed: int = 42, **options: Any) -> EmulatorStore:
    """A store holding magento.dataset.iter_customers(customers, seed), with its groups."""
    from magsync.magento.dataset import GROUPS, STORES, iter_customers

    stores = {s.store_id: (s.website_id, s.name) for s in STORES}
    store = EmulatorStore(groups=GROUPS, stores=stores, **options)
    store.load(iter_customers(customers, seed=seed))
    return store


def load_data(store: EmulatorStore, data: Path) -> int:
    """Load a CE export file, or a folder of them (plus groups.csv); return customers read."""
    files = [data] if data.is_file() else sorted(data.glob("*.csv"))
    count = 0
    for path in files:
        if path.name == "groups.csv":
            store.groups = read_groups(path)
            continue
        count += load_ce_export(store, path)
    return count


def read_groups(path: Path) -> list[dict[str, Any]]:
    """Read `customer_group_id,customer_group_code` rows."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        return [
            {
                "customer_group_id": int(row["customer_group_id"]),
                "customer_group_code": row["customer_group_code"],
            }
            for row in csv.DictReader(f)
        ]


def load_ce_export(store: EmulatorStore, path: Path) -> int:
    """Load a Magento 1.9 CE / OpenMage one-file customer export; return customers loaded."""
    websites, stores = _codes()
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or "email" not in header or "_address_city" not in header:
            log.warning("skipping %s: not a Magento CE customer export", path)
            return 0
        count, customer_id = 0, None
        for line, cells in _rows(reader, header):
            if cells.get("email") is not None:
                record = _customer(cells, websites, stores, line, path)
                customer_id = store.put_customer(record)
                count += 1
            if customer_id is not None and _has_address(cells):
                created = store.customer(customer_id) or {}
                store.put_address(customer_id, _address(cells, created.get("created_at")))
    return count


def _rows(reader: Any, header: list[str]) -> Iterator[tuple[int, dict[str, str | None]]]:
    """Each record as {column: value or None}; a short row leaves its last columns null."""
    for cells in reader:
        values = {
            col: (cells[i] if i < len(cells) and cells[i] != "" else None)
            for i, col in enumerate(header)
        }
        yield reader.line_num, values


def _customer(
    cells: Mapping[str, str | None],
    websites: Mapping[str, int],
    stores: Mapping[str, int],
    line: int,
    path: Path,
) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for column in _CUSTOMER_COLUMNS:
        record[column] = (
            _int_or_none(cells.get(column), column, line, path)
            if column in _INT_COLUMNS
            else cells.get(column)
        )
    if record["website_id"] is None and cells.get("_website") is not None:
        record["website_id"] = websites.get(str(cells["_website"]).strip())
    if record["store_id"] is None and cells.get("_store") is not None:
        record["store_id"] = stores.get(str(cells["_store"]).strip())
    record["gender"] = _gender(cells.get("gender"), line, path)
    record["updated_at"] = record["created_at"]
    return record


def _address(cells: Mapping[str, str | None], created_at: Any) -> dict[str, Any]:
    record: dict[str, Any] = {c: cells.get(f"_address_{c}") for c in _ADDRESS_COLUMNS}
    record["created_at"] = record["updated_at"] = created_at
    record["is_default_billing"] = (cells.get("_address_default_billing_") or "").strip() == "1"
    record["is_default_shipping"] = (cells.get("_address_default_shipping_") or "").strip() == "1"
    return record


def _has_address(cells: Mapping[str, str | None]) -> bool:
    return any(cells.get(f"_address_{c}") is not None for c in _ADDRESS_COLUMNS)


def _int_or_none(value: str | None, column: str, line: int, path: Path) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        log.warning("%s line %d: %s %r is no integer; loaded as null", path, line, column, value)
        return None


def _gender(value: str | None, line: int, path: Path) -> int | None:
    """The export's gender label (Male, Female) or option id, as the option id."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return int(text)
    if text.casefold() in GENDER_IDS:
        return GENDER_IDS[text.casefold()]
    log.warning("%s line %d: unknown gender %r; loaded as null", path, line, value)
    return None
