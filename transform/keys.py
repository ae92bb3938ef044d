"""Record keys and row hashes: the two values change detection compares.

record_key: the natural key as canonical JSON array text, e.g. `[42]` when the source has
entity ids, `[1,"ann@example.com"]` (website_id, lower-case email) when it has not, and
`[[1,"ann@example.com"],2]` (customer key, ordinal) for an address without an id.

row_hash (persisted, so it must never change across versions or platforms): BLAKE2b with
an 8-byte digest, read as a big-endian signed 64-bit integer, over the UTF-8 bytes of
`name<RS>value` pairs for every non-null attribute (secrets and `extra` included,
lineage and record_key excluded), in ascending order of column name, joined by <US>
(RS = 0x1E, US = 0x1F). Values render as: integers in decimal; strings as they are;
timestamps as integer microseconds since 1970-01-01T00:00:00Z; dates as YYYY-MM-DD;
booleans as 1 or 0. Skipping nulls means a column added by a later release, null
everywhere, leaves every stored hash valid.
"""

from __future__ import annotations

import json
from hashlib import blake2b

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from magsync.transform.schema import EXTRA_COL, Entity, Kind

RS, US = "\x1e", "\x1f"
_NEEDS_ESCAPE = r'[\\"\x00-\x1f]'


def json_string(values: pd.Series) -> pd.Series:
    """Each string as a JSON string literal (non-ASCII kept as is)."""
    out = '"' + values + '"'
    odd = values.str.contains(_NEEDS_ESCAPE, regex=True, na=False)
    if odd.any():
        out[odd] = values[odd].map(lambda s: json.dumps(s, ensure_ascii=False))
    return out


def _int_text(values: pd.Series) -> pd.Series:
    return values.astype("Int64").astype("str")


def customer_key(customer_id: pd.Series, website_id: pd.Series,
                 email: pd.Series) -> pd.Series:
    """`[id]` where the id is known, else `[website_id,"email"]`; null when neither."""
    by_id = "[" + _int_text(customer_id) + "]"
    natural = "[" + _int_text(website_id) + "," + json_string(email) + "]"
    return by_id.where(customer_id.notna(), natural).astype("str")


def address_key(address_id: pd.Series, customer_key_: pd.Series,
                ordinal: pd.Series) -> pd.Series:
    """`[id]` where the address id is known, else `[customer_key,ordinal]`."""
    by_id = "[" + _int_text(address_id) + "]"
    natural = "[" + customer_key_ + "," + _int_text(ordinal) + "]"
    return by_id.where(address_id.notna(), natural).astype("str")


def group_key(group_id: pd.Series) -> pd.Series:
    """`[customer_group_id]`."""
    return ("[" + _int_text(group_id) + "]").astype("str")


def record_keys(entity: Entity, frame: pd.DataFrame) -> pd.Series:
    """The record_key of every row of a normalised frame (null where a key part is null)."""
    if entity.name == "customer":
        return customer_key(frame["customer_id"], frame["website_id"], frame["email"])
    if entity.name == "address":
        return address_key(frame["customer_address_id"], frame["customer_key"],
                           frame["ordinal"])
    return group_key(frame["customer_group_id"])


def _render(kind: Kind, values: pd.Series) -> pa.Array:
    arr = pa.array(values, from_pandas=True)
    if kind is Kind.TIMESTAMP:
        arr = pc.cast(pc.cast(arr, pa.timestamp("us", tz="UTC")), pa.int64())
    elif kind is Kind.DATE:
        arr = pc.cast(arr, pa.date32())
    elif kind is Kind.BOOL:
        arr = pc.if_else(arr, "1", "0")
    return pc.cast(arr, pa.string())


def hashed_columns(entity: Entity) -> list[tuple[str, Kind]]:
    """The (name, kind) pairs that enter the row hash, in hashing order."""
    pairs = [(c.name, c.kind) for c in entity.columns]
    if entity.extra_allowed:
        pairs.append((EXTRA_COL, Kind.JSON))
    return sorted(pairs)


def row_hashes(entity: Entity, frame: pd.DataFrame) -> np.ndarray:
    """The documented row hash of every row, as int64."""
    parts = []
    for name, kind in hashed_columns(entity):
        if name not in frame.columns:
            continue
        parts.append(pc.binary_join_element_wise(name, _render(kind, frame[name]), RS))
    joined = pc.binary_join_element_wise(*parts, US, null_handling="skip")
    # bytes straight from Arrow (no str decode and re-encode); the digests read at once
    # as big-endian signed 64-bit integers.
    digests = b"".join([blake2b(s, digest_size=8).digest()
                        for s in joined.cast(pa.binary()).to_pylist()])
    return np.frombuffer(digests, dtype=">i8").astype(np.int64)
