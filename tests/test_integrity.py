"""Cross-entity checks: orphans, unknown groups, duplicate customers."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from transform.faults import Fault, Stage
from transform.integrity import (
    DuplicateTracker,
    addresses_with_known_customer,
    customers_with_known_group,
    dedupe_customers,
)
from transform.schema import (
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


def customer(website: int | None, email: str | None, cid: int | None = None) -> dict[str, Any]:
    return {"website_id": website, "email": email, "customer_id": cid, KEY_COL: f"[{cid}]"}


@pytest.mark.parametrize(
    ("rows", "kept"),
    [
        # with ids: the highest id wins, wherever it sits
        ([customer(1, "a@x.com", 7), customer(1, "A@X.com", 9), customer(1, "a@x.com", 8)], [1]),
        # without ids: the last in file order wins; case does not matter
        ([customer(1, "a@x.com"), customer(1, "A@x.COM"), customer(1, "a@x.com")], [2]),
        # an id beats no id
        ([customer(1, "a@x.com", 5), customer(1, "a@x.com")], [0]),
        # same email on two websites: two customers
        ([customer(1, "a@x.com"), customer(2, "a@x.com")], [0, 1]),
        # rows without an identity are left to validation
        ([customer(None, "a@x.com"), customer(1, None), customer(None, "a@x.com")], [0, 1, 2]),
    ],
)
def test_dedupe_keeps_one_customer_per_website_and_email(
    rows: list[dict[str, Any]], kept: list[int]
) -> None:
    df = frame(CUSTOMER, rows)
    good, faults = dedupe_customers(df)
    assert [i for i, g in enumerate(good) if g] == kept
    assert sorted(_line(f) for f in faults) == [i + 2 for i in range(len(rows)) if i not in kept]
    assert {f.rule for f in faults} <= {"duplicate_key"}
    for f in faults:
        assert (f.stage, f.column) == (Stage.INTEGRITY, "email")
        assert f"line {kept[0] + 2}" in f.message


def test_tracker_later_chunk_without_ids_supersedes_earlier_winner() -> None:
    tracker = DuplicateTracker()
    first = tracker.check(frame(CUSTOMER, [customer(1, "a@x.com"), customer(1, "b@x.com")]))
    assert first.good.all() and first.faults == [] and first.superseded == []

    second = tracker.check(
        frame(CUSTOMER, [customer(1, "c@x.com"), customer(1, "A@x.com")], first_line=4)
    )
    assert second.good.all() and second.faults == []
    assert where(second.superseded) == [("duplicate_key", "email", "a@x.com", 2)]
    assert "line 5" in second.superseded[0].message
    assert len(tracker) == 3


def test_tracker_later_chunk_with_lower_id_loses_at_once() -> None:
    tracker = DuplicateTracker()
    tracker.check(frame(CUSTOMER, [customer(1, "a@x.com", 9)]))
    later = frame(CUSTOMER, [customer(1, "a@x.com", 3), customer(1, "a@x.com", 4)], first_line=3)
    result = tracker.check(later.set_axis(["p", "q"]))
    assert result.good.to_dict() == {"p": False, "q": False}
    assert where(result.faults) == [
        ("duplicate_key", "email", "a@x.com", 3),
        ("duplicate_key", "email", "a@x.com", 4),
    ]
    assert result.superseded == []

    higher = tracker.check(frame(CUSTOMER, [customer(1, "a@x.com", 12)], first_line=5))
    assert higher.good.all()
    assert [(f.key, f.source_line) for f in higher.superseded] == [("[9]", 2)]
