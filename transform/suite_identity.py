"""What a stored validation fault still depends on, so that an unchanged record can be
re-reported from the fault table without running Great Expectations (load/refault.py).

Suite digest (one per run): BLAKE2b with an 8-byte digest, as 16 lower-case hex digits,
over the UTF-8 bytes of the canonical JSON (keys sorted, separators `,` and `:`) of
`{"format": FAULT_FORMAT, "gx": <great_expectations version>, "suites": {<entity>: <suite
JSON>}}`. Any edit of a suite's content (not its layout), another Great Expectations
release, or a new FAULT_FORMAT (how magsync turns a failed expectation into faults) gives
another digest, and every record is validated again once.

A validation fault is re-reported only when the expectation that raised it judges each
row by that row alone: a column-values or column-pair expectation, without `mostly`,
without a run parameter (`run_started` moves every run), and not a uniqueness check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from hashlib import blake2b
from importlib import metadata
from typing import Any

FAULT_FORMAT = 1  # bump when validate.py's faults (rule, column, message, value) change
_ROW_LOCAL = ("expect_column_values_to_", "expect_column_pair_values_")


def gx_version() -> str | None:
    """The installed Great Expectations release, read without importing it."""
    try:
        return metadata.version("great_expectations")
    except metadata.PackageNotFoundError:
        return None


def suite_digest(suites: Mapping[str, Mapping[str, Any]]) -> str:
    """The documented digest of a run's suites (entity -> suite JSON as read)."""
    data = {"format": FAULT_FORMAT, "gx": gx_version(), "suites": dict(suites)}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
    return blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def row_local(expectation: Mapping[str, Any], has_param: bool) -> bool:
    """Whether the expectation judges each row by that row's values alone."""
    kind = str(expectation.get("type", ""))
    mostly = (expectation.get("kwargs") or {}).get("mostly")
    return (kind.startswith(_ROW_LOCAL) and "unique" not in kind and not has_param
            and mostly in (None, 1, 1.0))
