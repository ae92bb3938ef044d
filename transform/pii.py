"""The PII policy of the analysts' exports: per column keep, hash, mask or drop.

`hash` is HMAC-SHA256 (hex) under the configured key: stable across runs, so joins still
work; an email is lower-cased first. `mask` keeps a documented shape (README, "PII
policy"): an email its first character and domain (`j***@example.com`), a telephone or
fax the last 2 digits (`***42`), any other text its first character (`J***`). `drop`
removes the column. `record_key` (and an address's `customer_key`) carry the email of a
CSV source: they can be hashed with the same key, so an address's hashed `customer_key`
still equals its customer's hashed `record_key`. Only exports are transformed: never the
SQL target.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from magsync.transform.diff import KeyIndex
from magsync.transform.schema import ENTITIES, EXTRA_COL, KEY_COL, Kind

Rule = Literal["keep", "hash", "mask", "drop"]
KEY_RULES = ("keep", "hash")  # a record_key can be hashed, never masked or dropped
PHONES = frozenset({"telephone", "fax"})
MASK = "***"
_NOT_DIGIT = re.compile(r"\D")
Tab = TypeVar("Tab", pa.Table, pa.RecordBatch)


def rule_error(entity: str, column: str, rule: str) -> str | None:
    """Why `rule` cannot apply to `entity`.`column`, or None when it can."""
    if entity not in ENTITIES:
        return f"unknown entity {entity!r} (known: {', '.join(sorted(ENTITIES))})"
    if column == EXTRA_COL:  # unknown attributes, as JSON: whole or not at all
        return None if rule in ("keep", "drop") else f"{entity}.{EXTRA_COL} can only be " \
            "kept or dropped"
    if column == KEY_COL:
        return None if rule in KEY_RULES else f"{entity}.{KEY_COL} can only be kept or hashed"
    ent = ENTITIES[entity]
    if not ent.has(column) or ent.column(column).secret:
        return f"unknown or unexported column {entity}.{column}"
    if column == ent.parent_key_col and rule not in KEY_RULES:
        return f"{entity}.{column} is a key: it can only be kept or hashed"
    if rule in ("hash", "mask") and ent.column(column).kind is not Kind.STR:
        return f"{entity}.{column} is not text: it can only be kept or dropped"
    return None


@dataclass(frozen=True, eq=False)
class PiiPolicy:
    """Per entity, per column, what the exports hold; `key` the HMAC key (bytes)."""

    rules: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    key: bytes | None = None

    def __post_init__(self) -> None:
        for entity, columns in self.rules.items():
            for column, rule in columns.items():
                error = rule_error(entity, column, rule)
                if error:
                    raise ValueError(error)
                if rule == "hash" and not self.key:
                    raise ValueError(f"{entity}.{column} is hashed: a PII key is required")

    def active(self, entity: str) -> dict[str, str]:
        """`entity`'s rules other than keep."""
        return {c: r for c, r in self.rules.get(entity, {}).items() if r != "keep"}

    def fingerprint(self, entity: str) -> str:
        """A digest of `entity`'s rules (and of the key when it hashes): '' when every
        column is kept. Recorded beside an export; never reveals the key."""
        rules = self.active(entity)
        if not rules:
            return ""
        text = json.dumps(sorted(rules.items())).encode()
        if "hash" in rules.values() and self.key:
            return hmac.new(self.key, b"magsync.pii.policy:" + text, hashlib.sha256).hexdigest()
        return hashlib.sha256(text).hexdigest()

    def hashes_key(self, entity: str) -> bool:
        """Whether `entity`'s record_key is hashed in the exports."""
        return self.active(entity).get(KEY_COL) == "hash"

    def dropped(self, entity: str) -> set[str]:
        """The columns `entity`'s exports leave out."""
        return {c for c, r in self.active(entity).items() if r == "drop"}

    def schema(self, entity: str, schema: pa.Schema) -> pa.Schema:
        """`schema` without the dropped columns (hashed and masked ones stay text)."""
        gone = self.dropped(entity)
        return pa.schema([f for f in schema if f.name not in gone], metadata=schema.metadata)

    def apply(self, entity: str, table: Tab) -> Tab:
        """`table` as the exports hold it: columns hashed, masked or dropped (those it has;
        record_key too when hashed)."""
        for column, rule in self.active(entity).items():
            if column not in table.column_names:
                continue
            at = table.schema.get_field_index(column)
            if rule == "drop":
                table = table.remove_column(at)
                continue
            values = _flat(table.column(column))
            new = self._hash(values, lower=column == "email") if rule == "hash" \
                else _per_distinct(values, _masker(column))
            table = table.set_column(at, table.schema.field(at), new)
        return table

    def key_array(self, entity: str, keys: pa.Array) -> pa.Array:
        """record_keys as the exports hold them."""
        return self._hash(_flat(keys), lower=False) if self.hashes_key(entity) else keys

    def without_key(self, entity: str) -> PiiPolicy:
        """This policy, but `entity`'s record_key kept (for keys transformed already)."""
        rules = {**self.rules, entity: {**self.rules.get(entity, {}), KEY_COL: "keep"}}
        return PiiPolicy(rules, self.key)

    def column_array(self, entity: str, column: str, values: pa.Array) -> pa.Array:
        """Key values as `entity`'s exports hold them in `column` (kept or hashed)."""
        hashed = self.active(entity).get(column) == "hash"
        return self._hash(_flat(values), lower=column == "email") if hashed else values

    def locator(self, entity: str, index: KeyIndex) -> Callable[[pa.Array], np.ndarray]:
        """Looks exported record_keys up in `index` (their positions, -1 where absent):
        hashed keys by hashing the stored ones once."""
        if not self.hashes_key(entity):
            return index.positions
        stored = self.key_array(entity, index.key_array(np.arange(len(index.keys))))

        def positions(keys: pa.Array) -> np.ndarray:
            found = pc.index_in(_flat(keys), value_set=stored).fill_null(-1)
            return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int64)
        return positions

    def _hash(self, values: pa.Array, *, lower: bool) -> pa.Array:
        if lower:
            values = pc.utf8_lower(values)
        key = self.key or b""
        return _per_distinct(values, lambda v: hmac.new(key, v.encode(), hashlib.sha256)
                             .hexdigest())


KEEP_ALL = PiiPolicy()


def _flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks else pa.array([], values.type)
    return values


def _per_distinct(values: pa.Array, fn: Callable[[str], str]) -> pa.Array:
    """`fn` applied once per distinct non-null value; nulls stay null."""
    values = values.cast(pa.string())
    distinct = pc.unique(values.drop_null())
    mapped = pa.array([fn(v) for v in distinct.to_pylist()], pa.string())
    return mapped.take(pc.index_in(values, value_set=distinct))


def _masker(column: str) -> Callable[[str], str]:
    """The mask shape of `column` (README, "PII policy")."""
    if column == "email":
        return lambda v: v[:1] + MASK + ("@" + v.rsplit("@", 1)[1] if "@" in v else "")
    if column in PHONES:
        return lambda v: MASK + _last_two(_NOT_DIGIT.sub("", v))
    return lambda v: v[:1] + MASK if v else v


def _last_two(digits: str) -> str:
    return digits[-2:] if len(digits) > 2 else ""  # a shorter number shows nothing
