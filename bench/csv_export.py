"""Writers of Magento's customer export CSV formats, streaming from (customer, addresses) pairs.

Input dicts use the SOAP key names of `magento.dataset`; the writers translate them to the
export columns (website and store codes, gender labels, `1`-or-empty default flags).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TextIO

from magsync.magento.dataset import STORE_CODES, WEBSITE_CODES, Address, Customer

PathLike = str | os.PathLike[str]
Record = tuple[Customer, list[Address]]

# Magento 1.9 CE / OpenMage one-file export, exactly as a real store wrote it.
CE_HEADER: tuple[str, ...] = (
    "email", "_website", "_store", "website_id", "store_id", "created_in", "prefix",
    "firstname", "middlename", "lastname", "suffix", "group_id", "dob", "password_hash",
    "taxvat", "confirmation", "created_at", "gender", "rp_token", "rp_token_created_at",
    "disable_auto_group_change", "password_created_at", "rp_customer_id", "password",
    "_address_prefix", "_address_firstname", "_address_middlename", "_address_lastname",
    "_address_suffix", "_address_company", "_address_street", "_address_city",
    "_address_country_id", "_address_region", "_address_postcode", "_address_telephone",
    "_address_fax", "_address_vat_id", "_address_default_billing_",
    "_address_default_shipping_",
)
# Magento EE / Magento 2 two-file export, per Magento's attribute reference.
EE_MAIN_HEADER: tuple[str, ...] = (
    "email", "_website", "_store", "confirmation", "created_at", "created_in",
    "disable_auto_group_change", "dob", "firstname", "gender", "group_id", "lastname",
    "middlename", "password_hash", "prefix", "rp_token", "rp_token_created_at", "store_id",
    "suffix", "taxvat", "website_id", "password",
)
EE_ADDRESS_HEADER: tuple[str, ...] = (
    "_website", "_email", "_entity_id", "city", "company", "country_id", "fax", "firstname",
    "lastname", "middlename", "postcode", "prefix", "region", "region_id", "street", "suffix",
    "telephone", "vat_id", "vat_is_valid", "vat_request_date", "vat_request_id",
    "vat_request_success", "_address_default_billing_", "_address_default_shipping_",
)
GENDER_LABELS: Mapping[int, str] = {1: "Male", 2: "Female"}

# Columns computed by the writer; every other column is the dict value of the same name.
# A key no dict can hold stands in for them, so the lookup below yields None (written '').
_COMPUTED = "\x00computed"
_CE_SPLIT = CE_HEADER.index("_address_prefix")
_CE_CUSTOMER_KEYS = tuple(
    _COMPUTED if col in {"_website", "_store", "gender", "password"} else col
    for col in CE_HEADER[:_CE_SPLIT]
)
_CE_ADDRESS_KEYS = tuple(
    _COMPUTED if col.endswith("_") else col.removeprefix("_address_")
    for col in CE_HEADER[_CE_SPLIT:]
)
_CE_EMPTY_CUSTOMER = [None] * _CE_SPLIT
_EE_MAIN_KEYS = tuple(
    _COMPUTED if col in {"_website", "_store", "gender", "password"} else col
    for col in EE_MAIN_HEADER
)
_EE_ADDRESS_KEYS = tuple(
    "customer_address_id" if col == "_entity_id"
    else _COMPUTED if col.startswith("_") or col.startswith("vat_")
    else col
    for col in EE_ADDRESS_HEADER
)


def _open(path: PathLike, bom: bool) -> TextIO:
    """Open a text file for csv writing, UTF-8 with or without a byte-order mark."""
    return open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="")


def _code_positions(header: Sequence[str]) -> tuple[int, int, int]:
    """Positions of _website, _store and gender in header."""
    return header.index("_website"), header.index("_store"), header.index("gender")


_CE_CODES_AT = _code_positions(CE_HEADER)
_EE_CODES_AT = _code_positions(EE_MAIN_HEADER)


def _set_codes(
    cells: list[Any], customer: Customer, labels: Mapping[int, str], at: tuple[int, int, int]
) -> None:
    """Fill the website and store codes and the gender label into a customer row."""
    cells[at[0]] = WEBSITE_CODES.get(customer["website_id"])
    cells[at[1]] = STORE_CODES.get(customer["store_id"])
    gender = customer.get("gender")
    cells[at[2]] = None if gender is None else labels.get(gender, gender)


def _ce_rows(
    rows: Iterable[Record], labels: Mapping[int, str], extra: Sequence[str], count: list[int],
    every_flag: bool = False,
) -> Iterator[list[Any]]:
    """Yield CE export rows: the customer with its first address, then continuations."""
    no_address = [None] * len(_CE_ADDRESS_KEYS)
    no_extra = [None] * len(extra)
    for customer, addresses in rows:
        get = customer.get
        cells = [get(k) for k in _CE_CUSTOMER_KEYS]
        _set_codes(cells, customer, labels, _CE_CODES_AT)
        tail = [get(k) for k in extra]
        if not addresses:
            count[0] += 1
            yield cells + no_address + tail
            continue
        for i, address in enumerate(addresses):
            count[0] += 1
            if i == 0:
                yield cells + _ce_address_cells(address, every_flag) + tail
            else:
                yield _CE_EMPTY_CUSTOMER + _ce_address_cells(address, every_flag) + no_extra


def _ce_address_cells(address: Address, every_flag: bool = False) -> list[Any]:
    """The CE address columns of one address. Like a real store's export, the shipping
    flag is written only on an address that is the default billing one too: a default
    shipping address of its own gets an empty `_address_default_shipping_` (unless
    `every_flag`)."""
    get = address.get
    cells = [get(k) for k in _CE_ADDRESS_KEYS]
    billing = bool(get("is_default_billing"))
    cells[-2] = 1 if billing else None
    cells[-1] = 1 if (billing or every_flag) and get("is_default_shipping") else None
    return cells


def write_ce_export(
    path: PathLike,
    rows: Iterable[Record],
    *,
    gender_labels: Mapping[int, str] = GENDER_LABELS,
    extra_columns: Sequence[str] = (),
    bom: bool = False,
    crlf: bool = False,
    every_shipping_flag: bool = False,
) -> int:
    """Write the Magento 1.9 CE / OpenMage one-file export; return the data rows written.
    `every_shipping_flag` writes the default-shipping flag a real export leaves out (the
    shape data/sample was written in)."""
    count = [0]  # a cell the row generator bumps, so writerows can run the loop in C
    with _open(path, bom) as f:
        writer = csv.writer(f, lineterminator="\r\n" if crlf else "\n")
        writer.writerow((*CE_HEADER, *extra_columns))
        writer.writerows(_ce_rows(rows, gender_labels, extra_columns, count,
                                  every_shipping_flag))
    return count[0]


def _ee_main_cells(
    customer: Customer, labels: Mapping[int, str], extra: Sequence[str]
) -> list[Any]:
    """The EE main-file row of one customer."""
    get = customer.get
    cells = [get(k) for k in _EE_MAIN_KEYS]
    _set_codes(cells, customer, labels, _EE_CODES_AT)
    return cells + [get(k) for k in extra]


def _ee_address_cells(customer: Customer, address: Address) -> list[Any]:
    """The EE address-file row of one address, naming its customer by website and email."""
    get = address.get
    cells = [get(k) for k in _EE_ADDRESS_KEYS]
    cells[0] = WEBSITE_CODES.get(customer["website_id"])
    cells[1] = customer["email"]
    cells[-2] = 1 if get("is_default_billing") else None
    cells[-1] = 1 if get("is_default_shipping") else None
    return cells


def write_ee_export(
    main_path: PathLike,
    address_path: PathLike,
    rows: Iterable[Record],
    *,
    gender_labels: Mapping[int, str] = GENDER_LABELS,
    extra_columns: Sequence[str] = (),
    bom: bool = False,
    crlf: bool = False,
) -> tuple[int, int]:
    """Write the EE / Magento 2 two-file export; return (customer rows, address rows)."""
    customers = addresses_written = 0
    terminator = "\r\n" if crlf else "\n"
    with _open(main_path, bom) as main_f, _open(address_path, bom) as addr_f:
        main = csv.writer(main_f, lineterminator=terminator)
        addr = csv.writer(addr_f, lineterminator=terminator)
        main.writerow((*EE_MAIN_HEADER, *extra_columns))
        addr.writerow(EE_ADDRESS_HEADER)
        for customer, addresses in rows:
            main.writerow(_ee_main_cells(customer, gender_labels, extra_columns))
            customers += 1
            addr.writerows(_ee_address_cells(customer, a) for a in addresses)
            addresses_written += len(addresses)
    return customers, addresses_written
