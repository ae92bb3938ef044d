"""Normalisation: raw string frames in, typed frames out, bad values as faults.

Pure functions on DataFrames. A value that cannot be converted faults its record (the
record leaves the frame) instead of raising; the caller keeps the record's key so the
stored row counts as present.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from magsync.transform.faults import Fault, Stage, shown_value
from magsync.transform.schema import (
    EXTRA_COL,
    LINE_COL,
    PANDAS_DTYPES,
    RAW_DIGEST_COL,
    SOURCE_COL,
    Entity,
    Kind,
)
from magsync.transform.values import opt_int, opt_str

TRUE_WORDS = frozenset({"1", "true", "yes", "y"})
FALSE_WORDS = frozenset({"0", "false", "no", "n"})
UPPER_CASE = frozenset({"country_id"})
LOWER_CASE = frozenset({"email"})
PLAIN_INT = r"^-?[0-9]{1,18}$"  # fits int64; anything else takes pandas' slower parse
# MySQL's "zero date": Magento 1 writes it for a date or time it never set (dob, updated_at,
# rp_token_created_at, ...). It names no instant, so it reads as null.
ZERO_DATE = r"0000-00-00(?:[ T]00:00:00)?"
# The version of what turns raw strings into typed values (this module, transform/prepare.py,
# keys, storable checks). It seeds every stored raw digest (transform/rawdigest.py): raise
# it with any change that can type a raw record differently, and the next re-sync re-types
# every record once instead of skipping those whose raw values did not change.
NORMALISE_VERSION = 1


@dataclass
class Normalised:
    """A typed frame and the row faults found on the way, aligned by index label."""

    frame: pd.DataFrame
    faults: dict[object, list[Fault]] = field(default_factory=dict)

    def fault(self, label: object, fault: Fault) -> None:
        """Record a fault against the row with index `label`."""
        self.faults.setdefault(label, []).append(fault)


def clean_strings(values: pd.Series) -> pd.Series:
    """Trim, Unicode NFC, and empty string to null."""
    arr = _nfc(pc.utf8_trim_whitespace(pa.array(values, type=pa.string(), from_pandas=True)))
    arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
    out: pd.Series = arr.to_pandas().astype("str").set_axis(values.index)
    return out


def clean_street(values: pd.Series) -> pd.Series:
    """Street lines joined with a bare newline, each line trimmed."""
    text = clean_strings(values.str.replace("\r\n", "\n", regex=False)
                         .str.replace("\r", "\n", regex=False))
    has_lines = text.str.contains("\n", regex=False, na=False)
    if has_lines.any():
        text[has_lines] = text[has_lines].map(
            lambda s: "\n".join(line.strip() for line in s.split("\n") if line.strip()))
    return text


def _nfc(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Unicode NFC, applied only to the values that are not plain ASCII (already NFC)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    data = arr.buffers()[2]
    if data is None or not (np.frombuffer(data, np.uint8) >= 0x80).any():
        return arr  # every byte of the data buffer is ASCII
    wide = pc.invert(pc.fill_null(pc.string_is_ascii(arr), True))
    return pc.replace_with_mask(arr, wide, pc.utf8_normalize(arr.filter(wide), "NFC"))


def to_int(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Integers from text; returns (typed values, mask of unparseable non-nulls)."""
    arr = pa.array(values, type=pa.string(), from_pandas=True)
    if pc.all(pc.match_substring_regex(arr, PLAIN_INT), skip_nulls=True).as_py() is not False:
        # Plain decimal integers, the common case: Arrow casts them exactly.
        ints = pc.cast(arr, pa.int64()).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        typed: pd.Series = ints.astype("Int64").set_axis(values.index)
        return typed, pd.Series(False, index=values.index)
    parsed = pd.to_numeric(values, errors="coerce")
    bad = values.notna() & (parsed.isna() | (parsed != np.floor(parsed)))
    return parsed.where(~bad).astype("Int64"), bad


def to_timestamp(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """UTC timestamps from Magento's `YYYY-MM-DD HH:MM:SS` (UTC) or ISO 8601 with offset."""
    parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
    parsed = parsed.astype("datetime64[us, UTC]")
    return parsed, values.notna() & parsed.isna()


def to_date(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Dates from `YYYY-MM-DD` with or without a `00:00:00` time."""
    parsed = pd.to_datetime(values.str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
    return parsed.astype("datetime64[s]"), values.notna() & parsed.isna()


def to_bool(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Booleans from 1/0, true/false, yes/no."""
    lowered = values.str.lower()
    true = lowered.isin(TRUE_WORDS)
    false = lowered.isin(FALSE_WORDS)
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out[true] = True
    out[false] = False
    return out, values.notna() & ~true & ~false


def to_gender(values: pd.Series, labels: Mapping[str, int]) -> tuple[pd.Series, pd.Series]:
    """Gender option ids from labels (case-insensitive) or from ids already numeric."""
    folded = {k.casefold(): v for k, v in labels.items()}
    by_label = values.str.casefold().map(folded)
    numeric, _ = to_int(values)
    known_ids = numeric.isin(set(labels.values()))
    out = by_label.astype("Int64").where(by_label.notna(), numeric.where(known_ids))
    return out.astype("Int64"), values.notna() & out.isna()


CONVERTERS = {
    Kind.INT: to_int,
    Kind.TIMESTAMP: to_timestamp,
    Kind.DATE: to_date,
    Kind.BOOL: to_bool,
}
RULES = {
    Kind.INT: "not_an_integer",
    Kind.TIMESTAMP: "bad_timestamp",
    Kind.DATE: "bad_date",
    Kind.BOOL: "not_a_boolean",
}


def normalise(entity: Entity, raw: pd.DataFrame,
              gender_labels: Mapping[str, int]) -> Normalised:
    """Types every schema column of `raw` (strings); unparseable values become faults."""
    out = Normalised(pd.DataFrame(index=raw.index))
    columns: dict[str, pd.Series] = {}  # one frame built at the end: a column insert
    for col in entity.columns:          # costs about 1 ms, too much on small SOAP batches
        if col.name not in raw.columns:
            columns[col.name] = pd.Series(pd.NA, index=raw.index, dtype=PANDAS_DTYPES[col.kind])
            continue
        text = clean_street(raw[col.name]) if col.name == "street" else clean_strings(
            raw[col.name])
        if col.name in LOWER_CASE:
            text = text.str.lower()
        if col.name in UPPER_CASE:
            text = text.str.upper()
        if col.name == "gender":
            typed, bad = to_gender(text, gender_labels)
            rule = "unknown_gender"
        elif col.kind in CONVERTERS:
            if col.kind in (Kind.TIMESTAMP, Kind.DATE):
                text = _without_zero_dates(text)
            typed, bad = CONVERTERS[col.kind](text)
            rule = RULES[col.kind]
        else:
            typed, bad = text, None
        columns[col.name] = typed
        if bad is not None and bad.any():
            _fault_rows(out, entity, raw, col.name, text, bad, rule)
    for name in (EXTRA_COL, SOURCE_COL, LINE_COL, RAW_DIGEST_COL):
        if name in raw.columns:
            columns[name] = raw[name]
    out.frame = pd.DataFrame(columns, index=raw.index)
    return out


def _without_zero_dates(text: pd.Series) -> pd.Series:
    """The values, with MySQL's zero date as null."""
    zero = text.str.startswith("0000-00-00", na=False)
    if not zero.any():
        return text
    return text.mask(zero & text.str.fullmatch(ZERO_DATE, na=False))


def _fault_rows(out: Normalised, entity: Entity, raw: pd.DataFrame, column: str,
                text: pd.Series, bad: pd.Series, rule: str) -> None:
    secret = entity.column(column).secret
    for label in bad.index[bad.to_numpy(dtype=bool)]:
        value = text.at[label]
        out.fault(label, Fault(
            entity=entity.name, stage=Stage.NORMALISE, rule=rule, column=column,
            value=shown_value(value, secret=secret),
            message=f"{column}: cannot read {'a value' if secret else repr(value)} as "
                    f"{entity.column(column).kind.value}",
            source=_get(raw, SOURCE_COL, label), source_line=_line(raw, label)))


def _get(raw: pd.DataFrame, col: str, label: object) -> str | None:
    if col not in raw.columns:
        return None
    return opt_str(raw.at[label, col])


def _line(raw: pd.DataFrame, label: object) -> int | None:
    return opt_int(_get(raw, LINE_COL, label))
