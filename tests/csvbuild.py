"""Builders of small CSV files in Magento's export formats, for tests."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from bench.csv_export import CE_HEADER


def ce_row(**values: str) -> list[str]:
    """A CE one-file export row: customer and first-address columns by name."""
    unknown = set(values) - set(CE_HEADER)
    assert not unknown, unknown
    return [values.get(col, "") for col in CE_HEADER]


def customer_row(email: str, first: str = "Ann", last: str = "Smith", website: str = "base",
                 **more: str) -> list[str]:
    """A customer row with sensible defaults and optionally a first address."""
    base = {"email": email, "_website": website, "_store": "default",
            "website_id": "1" if website == "base" else "2", "store_id": "1",
            "created_in": "Default Store View", "firstname": first, "lastname": last,
            "group_id": "1", "created_at": "2020-01-01 10:00:00", "gender": "Female",
            "disable_auto_group_change": "0"}
    base.update(more)
    return ce_row(**base)


def address_fields(street: str = "1 Main St", city: str = "London", country: str = "GB",
                   postcode: str = "06612", phone: str = "123", **more: str) -> dict[str, str]:
    """First-address columns of a CE row."""
    out = {"_address_firstname": "Ann", "_address_lastname": "Smith",
           "_address_street": street, "_address_city": city,
           "_address_country_id": country, "_address_postcode": postcode,
           "_address_telephone": phone}
    out.update(more)
    return out


def continuation(**fields: str) -> list[str]:
    """A continuation row: only address columns."""
    return ce_row(**address_fields(**fields))


def write_csv(path: Path, rows: list[list[str]], header: list[str] | tuple[str, ...] = CE_HEADER,
              *, bom: bool = False, crlf: bool = False) -> Path:
    """Writes rows under a header, as Magento does (minimal quoting)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode("utf-8"))
    return path
