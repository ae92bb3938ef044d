"""Customer and address attributes as the emulated store holds them: names, order, types."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from magsync.magento.emulator.faults import ApiFault, SaveError

# Attribute order of customer.info (v1_customer_info): customer.list uses the same order and
# leaves out the nulls. customer_id stands for the entity id.
CUSTOMER_FIELDS: tuple[str, ...] = (
    "customer_id",
    "created_at",
    "updated_at",
    "increment_id",
    "store_id",
    "website_id",
    "created_in",
    "prefix",
    "firstname",
    "middlename",
    "lastname",
    "suffix",
    "email",
    "group_id",
    "dob",
    "password_hash",
    "default_billing",
    "default_shipping",
    "taxvat",
    "confirmation",
    "gender",
    "rp_token",
    "rp_token_created_at",
    "disable_auto_group_change",
    "password_created_at",
    "rp_customer_id",
)
CUSTOMER_INTS = frozenset(
    {
        "customer_id",
        "store_id",
        "website_id",
        "group_id",
        "default_billing",
        "default_shipping",
        "gender",
        "disable_auto_group_change",
        "password_created_at",
        "rp_customer_id",
    }
)
# Attribute order of customer_address.info (v1_customer_address_info).
ADDRESS_FIELDS: tuple[str, ...] = (
    "customer_address_id",
    "created_at",
    "updated_at",
    "increment_id",
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
    "region_id",
    "postcode",
    "telephone",
    "fax",
    "vat_id",
    "vat_is_valid",
    "vat_request_id",
    "vat_request_date",
    "vat_request_success",
)
ADDRESS_INTS = frozenset(
    {
        "customer_address_id",
        "region_id",
        "vat_is_valid",
        "vat_request_success",
    }
)
DATE_FIELDS = frozenset({"created_at", "updated_at", "dob", "rp_token_created_at"})
GENDER_IDS = {"male": 1, "female": 2}

_INT_RE = re.compile(r"\s*[+-]?\d+\s*")
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def format_utc(moment: datetime) -> str:
    """Format a datetime as Magento's UTC 'YYYY-MM-DD HH:MM:SS' (naive means UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def parse_datetime(text: str) -> datetime | None:
    """Parse a date or datetime the way MySQL would accept it; None when unparseable."""
    value = text.strip()
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def to_local_iso(utc_text: Any, zone: ZoneInfo) -> Any:
    """customer.info's created_at: the UTC value as ISO 8601 in the store's local time."""
    if not isinstance(utc_text, str):
        return utc_text
    parsed = parse_datetime(utc_text)
    if parsed is None:
        return utc_text
    return parsed.replace(tzinfo=UTC).astimezone(zone).isoformat()


def php_string(value: Any) -> str:
    """Convert a decoded SOAP value to the string PHP would store."""
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple | dict):
        return "Array"  # what PHP's string conversion of an array gives
    return str(value)


def php_truthy(value: Any) -> bool:
    """PHP's boolean conversion: '', '0', 0, 0.0, null, empty arrays are false."""
    if isinstance(value, str):
        return value not in ("", "0")
    return bool(value)


def coerce(field: str, value: Any, ints: frozenset[str]) -> Any:
    """Coerce an incoming value to the column type; a bad integer is a database error."""
    if value is None:
        return None
    if field not in ints:
        return php_string(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_RE.fullmatch(value):
        return int(value)
    # MySQL strict mode rejects the row; Magento surfaces that as an internal fault.
    raise ApiFault(
        "1",
        f"SQLSTATE[HY000]: General error: 1366 Incorrect integer value: "
        f"'{php_string(value)}' for column '{field}' at row 1",
        internal=True,
    )


def normalize_date(field: str, value: Any) -> Any:
    """Format a date attribute the way its backend saves it ('Invalid date' otherwise)."""
    if value is None or field not in DATE_FIELDS:
        return value
    parsed = parse_datetime(php_string(value))
    if parsed is None:
        raise SaveError("Invalid date")
    if field == "dob":
        return parsed.strftime("%Y-%m-%d 00:00:00")
    return parsed.strftime("%Y-%m-%d %H:%M:%S")


def join_street(value: Any) -> Any:
    """A street given as an array of lines is stored joined by newlines, trimmed."""
    if isinstance(value, list | tuple):
        return "\n".join(php_string(v) for v in value).strip()
    if isinstance(value, dict):
        return "\n".join(php_string(v) for v in value.values()).strip()
    return value


def to_id(value: Any) -> int | None:
    """An entity id as PHP's load() would read it; None when it cannot name a row."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_RE.fullmatch(value):
        return int(value)
    return None


def collate(text: str) -> str:
    """Approximate MySQL's case- and accent-insensitive collation, trailing spaces ignored."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.casefold().rstrip(" ")


def xml_safe(text: str) -> str:
    """Replace characters XML 1.0 forbids by character references, as Magento does."""
    return _NOT_XML_CHAR.sub(lambda m: f"&#{ord(m.group())};", text)
