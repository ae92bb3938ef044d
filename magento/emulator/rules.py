"""Magento's save rules the emulated store applies: defaults, validation, password hashing."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

from magsync.magento.emulator.faults import SaveError
from magsync.magento.emulator.fields import php_truthy

# Store views: store_id -> (website_id, name); created_in is the name of the customer's store.
DEFAULT_STORES: dict[int, tuple[int, str]] = {
    0: (0, "Admin"),
    1: (1, "Default Store View"),
    2: (2, "EU English"),
}
DEFAULT_GROUPS: tuple[dict[str, Any], ...] = (
    {"customer_group_id": 0, "customer_group_code": "NOT LOGGED IN"},
    {"customer_group_id": 1, "customer_group_code": "General"},
    {"customer_group_id": 2, "customer_group_code": "Wholesale"},
    {"customer_group_id": 3, "customer_group_code": "Retailer"},
)
# Magento's address validation, in its order: (attribute, message).
_REQUIRED_ADDRESS = (
    ("firstname", "Please enter the first name."),
    ("lastname", "Please enter the last name."),
    ("street", "Please enter the street."),
    ("city", "Please enter the city."),
    ("telephone", "Please enter the telephone number."),
    ("postcode", "Please enter the zip/postal code."),
    ("country_id", "Please enter the country."),
)
MIN_PASSWORD = 6
_OPTIONAL_ZIP = frozenset({"HK", "IE", "MO", "PA"})  # Magento 1.9's default list


def validate_address(values: Mapping[str, Any]) -> None:
    """Magento's address validation: every missing required field, one message each."""
    errors = []
    for field, message in _REQUIRED_ADDRESS:
        if field == "postcode" and values.get("country_id") in _OPTIONAL_ZIP:
            continue
        value = values.get(field)
        if field == "street" and isinstance(value, str):
            value = value.split("\n")[0]
        if not php_truthy(value):
            errors.append(message)
    if errors:
        raise SaveError("\n".join(errors))


def hash_password(password: str) -> str:
    """Magento 1.9's customer hash: sha256(salt + password) ':' a 32-character salt."""
    salt = secrets.token_hex(16)
    return f"{hashlib.sha256((salt + password).encode()).hexdigest()}:{salt}"
