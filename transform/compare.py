"""Comparing a source record with its copy in a target store, field by field (verify).

Both sides are typed by the same normalisation (transform.prepare), so a value compares
equal when it means the same (trimmed, NFC, email lower-case, timestamps in UTC). Secret
values are never shown: a differing secret says only "differs".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from magsync.transform.integrity import plain
from magsync.transform.schema import ADDRESS, CUSTOMER, Entity
from magsync.transform.values import is_missing

# What verify leaves out, and why (README "Migrating between stores").
NOT_COMPARED: dict[str, dict[str, str]] = {
    CUSTOMER.name: {
        "customer_id": "the target assigns its own ids",
        "website_code": "not part of the API: website_id is compared, mapped",
        "store_code": "not part of the API: store_id is compared, mapped",
        "updated_at": "the store sets it on every save",
        "default_billing": "target address ids: compared as the addresses' default flags",
        "default_shipping": "target address ids: compared as the addresses' default flags",
        "rp_token": "a password-reset token of the old store: not carried",
        "rp_token_created_at": "belongs to rp_token: not carried",
        "password_created_at": "the store sets it: not carried",
    },
    ADDRESS.name: {
        "customer_address_id": "the target assigns its own ids",
        "customer_id": "the target customer's id",
        "customer_key": "the source key of the address's customer",
        "ordinal": "a position in the source file, not an attribute",
        "updated_at": "the store sets it on every save",
    },
}
# Fields a source format cannot express, per format (extract.csv_formats.Format values):
# where such a source says nothing (empty or false), the target's value is "not in the
# source" rather than a difference.
NOT_IN_SOURCE: dict[str, dict[str, dict[str, str]]] = {
    "magento_ce_customers": {
        ADDRESS.name: {
            "is_default_shipping": "a CE export leaves _address_default_shipping_ empty "
                                   "when the default shipping address is not the default "
                                   "billing one",
            "region_id": "a CE export names the region only; the target keys it by its "
                         "own directory's id",
        },
    },
}
NOT_IN_SOURCE_KIND = "not in the source"
# Attributes the store fills in when none is given: compared where the source has one.
STORE_DEFAULTED = frozenset({"created_at", "created_in", "store_id", "group_id",
                             "disable_auto_group_change"})
# Flags a source may leave empty where the store answers false.
FALSE_IF_NULL = frozenset({"is_default_billing", "is_default_shipping"})


def compared_fields(entity: Entity) -> list[str]:
    """The schema fields verify compares for an entity."""
    skipped = NOT_COMPARED[entity.name]
    return [name for name in entity.names if name not in skipped]


@dataclass(frozen=True)
class Difference:
    """One way a target record differs from its source record."""

    entity: str
    key: str  # the source record key ("" for a target record no source record matches)
    target_id: int | None
    field: str | None  # None when the whole record is missing or extra
    kind: str  # "differs", "missing" (not on the target), "extra" (only on the target)
    expected: str | None = None  # shown values; None for secrets
    actual: str | None = None
    note: str | None = None

    def line(self) -> str:
        """One line for the terminal."""
        where = f"{self.entity} {self.key or '-'}"
        if self.target_id is not None:
            where += f" (target {self.target_id})"
        if self.kind != "differs":
            return f"{where}: {self.kind}" + (f": {self.note}" if self.note else "")
        if self.expected is None and self.actual is None:
            return f"{where}: {self.field} differs"
        return f"{where}: {self.field}: source {self.expected}, target {self.actual}"


def _value(name: str, value: Any) -> Any:
    if is_missing(value):
        return False if name in FALSE_IF_NULL else None
    return value


def _shown(value: Any) -> str:
    shown = plain(value)
    return "null" if shown is None else repr(shown)


def unknowable_fields(formats: Iterable[str], entity: Entity) -> dict[str, str]:
    """The fields of an entity that sources of these formats cannot express, with why."""
    out: dict[str, str] = {}
    for fmt in formats:
        out.update(NOT_IN_SOURCE.get(fmt, {}).get(entity.name, {}))
    return out


def compare_record(entity: Entity, key: str, target_id: int | None,
                   expected: Mapping[str, Any], actual: Mapping[str, Any],
                   unknowable: Mapping[str, str] | None = None) -> list[Difference]:
    """The differing fields of one record; secrets reported without their values. A field
    in `unknowable` the source leaves empty is reported as "not in the source"."""
    out = []
    unknowable = unknowable or {}
    secret = set(entity.secret_names)
    for name in compared_fields(entity):
        want, have = _value(name, expected.get(name)), _value(name, actual.get(name))
        if want is None and name in STORE_DEFAULTED:
            continue
        if (want is None) == (have is None) and (want is None or bool(want == have)):
            continue
        if name in unknowable and (want is None or want is False):
            out.append(Difference(entity.name, key, target_id, name, NOT_IN_SOURCE_KIND,
                                  note=unknowable[name]))
            continue
        if name in secret:
            out.append(Difference(entity.name, key, target_id, name, "differs"))
        else:
            out.append(Difference(entity.name, key, target_id, name, "differs",
                                  _shown(want), _shown(have)))
    return out
