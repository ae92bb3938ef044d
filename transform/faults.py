"""Per-record faults are data: a typed record, collected per batch, never raised."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Stage(StrEnum):
    """Where in the pipeline a record faulted."""

    READ = "read"
    NORMALISE = "normalise"
    VALIDATE = "validate"
    INTEGRITY = "integrity"
    LOAD = "load"


REDACTED = "<redacted>"
# Control characters (but tab, LF, CR) shown as `\xNN`: a fault must be storable itself,
# and PostgreSQL holds no NUL.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Fault:
    """One faulted record: what broke, why, and where it came from."""

    entity: str
    stage: Stage
    rule: str
    message: str
    key: str | None = None  # the record_key (canonical JSON array), None when unknown
    column: str | None = None
    value: str | None = None  # already redacted when the column is secret
    source: str | None = None  # file path or SOAP endpoint
    source_line: int | None = None  # 1-based physical line, or SOAP page
    # the record's raw digest (transform/rawdigest.py), stored with the fault: an unchanged
    # record is re-reported from it without typing or validation (load/refault.py)
    raw_digest: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict, for reports and the fault table."""
        return asdict(self)


def shown_value(value: object, *, secret: bool, limit: int = 200) -> str | None:
    """The offending value as it may appear in a report: redacted if secret, bounded."""
    if value is None:
        return None
    if secret:
        return REDACTED
    text = str(value)
    text = text if len(text) <= limit else text[:limit] + "…"
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
