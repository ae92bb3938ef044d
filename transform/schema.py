"""The entity schemas, declared once: columns, types, keys, secrets.

Every other layer (extract, transform, load, expectations, exports) imports these
declarations instead of naming columns itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa


class Kind(StrEnum):
    """The logical type of a column; each maps to one pandas and one Arrow type."""

    INT = "int"
    STR = "str"
    TIMESTAMP = "timestamp"  # UTC, microseconds
    DATE = "date"
    BOOL = "bool"
    JSON = "json"  # canonical JSON text


PANDAS_DTYPES: dict[Kind, str] = {
    Kind.INT: "Int64",
    Kind.STR: "str",
    Kind.TIMESTAMP: "datetime64[us, UTC]",
    Kind.DATE: "datetime64[s]",
    Kind.BOOL: "boolean",
    Kind.JSON: "str",
}

ARROW_TYPES: dict[Kind, pa.DataType] = {
    Kind.INT: pa.int64(),
    Kind.STR: pa.string(),
    Kind.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    Kind.DATE: pa.date32(),
    Kind.BOOL: pa.bool_(),
    Kind.JSON: pa.string(),
}

# Lineage columns that every staged frame carries; never part of the row hash.
SOURCE_COL = "_source"  # file path or SOAP endpoint
LINE_COL = "_line"  # 1-based physical line in the file, or SOAP page
KEY_COL = "record_key"  # canonical natural key, JSON array text
HASH_COL = "row_hash"  # signed 64-bit, see transform.hashing
EXTRA_COL = "extra"  # unknown (extension) attributes, canonical JSON object
RAW_DIGEST_COL = "raw_digest"  # signed 64-bit digest of the raw record, see transform.rawdigest

# What every target can hold, declared once (load/tables.py builds its columns from these;
# transform/storable.py faults the values that exceed them, before any write).
KEY_MAX_LENGTH = 512  # characters of a record_key (and of an address's customer_key)
VARCHAR = 255  # Magento 1 stores its varchar attributes (EAV and entity) as varchar(255)
CODE_LENGTH = 32  # core_website.code, core_store.code, customer_group_code: varchar(32)
TEXT_MAX_BYTES = 65_535  # an unbounded text column: MySQL/MariaDB TEXT holds 64 KiB - 1


@dataclass(frozen=True)
class Column:
    """One attribute of an entity."""

    name: str
    kind: Kind
    secret: bool = False  # never stored by default, never exported or reported
    required: bool = False  # must be present for the record to make sense
    max_length: int | None = None  # characters; None: text, at most TEXT_MAX_BYTES bytes

    @property
    def arrow_type(self) -> pa.DataType:
        """The Arrow type of this column in exports and staging."""
        return ARROW_TYPES[self.kind]


@dataclass(frozen=True)
class Entity:
    """An entity: its columns, its keys and where it sits among the others."""

    name: str
    table: str
    columns: tuple[Column, ...]
    id_key: tuple[str, ...]  # the key when the source has entity ids (SOAP, canonical CSV)
    natural_key: tuple[str, ...]  # the key when it has not (Magento CSV exports)
    cursor_field: str | None = None
    parent: str | None = None  # name of the entity whose deletion cascades here
    parent_key_col: str | None = None
    extra_allowed: bool = True
    _by_name: dict[str, Column] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({c.name: c for c in self.columns})

    def column(self, name: str) -> Column:
        """The column called `name`."""
        return self._by_name[name]

    def has(self, name: str) -> bool:
        """Whether the entity declares a column called `name`."""
        return name in self._by_name

    @property
    def names(self) -> list[str]:
        """Every declared column name, in declaration order."""
        return [c.name for c in self.columns]

    @property
    def secret_names(self) -> list[str]:
        """Columns holding secrets."""
        return [c.name for c in self.columns if c.secret]

    @property
    def public_columns(self) -> list[Column]:
        """Columns that may be stored, exported and reported."""
        return [c for c in self.columns if not c.secret]

    def arrow_schema(self, *, with_secrets: bool = False) -> pa.Schema:
        """The Arrow schema of the entity's attribute columns."""
        cols = self.columns if with_secrets else tuple(self.public_columns)
        return pa.schema([pa.field(c.name, c.arrow_type) for c in cols])


def _cols(kind: Kind, *names: str, secret: bool = False,
          max_length: int | None = None) -> list[Column]:
    return [Column(n, kind, secret=secret, max_length=max_length) for n in names]


GROUP = Entity(
    name="group",
    table="customer_groups",
    columns=(
        Column("customer_group_id", Kind.INT, required=True),
        Column("customer_group_code", Kind.STR, max_length=CODE_LENGTH),
    ),
    id_key=("customer_group_id",),
    natural_key=("customer_group_id",),
    extra_allowed=False,
)

CUSTOMER = Entity(
    name="customer",
    table="customers",
    columns=(
        Column("customer_id", Kind.INT),
        Column("website_id", Kind.INT, required=True),
        Column("email", Kind.STR, required=True, max_length=VARCHAR),
        *_cols(Kind.STR, "website_code", "store_code", max_length=CODE_LENGTH),
        Column("store_id", Kind.INT),
        Column("group_id", Kind.INT),
        *_cols(Kind.STR, "created_in", "prefix", "firstname", "middlename", "lastname",
               max_length=VARCHAR),
        *_cols(Kind.STR, "suffix", "taxvat", max_length=VARCHAR),
        Column("dob", Kind.DATE),
        Column("gender", Kind.INT),
        *_cols(Kind.TIMESTAMP, "created_at", "updated_at"),
        Column("disable_auto_group_change", Kind.BOOL),
        *_cols(Kind.INT, "default_billing", "default_shipping"),
        *_cols(Kind.STR, "password_hash", "rp_token", "confirmation", secret=True,
               max_length=VARCHAR),
        *_cols(Kind.TIMESTAMP, "rp_token_created_at", "password_created_at"),
    ),
    id_key=("customer_id",),
    natural_key=("website_id", "email"),
    cursor_field="updated_at",
)

ADDRESS = Entity(
    name="address",
    table="customer_addresses",
    columns=(
        Column("customer_address_id", Kind.INT),
        Column("customer_key", Kind.STR, required=True,  # the owning customer's record_key
               max_length=KEY_MAX_LENGTH),
        Column("customer_id", Kind.INT),
        Column("ordinal", Kind.INT),  # position under its customer in file order, from 1
        *_cols(Kind.TIMESTAMP, "created_at", "updated_at"),
        *_cols(Kind.STR, "prefix", "firstname", "middlename", "lastname", "suffix",
               max_length=VARCHAR),
        Column("company", Kind.STR, max_length=VARCHAR),
        Column("street", Kind.STR),  # lines joined by newlines: a text column in Magento
        *_cols(Kind.STR, "city", "region", max_length=VARCHAR),
        Column("region_id", Kind.INT),
        *_cols(Kind.STR, "postcode", "country_id", "telephone", "fax", "vat_id",
               max_length=VARCHAR),
        *_cols(Kind.BOOL, "is_default_billing", "is_default_shipping"),
    ),
    id_key=("customer_address_id",),
    natural_key=("customer_key", "ordinal"),
    parent="customer",
    parent_key_col="customer_key",
)

ENTITIES: dict[str, Entity] = {e.name: e for e in (GROUP, CUSTOMER, ADDRESS)}
# Load order: parents before children.
LOAD_ORDER: tuple[Entity, ...] = (GROUP, CUSTOMER, ADDRESS)

# Columns a source must never read, even into memory (Magento's plain-text password).
NEVER_READ: frozenset[str] = frozenset({"password"})

# Columns whose values may span lines (tab, LF and CR allowed); elsewhere every control
# character faults its record (transform/storable.py).
MULTI_LINE: frozenset[str] = frozenset({"street"})
