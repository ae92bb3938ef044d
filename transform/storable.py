"""What every target can hold: values too long for their column, or carrying control
characters, fault their record before any write, identically on every dialect.

PostgreSQL refuses a NUL in text outright and would abort the run's merge; MariaDB and
PostgreSQL refuse a value longer than its column, where SQLite stores anything. Checking
the schema's declared sizes here makes all three agree, and a bad value a fault instead
of a crash after earlier groups had already committed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from magsync.transform.faults import Fault, Stage, shown_value
from magsync.transform.schema import (
    EXTRA_COL,
    KEY_COL,
    KEY_MAX_LENGTH,
    LINE_COL,
    MULTI_LINE,
    SOURCE_COL,
    TEXT_MAX_BYTES,
    Entity,
    Kind,
)
from magsync.transform.values import opt_int, opt_str

# RE2 syntax, as text: Arrow compiles it (a literal NUL would cut a C string short).
CONTROL = r"[\x00-\x1f\x7f]"
CONTROL_BUT_LINES = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"  # tab, LF and CR allowed

Faults = dict[object, list[Fault]]


def unstorable(entity: Entity, frame: pd.DataFrame) -> Faults:
    """Faults, by row label, for text values the target cannot hold as they are: longer
    than their column (`too_long`) or holding a control character (`control_character`)."""
    faults: Faults = {}
    for col in entity.columns:
        if col.kind is Kind.STR and col.name in frame.columns:
            _check(entity, frame, col.name, col.max_length, faults, chars=True)
    if EXTRA_COL in frame.columns:  # JSON text: its control characters are escaped
        _check(entity, frame, EXTRA_COL, None, faults, chars=False)
    if KEY_COL in frame.columns:
        _check(entity, frame, KEY_COL, KEY_MAX_LENGTH, faults, chars=False)
    return faults


def _check(entity: Entity, frame: pd.DataFrame, name: str, max_length: int | None,
           faults: Faults, *, chars: bool) -> None:
    arr = pa.array(frame[name], type=pa.string(), from_pandas=True)
    if chars and _any_control_byte(arr):
        pattern = CONTROL_BUT_LINES if name in MULTI_LINE else CONTROL
        bad = _mask(pc.match_substring_regex(arr, pattern))
        for label, value in zip(frame.index[bad], frame[name].to_numpy()[bad], strict=True):
            char = next(c for c in str(value) if ord(c) < 0x20 or ord(c) == 0x7F)
            _add(entity, frame, faults, label, name, value, "control_character",
                 f"{name}: holds the control character U+{ord(char):04X}, which is not "
                 "stored (PostgreSQL cannot hold U+0000 at all)")
    lengths = pc.binary_length(arr)
    longest = pc.max(lengths).as_py()
    if longest is None or longest <= (max_length or TEXT_MAX_BYTES):
        return  # no value has more bytes, hence more characters, than allowed
    if max_length is None:
        bad = _mask(pc.greater(lengths, TEXT_MAX_BYTES))
        limit = f"{TEXT_MAX_BYTES} bytes in UTF-8"
    else:
        bad = _mask(pc.greater(pc.utf8_length(arr), max_length))
        limit = f"{max_length} characters"
    for label, value in zip(frame.index[bad], frame[name].to_numpy()[bad], strict=True):
        _add(entity, frame, faults, label, name, value, "too_long",
             f"{name}: {len(str(value))} characters, longer than the {limit} its column "
             "holds")


def _any_control_byte(arr: pa.Array | pa.ChunkedArray) -> bool:
    """Whether any byte of the values is below 0x20 or 0x7F (a cheap pre-check)."""
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    for chunk in chunks:
        data = chunk.buffers()[2]
        if data is not None:
            raw = np.frombuffer(data, np.uint8)
            if ((raw < 0x20) | (raw == 0x7F)).any():
                return True
    return False


def _mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    out: np.ndarray = np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False),
                                 dtype=bool)
    return out


def _add(entity: Entity, frame: pd.DataFrame, faults: Faults, label: object, column: str,
         value: object, rule: str, message: str) -> None:
    secret = entity.has(column) and entity.column(column).secret
    source = opt_str(frame.at[label, SOURCE_COL]) if SOURCE_COL in frame.columns else None
    line = opt_int(frame.at[label, LINE_COL]) if LINE_COL in frame.columns else None
    faults.setdefault(label, []).append(Fault(
        entity=entity.name, stage=Stage.NORMALISE, rule=rule, message=message,
        column=column, value=shown_value(value, secret=secret), source=source,
        source_line=line))
