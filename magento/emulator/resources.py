"""The API resources (customer, customer_address, customer_group, directory_country,
directory_region) over an EmulatorStore.

Each method mirrors its Magento 1.9 / OpenMage PHP method: same parameters (PHP 8 binds
string keys of an args Map as named parameters), same faults, same answer shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from magsync.magento.emulator.faults import (
    AddressNotFoundError,
    ApiFault,
    CustomerNotFoundError,
    PhpError,
    SaveError,
)
from magsync.magento.emulator.fields import ADDRESS_FIELDS, CUSTOMER_FIELDS, to_id, to_local_iso
from magsync.magento.emulator.store import EmulatorStore

_CUSTOMER_NOT_EXISTS = ("102", "Customer not exists.")
_ADDRESS_CUSTOMER_NOT_EXISTS = ("101", "Customer not exists.")
_ADDRESS_NOT_EXISTS = ("102", "Address not exists.")
_COUNTRY_NOT_EXISTS = ("101", "Country not exists.")


@dataclass(frozen=True)
class Method:
    """One API method: its PHP name and parameters, and the function implementing it."""

    php: str
    params: tuple[str, ...]
    required: int
    run: Callable[..., Any]

    def invoke(self, args: Any) -> Any:
        """Call with `args` as Magento's handler does: a PHP array is spread, else one arg."""
        given = self._bind(args) if isinstance(args, list | dict) else {0: args}
        for index in range(self.required):
            if index not in given:
                if any(i > index for i in given):  # a later parameter came by name
                    raise PhpError(
                        f"{self.php}(): Argument #{index + 1} (${self.params[index]}) not passed"
                    )
                exactly = "exactly" if self.required == len(self.params) else "at least"
                raise PhpError(
                    f"Too few arguments to function {self.php}(), {len(given)} "
                    f"passed and {exactly} {self.required} expected"
                )
        return self.run(*(given.get(i) for i in range(len(self.params))))

    def _bind(self, args: list[Any] | dict[Any, Any]) -> dict[int, Any]:
        """PHP 8's call_user_func_array: integer keys are positional, string keys named."""
        given: dict[int, Any] = {}
        position, named = 0, False
        items = enumerate(args) if isinstance(args, list) else args.items()
        for key, value in items:
            if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
                if named:
                    raise PhpError(
                        "Cannot use positional argument after named argument during unpacking"
                    )
                given[position] = value  # extra positional arguments are ignored by PHP
                position += 1
                continue
            if key not in self.params:
                raise PhpError(f"Unknown named parameter ${key}")
            index = self.params.index(key)
            if index in given:
                raise PhpError(f"Named parameter ${key} overwrites previous argument")
            given[index] = value
            named = True
        return given


# Entity columns a filter may name that are no API attribute.
_ENTITY_COLUMNS = frozenset({"customer_id", "entity_id", "entity_type_id", "attribute_set_id"})
# The customer entity's "default attributes": static columns a filter reads directly.
_DEFAULT_ATTRIBUTES = frozenset(
    {
        "entity_type_id",
        "attribute_set_id",
        "created_at",
        "updated_at",
        "increment_id",
        "store_id",
        "website_id",
    }
)


class Resources:
    """customer.*, customer_address.* and customer_group.list over a store, for one request.

    Like PHP's per-request resource singletons, an instance remembers the order in which
    the customer entity's attributes were first touched: a filter on a non-default
    attribute loads that attribute before all others, so it comes right after customer_id
    in every customer Map answered later in the same request (v1_customer_list_email_like).
    """

    def __init__(self, store: EmulatorStore) -> None:
        self.store = store
        self._customer_attributes: dict[str, None] = {}  # insertion-ordered set
        customer = "Mage_Customer_Model_Customer_Api::"
        address = "Mage_Customer_Model_Address_Api::"
        self.methods: dict[str, Method] = {
            "customer.list": Method(customer + "items", ("filters",), 1, self.customer_list),
            "customer.info": Method(
                customer + "info", ("customerId", "attributes"), 1, self.customer_info
            ),
            "customer.create": Method(
                customer + "create", ("customerData",), 1, self.customer_create
            ),
            "customer.update": Method(
                customer + "update", ("customerId", "customerData"), 2, self.customer_update
            ),
            "customer.delete": Method(
                customer + "delete", ("customerId",), 1, self.customer_delete
            ),
            "customer_address.list": Method(
                address + "items", ("customerId",), 1, self.address_list
            ),
            "customer_address.info": Method(address + "info", ("addressId",), 1, self.address_info),
            "customer_address.create": Method(
                address + "create", ("customerId", "addressData"), 2, self.address_create
            ),
            "customer_address.update": Method(
                address + "update", ("addressId", "addressData"), 2, self.address_update
            ),
            "customer_address.delete": Method(
                address + "delete", ("addressId",), 1, self.address_delete
            ),
            "customer_group.list": Method(
                "Mage_Customer_Model_Group_Api::items", (), 0, self.group_list
            ),
            "directory_country.list": Method(
                "Mage_Directory_Model_Country_Api::items", (), 0, self.country_list
            ),
            "directory_region.list": Method(
                "Mage_Directory_Model_Region_Api::items", ("country",), 1, self.region_list
            ),
        }

    # -- customer --------------------------------------------------------------------------

    def customer_list(self, filters: Any = None) -> list[dict[str, Any]]:
        """customer.list: every matching customer by id, null attributes left out."""
        if isinstance(filters, Mapping):
            for field in filters:
                if field in _ENTITY_COLUMNS:
                    continue
                if field not in CUSTOMER_FIELDS[1:]:
                    break  # an unknown name: the store answers fault 101
                if field not in _DEFAULT_ATTRIBUTES:
                    self._customer_attributes.setdefault(field)
        rows = self.store.list_customers(filters)
        if not rows:
            return []  # no row, no loadAllAttributes: the touched order stays open
        order = self._customer_order()
        return [
            {"customer_id": row["customer_id"]} | {f: row[f] for f in order if row[f] is not None}
            for row in rows
        ]

    def customer_info(self, customer_id: Any, attributes: Any = None) -> dict[str, Any]:
        """customer.info: customer_id then every (or each asked) attribute, nulls included."""
        row = self._customer(customer_id)
        wanted = _attribute_filter(attributes)
        result = {"customer_id": row["customer_id"]}
        for field in self._customer_order():
            if wanted is None or field in wanted:
                result[field] = row[field]
        if "created_at" in result:
            result["created_at"] = to_local_iso(result["created_at"], self.store.timezone)
        return result

    def customer_create(self, data: Any) -> str:
        """customer.create: the new id, as the string PHP's lastInsertId gives."""
        self._customer_order()  # a model save() loads every attribute
        try:
            return str(self.store.create_customer(_as_data(data)))
        except SaveError as exc:
            raise ApiFault("100", str(exc)) from None

    def customer_update(self, customer_id: Any, data: Any) -> bool:
        """customer.update: true; a failed save is an internal fault (no catch in PHP)."""
        cid = self._customer(customer_id)["customer_id"]
        try:
            self.store.update_customer(cid, _as_data(data))
        except SaveError as exc:
            raise ApiFault("1", str(exc), internal=True) from None
        return True

    def customer_delete(self, customer_id: Any) -> bool:
        """customer.delete: true; the customer's addresses go with it."""
        self.store.delete_customer(self._customer(customer_id)["customer_id"])
        return True

    # -- customer_address ------------------------------------------------------------------

    def address_list(self, customer_id: Any) -> list[dict[str, Any]]:
        """customer_address.list: the customer's addresses, newest id first (as recorded)."""
        customer = self._customer(customer_id, _ADDRESS_CUSTOMER_NOT_EXISTS)
        rows = self.store.addresses_of(customer["customer_id"])
        result = []
        for row in sorted(rows, key=lambda a: a["customer_address_id"], reverse=True):
            item = _address_row(row)
            result.append(item | _default_flags(customer, row))
        return result

    def address_info(self, address_id: Any) -> dict[str, Any]:
        """customer_address.info: every attribute, nulls included, then the default flags."""
        row = self._address(address_id)
        result = {f: row[f] for f in ADDRESS_FIELDS}
        result["created_at"] = to_local_iso(result["created_at"], self.store.timezone)
        customer = self.store.customer(row["parent_id"])
        if customer is not None:
            result |= _default_flags(customer, row)
        return result

    def address_create(self, customer_id: Any, data: Any) -> str:
        """customer_address.create: the new id as a string (v1_customer_address_create)."""
        customer = self._customer(customer_id, _ADDRESS_CUSTOMER_NOT_EXISTS)
        try:
            return str(self.store.create_address(customer["customer_id"], _as_data(data)))
        except SaveError as exc:
            raise ApiFault("100", str(exc)) from None

    def address_update(self, address_id: Any, data: Any) -> bool:
        """customer_address.update: true; the customer's updated_at is left alone."""
        row = self._address(address_id)
        try:
            self.store.update_address(row["customer_address_id"], _as_data(data))
        except SaveError as exc:
            raise ApiFault("100", str(exc)) from None
        return True

    def address_delete(self, address_id: Any) -> bool:
        """customer_address.delete: true."""
        self.store.delete_address(self._address(address_id)["customer_address_id"])
        return True

    # -- customer_group --------------------------------------------------------------------

    def group_list(self) -> list[dict[str, Any]]:
        """customer_group.list: id and code of every group, by id."""
        groups = sorted(self.store.groups, key=lambda g: g["customer_group_id"])
        return [
            {
                "customer_group_id": g["customer_group_id"],
                "customer_group_code": g["customer_group_code"],
            }
            for g in groups
        ]

    # -- directory -------------------------------------------------------------------------

    def country_list(self) -> list[dict[str, Any]]:
        """directory_country.list: every country (v1_directory_country_list)."""
        return [
            {"country_id": c.country_id, "iso2_code": c.country_id, "iso3_code": c.iso3_code,
             "name": c.name}
            for c in self.store.directory.countries
        ]

    def region_list(self, country: Any) -> list[dict[str, Any]]:
        """directory_region.list: the country's regions by name, [] for a country without
        any, fault 101 for an unknown code (v1_directory_region_list_*)."""
        found = self.store.directory.country(country) if isinstance(country, str) else None
        if found is None:
            raise ApiFault.of(_COUNTRY_NOT_EXISTS)
        return [
            {"region_id": r.region_id, "code": r.code, "name": r.name}
            for r in self.store.directory.regions_of(found.country_id)
        ]

    # -- helpers ---------------------------------------------------------------------------

    def _customer_order(self) -> list[str]:
        """loadAllAttributes: every attribute, those touched earlier in this request first."""
        for field in CUSTOMER_FIELDS[1:]:
            self._customer_attributes.setdefault(field)
        return list(self._customer_attributes)

    def _customer(
        self, customer_id: Any, fault: tuple[str, str] = _CUSTOMER_NOT_EXISTS
    ) -> dict[str, Any]:
        cid = to_id(customer_id)
        row = None if cid is None else self.store.customer(cid)
        if row is None:
            raise ApiFault.of(fault)
        self._customer_order()  # a model load() loads every attribute
        return row

    def _address(self, address_id: Any) -> dict[str, Any]:
        aid = to_id(address_id)
        row = None if aid is None else self.store.address(aid)
        if row is None:
            raise ApiFault.of(_ADDRESS_NOT_EXISTS)
        return row


def store_fault(error: CustomerNotFoundError | AddressNotFoundError) -> ApiFault:
    """A row that vanished between the check and the write, as the fault Magento gives."""
    if isinstance(error, CustomerNotFoundError):
        return ApiFault.of(_CUSTOMER_NOT_EXISTS)
    return ApiFault.of(_ADDRESS_NOT_EXISTS)


def _address_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """An address list row: the id, then the attributes that are set (PHP's isset)."""
    result = {"customer_address_id": row["customer_address_id"]}
    result.update((f, row[f]) for f in ADDRESS_FIELDS[1:] if row.get(f) is not None)
    return result


def _default_flags(customer: Mapping[str, Any], address: Mapping[str, Any]) -> dict[str, bool]:
    aid = address["customer_address_id"]
    return {
        "is_default_billing": customer.get("default_billing") == aid,
        "is_default_shipping": customer.get("default_shipping") == aid,
    }


def _attribute_filter(attributes: Any) -> set[str] | None:
    """customer.info's attribute list: None for all, a scalar for one."""
    if attributes is None:
        return None
    if isinstance(attributes, dict):
        return {str(v) for v in attributes.values()}
    if isinstance(attributes, list):
        return {str(v) for v in attributes}
    return {str(attributes)}


def _as_data(data: Any) -> dict[str, Any]:
    """Incoming create/update data; anything but a Map sets nothing."""
    return {str(k): v for k, v in data.items()} if isinstance(data, dict) else {}
