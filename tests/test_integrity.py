"""Checks across records: duplicates, orphans, unknown groups."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from magsync.transform.faults import Fault, Stage
from magsync.transform.integrity import (
    addresses_of_replaced_customers,
    addresses_with_known_customer,
    customers_with_known_group,
    last_of_each_key,
    winners,
)
from magsync.transform.schema import (
    ADDRESS,
    CUSTOMER,
    KEY_COL,
    LINE_COL,
    PANDAS_DTYPES,
    SOURCE_COL,
    Entity,
)


def frame(entity: Entity, rows: list[dict[str, Any]], first_line: int = 2) -> pd.DataFrame:
    """A staged frame with the schema's dtypes; `_line` counts from `first_line`."""
    df = pd.DataFrame(
        {
            c.name: pd.Series([r.get(c.name) for r in rows], dtype=PANDAS_DTYPES[c.kind])
            for c in entity.public_columns
        }
    )
    df[KEY_COL] = pd.Series([r.get(KEY_COL, f"[{i}]") for i, r in enumerate(rows)], dtype="str")
    df[SOURCE_COL] = pd.Series(["in.csv"] * len(rows), dtype="str")
    df[LINE_COL] = pd.Series(range(first_line, first_line + len(rows)), dtype="Int64")
    return df


def where(faults: list[Fault]) -> list[tuple[str, str | None, str | None, int | None]]:
    """(rule, column, value, line) of each fault, in line order."""
    return [(f.rule, f.column, f.value, f.source_line) for f in sorted(faults, key=_line)]


def _line(fault: Fault) -> int:
    return fault.source_line or 0


def addresses() -> pd.DataFrame:
    keys = ["[1]", "[2]", "[7]", None]
    return frame(ADDRESS, [{"customer_key": k, KEY_COL: f"[{k},1]"} for k in keys])


@pytest.mark.parametrize("known", [{"[1]", "[2]"}, pd.Index(["[2]", "[1]"], dtype="str")])
def test_orphan_addresses_are_faulted(known: set[str] | pd.Index) -> None:
    good, faults = addresses_with_known_customer(addresses(), known)
    assert good.tolist() == [True, True, False, False]
    assert where(faults) == [
        ("unknown_customer", "customer_key", "[7]", 4),
        ("unknown_customer", "customer_key", None, 5),
    ]
    orphan = next(f for f in faults if f.source_line == 4)
    assert (orphan.stage, orphan.entity, orphan.key, orphan.source) == (
        Stage.INTEGRITY,
        "address",
        "[[7],1]",
        "in.csv",
    )


def test_customers_of_unknown_groups_are_faulted() -> None:
    df = frame(CUSTOMER, [{"group_id": g} for g in (1, 4, None, 0)]).set_axis(list("wxyz"))
    good, faults = customers_with_known_group(df, {0, 1, 2})
    assert good.to_dict() == {"w": True, "x": False, "y": True, "z": True}
    assert where(faults) == [("unknown_group", "group_id", "4", 3)]


def test_the_last_record_of_a_key_wins() -> None:
    keys = ["[1]", "[2]", "[1]", "[3]", "[1]"]
    df = frame(CUSTOMER, [{KEY_COL: k} for k in keys])
    good, faults = last_of_each_key(CUSTOMER, df)
    assert good.tolist() == [False, True, False, True, True]
    assert [(f.rule, f.key, f.source_line) for f in faults] == [
        ("duplicate_key", "[1]", 2), ("duplicate_key", "[1]", 4)]
    assert all("(line 6) replaces" in f.message for f in faults)
    assert winners(df, good) == {"[1]": ("in.csv", 6)}


def test_addresses_above_the_winning_record_are_duplicates() -> None:
    rows = [{"customer_key": k, KEY_COL: f"[{k},{n}]"}
            for k, n in [("[1]", 1), ("[1]", 2), ("[2]", 1), ("[1]", 1), ("[1]", 2)]]
    df = frame(ADDRESS, rows)  # lines 2..6; the winning record of [1] is on line 5
    good, faults = addresses_of_replaced_customers(df, {"[1]": ("in.csv", 5)})
    assert good.tolist() == [False, False, True, True, True]
    assert [(f.rule, f.column, f.source_line) for f in faults] == [
        ("duplicate_key", "customer_key", 2), ("duplicate_key", "customer_key", 3)]
    other_file = df.assign(**{SOURCE_COL: "addresses.csv"})
    assert addresses_of_replaced_customers(other_file, {"[1]": ("in.csv", 5)})[0].all()
