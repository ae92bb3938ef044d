"""The emulated store's data: customers, addresses and groups in memory, thread-safe.

Two kinds of writes: `put_*` load records as they are (ids, timestamps and all), for
seeding; `create_*`, `update_*` and `delete_*` behave like Magento's models saving through
the API (defaults, validation, `updated_at` set to the store clock), so tests can change
the store the way a shop admin would.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from magsync.magento.emulator.directory import Directory, default_directory
from magsync.magento.emulator.faults import AddressNotFoundError, CustomerNotFoundError, SaveError
from magsync.magento.emulator.fields import (
    ADDRESS_FIELDS,
    ADDRESS_INTS,
    CUSTOMER_FIELDS,
    CUSTOMER_INTS,
    coerce,
    collate,
    format_utc,
    join_street,
    normalize_date,
    php_string,
    php_truthy,
)
from magsync.magento.emulator.filters import compile_filters, id_bounds
from magsync.magento.emulator.rules import (
    DEFAULT_GROUPS,
    DEFAULT_STORES,
    MIN_PASSWORD,
    hash_password,
    validate_address,
)

Record = dict[str, Any]
Clock = Callable[[], datetime]

_CUSTOMER_ATTRS = CUSTOMER_FIELDS[1:]  # what customer.update may set (not the id)
_ADDRESS_ATTRS = ADDRESS_FIELDS[1:]


def utc_now() -> datetime:
    """The real current time, in UTC."""
    return datetime.now(UTC)


class EmulatorStore:
    """In-memory Magento customer data with Magento's save semantics; safe across threads."""

    def __init__(
        self,
        *,
        groups: Iterable[Mapping[str, Any]] = DEFAULT_GROUPS,
        stores: Mapping[int, tuple[int, str]] | None = None,
        timezone: str = "Europe/Berlin",
        clock: Clock = utc_now,
        directory: Directory | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._customers: dict[int, Record] = {}
        self._addresses: dict[int, Record] = {}  # each carries its customer as "parent_id"
        self._address_ids: dict[int, set[int]] = {}  # customer id -> its address ids
        self._sorted_ids: list[int] | None = None  # customer ids, ascending (a cache)
        self.groups: list[Record] = [dict(g) for g in groups]
        self.stores: dict[int, tuple[int, str]] = dict(stores or DEFAULT_STORES)
        self.timezone = ZoneInfo(timezone)
        self.clock: Clock = clock
        self.directory = directory or default_directory()
        # Auto-increment counters: never reused, at least one past the largest id seen.
        self.next_customer_id = 1
        self.next_address_id = 1

    def now(self) -> str:
        """The store clock as 'YYYY-MM-DD HH:MM:SS' UTC."""
        return format_utc(self.clock())

    # -- seeding ---------------------------------------------------------------------------

    def put_customer(self, record: Mapping[str, Any]) -> int:
        """Insert or replace a customer as given (customer.list keys); return its id."""
        with self._lock:
            cid = record.get("customer_id")
            cid = self.next_customer_id if cid is None else int(cid)
            row = {f: coerce(f, record.get(f), CUSTOMER_INTS) for f in CUSTOMER_FIELDS}
            row["customer_id"] = cid
            row["created_at"] = row["created_at"] or self.now()
            row["updated_at"] = row["updated_at"] or row["created_at"]
            self._customers[cid] = row
            self._sorted_ids = None
            self._address_ids.setdefault(cid, set())
            self.next_customer_id = max(self.next_customer_id, cid + 1)
            return cid

    def put_address(self, customer_id: int, record: Mapping[str, Any]) -> int:
        """Insert or replace an address of a customer as given; return its id.

        `is_default_billing` / `is_default_shipping` set the customer's defaults to it.
        """
        with self._lock:
            customer = self._customer(customer_id)
            aid = record.get("customer_address_id")
            aid = self.next_address_id if aid is None else int(aid)
            row = {f: coerce(f, record.get(f), ADDRESS_INTS) for f in ADDRESS_FIELDS}
            row["customer_address_id"] = aid
            row["street"] = coerce("street", join_street(record.get("street")), ADDRESS_INTS)
            row["created_at"] = row["created_at"] or self.now()
            row["updated_at"] = row["updated_at"] or row["created_at"]
            row["parent_id"] = customer_id
            self._unlink_address(aid)
            self._addresses[aid] = row
            self._address_ids[customer_id].add(aid)
            self.next_address_id = max(self.next_address_id, aid + 1)
            if php_truthy(record.get("is_default_billing")):
                customer["default_billing"] = aid
            if php_truthy(record.get("is_default_shipping")):
                customer["default_shipping"] = aid
            return aid

    def load(self, records: Iterable[tuple[Mapping[str, Any], Iterable[Mapping[str, Any]]]]) -> int:
        """Put (customer, addresses) pairs, as magento.dataset yields them; return the count."""
        count = 0
        for customer, addresses in records:
            cid = self.put_customer(customer)
            for address in addresses:
                self.put_address(cid, address)
            count += 1
        return count

    # -- reads -----------------------------------------------------------------------------

    def customer(self, customer_id: int) -> Record | None:
        """A copy of one customer with every attribute (nulls as None), or None."""
        with self._lock:
            row = self._customers.get(customer_id)
            return dict(row) if row is not None else None

    def customer_ids(self) -> list[int]:
        """All customer ids, ascending."""
        with self._lock:
            return sorted(self._customers)

    def list_customers(self, filters: Any = None) -> list[Record]:
        """Copies of the customers matching customer.list filters, by id (101 on a bad field)."""
        predicate = compile_filters(filters)
        low, high = id_bounds(filters)
        with self._lock:
            if self._sorted_ids is None:
                self._sorted_ids = sorted(self._customers)
            ids = self._sorted_ids
            window = ids[bisect.bisect_left(ids, low) : bisect.bisect_right(ids, high)]
            rows = [self._customers[cid] for cid in window]
            return [dict(r) for r in rows if predicate(r)]

    def address(self, address_id: int) -> Record | None:
        """A copy of one address (with its customer as parent_id), or None."""
        with self._lock:
            row = self._addresses.get(address_id)
            return dict(row) if row is not None else None

    def addresses_of(self, customer_id: int) -> list[Record]:
        """Copies of a customer's addresses, by id ascending (CustomerNotFoundError if missing)."""
        with self._lock:
            self._customer(customer_id)
            return [dict(self._addresses[a]) for a in sorted(self._address_ids[customer_id])]

    def counts(self) -> tuple[int, int]:
        """(customers, addresses) held."""
        with self._lock:
            return len(self._customers), len(self._addresses)

    # -- Magento-like writes ---------------------------------------------------------------

    def create_customer(self, data: Mapping[str, Any]) -> int:
        """Create a customer like customer.create; SaveError on invalid data."""
        with self._lock:
            values = self._customer_values(data)
            password = php_string(data.get("password") or "").strip()
            if password:
                if len(password) < MIN_PASSWORD:
                    raise SaveError(
                        f"The password must have at least {MIN_PASSWORD} characters. "
                        "Leading or trailing spaces will be ignored."
                    )
                values["password_hash"] = hash_password(password)
            store_id = values.get("store_id")
            store_id = 0 if store_id is None else store_id
            values.setdefault("store_id", store_id)
            values.setdefault("website_id", 0)  # the admin store's website, as Magento does
            values.setdefault("created_in", self.stores.get(store_id, (0, None))[1])
            values.setdefault("group_id", 1)
            values.setdefault("disable_auto_group_change", 0)
            self._check_email(values.get("email"), values["website_id"], None)
            now = self.now()
            values.setdefault("created_at", now)
            values["updated_at"] = now
            cid = self.next_customer_id
            row = {f: values.get(f) for f in CUSTOMER_FIELDS}
            self._customers[cid] = row | {"customer_id": cid}
            self._sorted_ids = None
            self._address_ids[cid] = set()
            self.next_customer_id = cid + 1
            return cid

    def update_customer(self, customer_id: int, data: Mapping[str, Any]) -> None:
        """Change a customer like customer.update: non-null known attributes; updated_at = now."""
        with self._lock:
            row = self._customer(customer_id)
            values = self._customer_values(data)
            if not values:
                return  # nothing set: Magento skips the save, updated_at stays
            merged = row | values
            self._check_email(merged["email"], merged["website_id"], customer_id)
            row.update(values)
            row["updated_at"] = self.now()

    def delete_customer(self, customer_id: int) -> None:
        """Delete a customer and its addresses."""
        with self._lock:
            self._customer(customer_id)
            del self._customers[customer_id]
            self._sorted_ids = None
            for aid in self._address_ids.pop(customer_id):
                del self._addresses[aid]

    def create_address(self, customer_id: int, data: Mapping[str, Any]) -> int:
        """Create an address like customer_address.create; SaveError lists what is missing."""
        with self._lock:
            self._customer(customer_id)
            values = self._address_values(data)
            validate_address(values)
            self._fill_region(values, values)
            now = self.now()
            values.setdefault("created_at", now)
            values["updated_at"] = now
            aid = self.next_address_id
            row = {f: values.get(f) for f in ADDRESS_FIELDS} | {"customer_address_id": aid}
            self._addresses[aid] = row | {"parent_id": customer_id}
            self._address_ids[customer_id].add(aid)
            self.next_address_id = aid + 1
            self._apply_defaults(customer_id, aid, data)
            return aid

    def update_address(self, address_id: int, data: Mapping[str, Any]) -> None:
        """Change an address like customer_address.update; its customer's updated_at stays
        unless the address becomes a default (Magento then saves the customer too)."""
        with self._lock:
            row = self._address(address_id)
            values = self._address_values(data)
            merged = row | values
            validate_address(merged)
            self._fill_region(values, merged)
            row.update(values)
            row["updated_at"] = self.now()
            self._apply_defaults(row["parent_id"], address_id, data)

    def delete_address(self, address_id: int) -> None:
        """Delete an address; a customer default pointing at it is left as it was."""
        with self._lock:
            self._address(address_id)
            self._unlink_address(address_id)

    # -- helpers ---------------------------------------------------------------------------

    def _customer(self, customer_id: int) -> Record:
        row = self._customers.get(customer_id)
        if row is None:
            raise CustomerNotFoundError(customer_id)
        return row

    def _address(self, address_id: int) -> Record:
        row = self._addresses.get(address_id)
        if row is None:
            raise AddressNotFoundError(address_id)
        return row

    def _unlink_address(self, address_id: int) -> None:
        """Forget an address (if held) and its place in its customer's index."""
        old = self._addresses.pop(address_id, None)
        if old is not None:
            self._address_ids.get(old["parent_id"], set()).discard(address_id)

    def _customer_values(self, data: Mapping[str, Any]) -> Record:
        """The non-null known attributes of incoming customer data, typed and formatted."""
        values = {}
        for field in _CUSTOMER_ATTRS:
            if data.get(field) is not None:
                value = coerce(field, data[field], CUSTOMER_INTS)
                values[field] = normalize_date(field, value) if field == "dob" else value
        return values

    def _address_values(self, data: Mapping[str, Any]) -> Record:
        """The non-null known attributes of incoming address data, street lines joined."""
        values = {}
        for field in _ADDRESS_ATTRS:
            if data.get(field) is not None:
                raw = join_street(data[field]) if field == "street" else data[field]
                values[field] = coerce(field, raw, ADDRESS_INTS)
        return values

    def _fill_region(self, values: Record, merged: Mapping[str, Any]) -> None:
        """A region_id of the address's country sets `region` to the directory's name
        (Magento's Address_Abstract::getRegion on save); a name alone leaves region_id."""
        name = self.directory.region_name(merged.get("region_id"), merged.get("country_id"))
        if name is not None:
            values["region"] = name

    def _check_email(self, email: Any, website_id: Any, own_id: int | None) -> None:
        """Magento's customer save checks: an e-mail, unique per website (case-insensitive)."""
        if not php_truthy(email):
            raise SaveError("Customer email is required")
        key = collate(php_string(email))
        for cid, row in self._customers.items():
            if cid == own_id or row["website_id"] != website_id or row["email"] is None:
                continue
            if collate(row["email"]) == key:
                raise SaveError("This customer email already exists")

    def _apply_defaults(self, customer_id: int, address_id: int, data: Mapping[str, Any]) -> None:
        """is_default_billing/shipping: set the customer's default and save it (updated_at)."""
        customer = self._customers[customer_id]
        billing = php_truthy(data.get("is_default_billing"))
        shipping = php_truthy(data.get("is_default_shipping"))
        if billing:
            customer["default_billing"] = address_id
        if shipping:
            customer["default_shipping"] = address_id
        if billing or shipping:
            customer["updated_at"] = self.now()
