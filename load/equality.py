"""Whether a target record already holds what an update would write ("unchanged").

An update costs a call and moves the record's `updated_at` on the store, so a customer
found on the target (by website and email) whose written attributes already equal the
source's is left alone. Values compare as the store keeps them: text trimmed and NFC,
e-mail case-insensitive, integers as numbers, a date by its day, timestamps to the
second; an optional text the source lacks must be empty on the target too (an update
would clear it).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

from magsync.load.magento_target import CLEARABLE
from magsync.transform.schema import CUSTOMER

_INTS = frozenset({"website_id", "store_id", "group_id", "gender", "disable_auto_group_change"})


def _plain(name: str, value: Any) -> Any:
    """A written or stored value in the form both sides share; None for empty."""
    if value is None:
        return None
    if name in _INTS:
        try:
            return int(value)
        except (TypeError, ValueError):
            return str(value)
    text = unicodedata.normalize("NFC", str(value).strip())
    if text == "":
        return None
    if name == "email":
        return text.casefold()
    if name == "dob":
        return text[:10]
    if name == "created_at":
        return text.replace("T", " ")[:19]
    return text


def customer_unchanged(payload: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    """Whether a target customer (a customer.list row) equals the update `payload`."""
    for name, value in payload.items():
        if _plain(name, value) != _plain(name, row.get(name)):
            return False
    cleared = (n for n in CLEARABLE[CUSTOMER.name] if n not in payload)
    return all(_plain(n, row.get(n)) is None for n in cleared)
