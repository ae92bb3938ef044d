"""Checks across entities, in plain pandas: orphans, unknown groups, duplicate customers.

Every check is a pure function of staged frames returning `(good, faults)`: `good` is a
boolean Series aligned to the frame's index, `faults` one `Fault` per rejected row.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time

import numpy as np
import pandas as pd

from transform.faults import Fault, Stage, shown_value
from transform.schema import ADDRESS, CUSTOMER, KEY_COL, LINE_COL, SOURCE_COL, Entity

_NO_ID = -1  # customer ids are positive: a missing id ranks below every real one
_LINEAGE = (KEY_COL, SOURCE_COL, LINE_COL)


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
        )
        for msg, key, value, source, line in zip(messages, keys, shown, sources, lines, strict=True)
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


def _identity(customers: pd.DataFrame) -> pd.Series:
    """`website_id|lower(email)`, null where either part is null."""
    website = customers["website_id"].astype("str")
    email = customers["email"].astype("str").str.lower()
    ident = website.str.cat(email, sep="|")
    return ident.where(customers["website_id"].notna() & customers["email"].notna())


def _ranked(customers: pd.DataFrame) -> pd.DataFrame:
    """Identity, id rank and file position of each row with an identity, best last."""
    ranked = pd.DataFrame(
        {
            "ident": _identity(customers),
            "cid": customers["customer_id"].astype("Int64").fillna(_NO_ID).to_numpy("int64"),
            "seq": np.arange(len(customers), dtype="int64"),
        },
        index=customers.index,
    )
    ranked = ranked[ranked["ident"].notna()]
    return ranked.sort_values(["cid", "seq"], kind="stable")


def _duplicate_faults(
    losers: pd.DataFrame, kept: Sequence[str], values: Sequence[object] | None = None
) -> list[Fault]:
    return row_faults(
        CUSTOMER,
        Stage.INTEGRITY,
        losers,
        rule="duplicate_key",
        column="email",
        message=[f"another customer has this website and email; kept: {k}" for k in kept],
        values=values,
    )


def _describe(winners: pd.DataFrame) -> list[str]:
    """`record_key (source line N)` of each winning row, for the losers' messages."""
    return [
        f"{plain(k)} (line {plain(n)})"
        for k, n in zip(_col(winners, KEY_COL), _col(winners, LINE_COL), strict=True)
    ]


def dedupe_customers(customers: pd.DataFrame) -> tuple[pd.Series, list[Fault]]:
    """One customer per (website_id, lower(email)): the highest customer_id, else the last.

    Rows without an id rank below rows with one; among equal ids the last in frame
    order wins. Rows lacking website_id or email are not compared (validation faults them).
    """
    ranked = _ranked(customers)
    losing = ranked["ident"].duplicated(keep="last").to_numpy()
    loser_idx = ranked.index[losing]
    good = pd.Series(~customers.index.isin(loser_idx), index=customers.index, name="good")
    if not losing.any():
        return good, []
    loser_ident = ranked.loc[loser_idx, "ident"]
    winners = ranked[~losing & ranked["ident"].isin(set(loser_ident)).to_numpy()]
    kept = dict(zip(winners["ident"], _describe(customers.loc[winners.index]), strict=True))
    return good, _duplicate_faults(customers.loc[loser_idx], [kept[i] for i in loser_ident])


def _col(df: pd.DataFrame, name: str) -> list[object]:
    return df[name].tolist() if name in df.columns else [None] * len(df)


def _empty_seen() -> pd.DataFrame:
    return pd.DataFrame(
        {
            KEY_COL: pd.Series(dtype="str"),
            SOURCE_COL: pd.Series(dtype="str"),
            LINE_COL: pd.Series(dtype="Int64"),
            "cid": pd.Series(dtype="int64"),
        },
        index=pd.Index([], dtype="str"),
    )


@dataclass
class TrackResult:
    """What `DuplicateTracker.check` decided for one chunk."""

    good: pd.Series  # aligned to the chunk: False for its rows that lost
    faults: list[Fault]  # the chunk's losing rows
    superseded: list[Fault]  # winners of EARLIER chunks that a row of this chunk beats


@dataclass
class DuplicateTracker:
    """One customer per (website_id, lower(email)) across the chunks of one run.

    Feed every customer chunk to `check` in file order (SOAP: ascending customer_id).
    Within a chunk it applies `dedupe_customers`. Across chunks it remembers the current
    holder of each identity (its customer_id, record_key, source and line). A later row
    beats the holder when its customer_id is at least the holder's (rows without ids
    always win, being later in file order): the earlier holder then comes back in
    `superseded` with a `duplicate_key` fault. It may already be loaded: when its
    record_key equals the winner's, the winner's upsert overwrites it; otherwise the
    caller must retract it (drop it from staging or delete it from the target). A later
    row with a lower customer_id loses at once and is faulted in `faults`. Chunks need
    unique index labels; rows without website_id or email are left alone (validation
    faults them).
    """

    _seen: pd.DataFrame = field(default_factory=_empty_seen)

    def check(self, customers: pd.DataFrame) -> TrackResult:
        """Dedupe one chunk within itself and against every earlier chunk."""
        good, faults = dedupe_customers(customers)
        ranked = _ranked(customers.loc[good])
        new = customers.loc[ranked.index, list(_LINEAGE)].assign(
            cid=ranked["cid"], label=ranked.index
        )
        new.index = pd.Index(ranked["ident"].to_numpy(), dtype="str")
        old = self._seen.reindex(new.index)
        clash = old["cid"].notna().to_numpy()
        beats = clash & (new["cid"].to_numpy() >= old["cid"].fillna(_NO_ID).to_numpy())
        loses = clash & ~beats
        lost_labels = new.loc[loses, "label"].tolist()
        good.loc[lost_labels] = False
        faults += _duplicate_faults(customers.loc[lost_labels], _describe(old.loc[loses]))
        was = old.loc[beats]
        superseded = _duplicate_faults(
            was, _describe(new.loc[beats]), values=[i.split("|", 1)[1] for i in was.index]
        )
        seen = pd.concat([self._seen, new.loc[~loses].drop(columns="label")])
        self._seen = seen[~seen.index.duplicated(keep="last")]
        return TrackResult(good=good, faults=faults, superseded=superseded)

    def __len__(self) -> int:
        return len(self._seen)
