"""Columns a source cannot deliver (SOAP v2 has no gender, default flags, vat_id...).

Such a column is neither compared nor overwritten: before diffing, each record takes the
stored value of every column its batch declares unprovided, and its row hash is computed
again with those values. An unchanged record then hashes as stored, and an update writes
the stored values back, so exports and history keep them. A record the target does not
hold yet gets nulls there. The run says so once per entity (summary.json `not_provided`,
a note), never per record.
"""

from __future__ import annotations

import pandas as pd

from magsync.load.report import RunReport
from magsync.load.sql_store import SqlTarget
from magsync.transform.batch import RawBatch
from magsync.transform.diff import KeyIndex
from magsync.transform.keys import row_hashes
from magsync.transform.prepare import Prepared
from magsync.transform.schema import EXTRA_COL, HASH_COL, KEY_COL, PANDAS_DTYPES, Kind


def keep_stored(target: SqlTarget, index: KeyIndex, report: RunReport, raw: RawBatch,
                prepared: Prepared) -> Prepared:
    """`prepared` with its unprovided columns taken from the target, hashes recomputed
    (`index`: the entity's stored keys)."""
    entity = prepared.entity
    columns = sorted(c for c in raw.unprovided if entity.has(c) or c == EXTRA_COL)
    if not columns:
        return prepared
    _say_once(report, entity.name, columns, bool(index.active_count))
    frame = prepared.frame
    if frame.empty:
        return prepared
    keys = frame[KEY_COL]
    known = index.positions(keys) >= 0  # only stored keys: a query
    stored = target.fetch_rows(entity, keys[known].tolist(), with_secrets=True) if (
        known.any()) else None  # a first load asks nothing
    aligned = (stored if stored is not None else pd.DataFrame()).reindex(keys.to_numpy())
    for name in columns:
        kind = Kind.JSON if name == EXTRA_COL else entity.column(name).kind
        dtype = PANDAS_DTYPES[kind]
        if name in aligned.columns:  # set_axis, not to_numpy: keeps the time zone
            frame[name] = aligned[name].set_axis(frame.index).astype(dtype)  # type: ignore[call-overload]
        else:
            frame[name] = pd.Series(index=frame.index, dtype=dtype)
    frame[HASH_COL] = row_hashes(entity, frame)
    prepared.frame = frame
    return prepared


def _say_once(report: RunReport, entity: str, columns: list[str], stored: bool) -> None:
    if entity in report.not_provided:
        return
    report.not_provided[entity] = columns
    what = "kept as stored" if stored else "left null (nothing stored yet)"
    report.notes.append(f"{entity}: {', '.join(columns)} not provided by the source: {what}")
