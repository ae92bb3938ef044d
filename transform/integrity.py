"""Checks across records, in plain pandas: duplicates, orphans, unknown groups.

Every check is a pure function of staged frames returning `(good, faults)`: `good` is a
boolean Series aligned to the frame's index, `faults` one `Fault` per rejected row.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime, time

import numpy as np
import pandas as pd

from magsync.transform.faults import Fault, Stage, shown_value
from magsync.transform.schema import (
    ADDRESS,
    CUSTOMER,
    KEY_COL,
    LINE_COL,
    RAW_DIGEST_COL,
    SOURCE_COL,
    Entity,
)


def plain(value: object) -> object:
    """A scalar as a report shows it: None for nulls, ISO text for times, Python numbers."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):  # type: ignore[call-overload]
        return None
    if isinstance(value, datetime) and value.tzinfo is None and value.time() == time(0):
        return value.date().isoformat()  # a Kind.DATE value: timestamps are UTC-aware
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _optional(values: list[object]) -> list[object]:
    return [plain(v) for v in values]


def row_faults(
    entity: Entity,
    stage: Stage,
    rows: pd.DataFrame,
    *,
    rule: str,
    column: str | None,
    message: str | Sequence[str],
    values: Sequence[object] | None = None,
) -> list[Fault]:
    """One fault per row of `rows` (a slice of a staged frame), with key and source location."""
    n = len(rows)

    def lineage(name: str) -> list[object]:
        return _optional(rows[name].tolist()) if name in rows.columns else [None] * n

    if values is None:
        values = rows[column].tolist() if column is not None and column in rows.columns else []
    shown = list(values) or [None] * n
    secret = column is not None and entity.has(column) and entity.column(column).secret
    messages = [message] * n if isinstance(message, str) else list(message)
    keys, sources, lines = lineage(KEY_COL), lineage(SOURCE_COL), lineage(LINE_COL)
    digests = lineage(RAW_DIGEST_COL)
    return [
        Fault(
            entity=entity.name,
            stage=stage,
            rule=rule,
            message=msg,
            key=None if key is None else str(key),
            column=column,
            value=shown_value(plain(value), secret=secret),
            source=None if source is None else str(source),
            source_line=None if line is None else int(line),  # type: ignore[call-overload]
            raw_digest=None if digest is None else int(digest),  # type: ignore[call-overload]
        )
        for msg, key, value, source, line, digest in zip(messages, keys, shown, sources, lines,
                                                         digests, strict=True)
    ]


def _as_index(known: Collection[object] | pd.Index) -> pd.Index:
    return known if isinstance(known, pd.Index) else pd.Index(list(known))


def addresses_with_known_customer(
    addresses: pd.DataFrame, known_customer_keys: Collection[str] | pd.Index | np.ndarray
) -> tuple[pd.Series, list[Fault]]:
    """Addresses whose `customer_key` names a known customer; the others faulted.

    `known_customer_keys` is the set of known keys, or already a boolean mask per row.
    """
    col = ADDRESS.parent_key_col or "customer_key"
    if isinstance(known_customer_keys, np.ndarray):
        good = pd.Series(known_customer_keys.astype(bool), index=addresses.index)
    else:
        good = addresses[col].isin(_as_index(known_customer_keys)).astype(bool)
    bad = addresses.loc[~good]
    faults = row_faults(
        ADDRESS,
        Stage.INTEGRITY,
        bad,
        rule="unknown_customer",
        column=col,
        message="the address belongs to no customer known to this run or the target",
    )
    return good.rename("good"), faults


def customers_with_known_group(
    customers: pd.DataFrame, known_group_ids: Collection[int] | pd.Index
) -> tuple[pd.Series, list[Fault]]:
    """Customers whose `group_id` is a known group (or null); the others faulted."""
    group = customers["group_id"]
    good = (group.isna() | group.isin(_as_index(known_group_ids))).astype(bool)
    faults = row_faults(
        CUSTOMER,
        Stage.INTEGRITY,
        customers.loc[~good],
        rule="unknown_group",
        column="group_id",
        message="the customer's group_id names no known customer group",
    )
    return good.rename("good"), faults


def last_of_each_key(entity: Entity, frame: pd.DataFrame) -> tuple[np.ndarray, list[Fault]]:
    """The one duplicate rule: the last record of each key (in input order) wins; every
    earlier one faults as `duplicate_key`, naming the line of the record that replaces it."""
    earlier = frame[KEY_COL].duplicated(keep="last").to_numpy(dtype=bool)
    if not earlier.any():
        return ~earlier, []
    losers = frame[earlier]
    lines = _col(frame, LINE_COL)
    winner_line = dict(zip(frame[KEY_COL].tolist(), lines, strict=True))  # the last one
    faults = row_faults(
        entity, Stage.INTEGRITY, losers, rule="duplicate_key", column=None,
        message=[f"a later record with the same key (line {plain(winner_line[k])}) "
                 "replaces this one" for k in losers[KEY_COL].tolist()])
    return ~earlier, faults


def winners(frame: pd.DataFrame, good: np.ndarray) -> dict[str, tuple[object, object]]:
    """(source, line) of the winning record of each key that had duplicates."""
    repeated = frame[KEY_COL].duplicated(keep=False).to_numpy(dtype=bool)
    rows = frame[repeated & good]
    return dict(zip(rows[KEY_COL].tolist(),
                    zip(_col(rows, SOURCE_COL), _col(rows, LINE_COL), strict=True),
                    strict=True))


def addresses_of_replaced_customers(
    addresses: pd.DataFrame, replaced: Mapping[str, tuple[object, object]]
) -> tuple[np.ndarray, list[Fault]]:
    """Addresses read with an earlier record of a customer that a later record replaced
    (in the same file, above the winning record: a CE one-file export lists a customer's
    addresses under its row); they fault as `duplicate_key` rather than join the winner."""
    col = ADDRESS.parent_key_col or "customer_key"
    if not replaced or not len(addresses):
        return np.ones(len(addresses), bool), []
    keys = addresses[col].tolist()
    sources, lines = _col(addresses, SOURCE_COL), _col(addresses, LINE_COL)
    bad = np.zeros(len(addresses), bool)
    for i, (key, source, line) in enumerate(zip(keys, sources, lines, strict=True)):
        won = replaced.get(key)
        if won is not None and source == won[0] and line is not None and won[1] is not None:
            bad[i] = int(line) < int(won[1])  # type: ignore[call-overload]
    faults = row_faults(
        ADDRESS, Stage.INTEGRITY, addresses[bad], rule="duplicate_key", column=col,
        message=[f"belongs to an earlier record of its customer, which a later record "
                 f"(line {plain(replaced[k][1])}) replaces" for k in addresses[col][bad]])
    return ~bad, faults


def _col(df: pd.DataFrame, name: str) -> list[object]:
    return df[name].tolist() if name in df.columns else [None] * len(df)
