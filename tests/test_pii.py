"""The PII transformation on tiny Arrow tables: the mask shapes the README documents,
hashing and dropping."""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
import pytest

from magsync.transform.pii import KEEP_ALL, PiiPolicy

KEY = b"0123456789abcdef"


@pytest.mark.parametrize(("column", "raw", "masked"), [
    ("email", "Jane.Doe@example.com", "J***@example.com"),
    ("email", "no-at-sign", "n***"),
    ("telephone", "+44 20 7946 0958", "***58"),
    ("fax", "12", "***"),
    ("firstname", "Jane", "J***"),
    ("firstname", "", ""),
    ("firstname", None, None),
])
def test_mask_shapes(column: str, raw: str | None, masked: str | None) -> None:
    entity = "address" if column in ("telephone", "fax") else "customer"
    policy = PiiPolicy({entity: {column: "mask"}})
    table = pa.table({column: pa.array([raw, raw], pa.string())})
    assert policy.apply(entity, table).column(column).to_pylist() == [masked, masked]


def test_hash_lowercases_emails_and_drop_removes() -> None:
    policy = PiiPolicy({"customer": {"email": "hash", "dob": "drop", "record_key": "hash"}},
                       KEY)
    table = pa.table({"email": ["A@X.test", "a@x.test", None], "dob": [1, 2, 3],
                      "record_key": ['[1,"a@x.test"]'] * 3})
    out = policy.apply("customer", table)
    want = hmac.new(KEY, b"a@x.test", hashlib.sha256).hexdigest()
    assert out.column_names == ["email", "record_key"]
    assert out.column("email").to_pylist() == [want, want, None]
    key = hmac.new(KEY, b'[1,"a@x.test"]', hashlib.sha256).hexdigest()
    assert out.column("record_key").to_pylist() == [key] * 3
    assert PiiPolicy(policy.rules, b"another-key-0123").apply("customer", table) \
        .column("email")[0].as_py() != want


def test_fingerprints_name_the_rules_and_key_never_the_key() -> None:
    rules = {"customer": {"email": "hash"}}
    one, other = PiiPolicy(rules, KEY), PiiPolicy(rules, b"another-key-0123")
    assert KEEP_ALL.fingerprint("customer") == ""
    assert one.fingerprint("customer") != other.fingerprint("customer")
    assert KEY.decode() not in one.fingerprint("customer")
    assert one.fingerprint("address") == ""
    with pytest.raises(ValueError, match="PII key is required"):
        PiiPolicy(rules)


def test_extra_can_be_dropped_not_masked() -> None:
    schema = pa.schema([pa.field("email", pa.string()), pa.field("extra", pa.string())])
    assert PiiPolicy({"customer": {"extra": "drop"}}).schema("customer", schema).names \
        == ["email"]
    with pytest.raises(ValueError, match="can only be kept or dropped"):
        PiiPolicy({"customer": {"extra": "mask"}})
