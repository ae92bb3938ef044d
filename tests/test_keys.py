"""Record keys and the persisted row hash."""

from __future__ import annotations

import hashlib

import pandas as pd

from magsync.transform.keys import address_key, customer_key, row_hashes
from magsync.transform.schema import CUSTOMER


def test_customer_keys_by_id_or_natural() -> None:
    ids = pd.Series([5, None], dtype="Int64")
    web = pd.Series([1, 2], dtype="Int64")
    email = pd.Series(["x@y.com", 'q"uote@y.com'], dtype="str")
    assert customer_key(ids, web, email).tolist() == ["[5]", '[2,"q\\"uote@y.com"]']


def test_address_key_nests_customer_key() -> None:
    out = address_key(pd.Series([None, 9], dtype="Int64"),
                      pd.Series(['[1,"a@b.c"]', "[3]"], dtype="str"),
                      pd.Series([2, 1], dtype="Int64"))
    assert out.tolist() == ['[[1,"a@b.c"],2]', "[9]"]


def frame(**cols: object) -> pd.DataFrame:
    base = {"customer_id": pd.Series([7], dtype="Int64"),
            "email": pd.Series(["zoë@example.com"], dtype="str"),
            "created_at": pd.Series([pd.Timestamp("2024-01-02 03:04:05", tz="UTC")]).astype(
                "datetime64[us, UTC]"),
            "dob": pd.Series([pd.Timestamp("1980-01-02")]).astype("datetime64[s]"),
            "disable_auto_group_change": pd.Series([True], dtype="boolean")}
    base.update(cols)
    return pd.DataFrame(base)


def documented_hash(pairs: dict[str, str]) -> int:
    """The algorithm as the keys module documents it, written out independently."""
    text = "\x1f".join(f"{k}\x1e{v}" for k, v in sorted(pairs.items()))
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def test_row_hash_is_the_documented_value() -> None:
    expected = documented_hash({
        "customer_id": "7", "email": "zoë@example.com",
        "created_at": "1704164645000000",  # 2024-01-02T03:04:05Z in microseconds
        "dob": "1980-01-02", "disable_auto_group_change": "1"})
    assert row_hashes(CUSTOMER, frame()).tolist() == [expected]
    # Persisted in every target: this value must never change across releases.
    assert expected == 8256957369969216752


def test_row_hash_ignores_absent_and_null_columns() -> None:
    with_null = frame(taxvat=pd.Series([None], dtype="str"))
    assert row_hashes(CUSTOMER, with_null).tolist() == row_hashes(CUSTOMER, frame()).tolist()


def test_row_hash_sees_every_value() -> None:
    base = row_hashes(CUSTOMER, frame())[0]
    changed = frame(password_hash=pd.Series(["abc:salt"], dtype="str"))
    assert row_hashes(CUSTOMER, changed)[0] != base
    later = frame(created_at=pd.Series([pd.Timestamp("2024-01-02 03:04:06", tz="UTC")]))
    assert row_hashes(CUSTOMER, later)[0] != base
