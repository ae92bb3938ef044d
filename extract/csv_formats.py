"""The CSV formats magsync reads, recognised from their headers.

- Magento 1.9 CE / OpenMage one-file customer export (customers with their addresses,
  further addresses on continuation rows).
- Magento EE / Magento 2 two-file export: Customers Main File + Customer Addresses.
- magsync's canonical CSV: one file per entity, columns named as in transform.schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from magsync.transform.errors import SourceFatalError
from magsync.transform.schema import ADDRESS, CUSTOMER, GROUP, Entity


class Format(StrEnum):
    """A recognised CSV layout."""

    CE_ONE_FILE = "magento_ce_customers"
    EE_MAIN = "magento_customers_main"
    EE_ADDRESSES = "magento_customer_addresses"
    CANONICAL_GROUPS = "canonical_groups"
    CANONICAL_CUSTOMERS = "canonical_customers"
    CANONICAL_ADDRESSES = "canonical_addresses"


# The order files of a folder are read in: parents before children.
READ_ORDER = {
    Format.CANONICAL_GROUPS: 0,
    Format.CE_ONE_FILE: 1,
    Format.EE_MAIN: 1,
    Format.CANONICAL_CUSTOMERS: 1,
    Format.EE_ADDRESSES: 2,
    Format.CANONICAL_ADDRESSES: 2,
}

ADDRESS_PREFIX = "_address_"
# Magento's own names that differ from the schema's.
CUSTOMER_RENAMES = {"_website": "website_code", "_store": "store_code"}
ADDRESS_RENAMES = {
    "_address_default_billing_": "is_default_billing",
    "_address_default_shipping_": "is_default_shipping",
    "_entity_id": "customer_address_id",
    "_address_default_billing": "is_default_billing",
    "_address_default_shipping": "is_default_shipping",
}
# Columns Magento writes that carry nothing worth keeping (never read into `extra`).
IGNORED = frozenset({"password", "rp_customer_id", "vat_is_valid", "vat_request_date",
                     "vat_request_id", "vat_request_success"})


def detect(header: list[str], where: str = "CSV file") -> Format:
    """The format of a file, from its (lower-case) header; SourceFatalError when
    unrecognised or when a Magento export lacks a column it always has."""
    names = set(header)
    has_address = any(n.startswith(ADDRESS_PREFIX) for n in names)
    if "_website" not in names and ("_email" in names or ("email" in names and has_address)):
        # Magento's export: read as canonical it would lose every address, silently.
        kind = "Customer Addresses" if "_email" in names else "CE customer"
        raise SourceFatalError(
            f"{where}: a Magento {kind} export without the _website column (the customer's "
            "website code, always written by Magento): add it or export again")
    if "_email" in names:
        return Format.EE_ADDRESSES
    if "email" in names and "_website" in names:
        return Format.CE_ONE_FILE if has_address else Format.EE_MAIN
    if "customer_group_id" in names and "email" not in names:
        return Format.CANONICAL_GROUPS
    if "email" in names and "website_id" in names:
        return Format.CANONICAL_CUSTOMERS
    if "street" in names and ({"customer_key", "customer_id"} & names):
        return Format.CANONICAL_ADDRESSES
    raise SourceFatalError(
        f"{where}: unrecognised CSV header (expected a Magento customer export or a magsync "
        f"canonical file): {', '.join(header[:8])}{', …' if len(header) > 8 else ''}")


@dataclass(frozen=True)
class ColumnMap:
    """How a file's columns become an entity's columns; the rest go to `extra`."""

    entity: Entity
    rename: Mapping[str, str]  # file column -> schema column
    extra: tuple[str, ...]  # file columns kept in the `extra` JSON


def column_map(entity: Entity, header: list[str], *, prefix: str = "",
               renames: Mapping[str, str] | None = None,
               reserved: frozenset[str] = frozenset()) -> ColumnMap:
    """Maps the header columns that belong to `entity` (by prefix and renames)."""
    renames = renames or {}
    rename: dict[str, str] = {}
    extra: list[str] = []
    for name in header:
        if name in IGNORED or name in reserved:
            continue
        if name in renames:
            rename[name] = renames[name]
        elif prefix and not name.startswith(prefix):
            continue
        elif entity.has(name.removeprefix(prefix)):
            rename[name] = name.removeprefix(prefix)
        elif entity.extra_allowed:
            extra.append(name)
    return ColumnMap(entity, rename, tuple(extra))


def ce_maps(header: list[str]) -> tuple[ColumnMap, ColumnMap]:
    """Customer and address column maps of the CE one-file export."""
    address_cols = frozenset(n for n in header if n.startswith(ADDRESS_PREFIX))
    customers = column_map(CUSTOMER, header, renames=CUSTOMER_RENAMES, reserved=address_cols)
    addresses = column_map(ADDRESS, header, prefix=ADDRESS_PREFIX, renames=ADDRESS_RENAMES)
    return customers, addresses


def ee_address_map(header: list[str]) -> ColumnMap:
    """Column map of the EE Customer Addresses file (customer named by _website, _email)."""
    return column_map(ADDRESS, header, renames=ADDRESS_RENAMES,
                      reserved=frozenset({"_website", "_email"}))


def simple_map(entity: Entity, header: list[str]) -> ColumnMap:
    """Column map of a canonical file or the EE main file."""
    renames = CUSTOMER_RENAMES if entity is CUSTOMER else {}
    return column_map(entity, header, renames=renames)


ENTITY_OF = {
    Format.CANONICAL_GROUPS: GROUP,
    Format.CE_ONE_FILE: CUSTOMER,
    Format.EE_MAIN: CUSTOMER,
    Format.CANONICAL_CUSTOMERS: CUSTOMER,
    Format.EE_ADDRESSES: ADDRESS,
    Format.CANONICAL_ADDRESSES: ADDRESS,
}
