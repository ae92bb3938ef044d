"""Scalar helpers: pandas cells (which may be NA) to plain optional Python values."""

from __future__ import annotations

from typing import Any

import pandas as pd


def is_missing(value: Any) -> bool:
    """Whether a cell is null (None, NaN, NA, NaT)."""
    return value is None or bool(pd.isna(value))


def opt_str(value: Any) -> str | None:
    """The cell as text, or None."""
    return None if is_missing(value) else str(value)


def opt_int(value: Any) -> int | None:
    """The cell as an int, or None."""
    return None if is_missing(value) else int(value)
