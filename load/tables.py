"""The target's tables as SQLAlchemy Core objects, derived from the entity schemas.

The DDL itself is owned by the Alembic migrations in load/migrations; a test checks
that these objects and the migrated database agree.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from magsync.transform.schema import ENTITIES, KEY_MAX_LENGTH, Column, Entity, Kind

metadata = sa.MetaData()

KEY_LEN = KEY_MAX_LENGTH
# Schema columns stored as short indexed strings of their declared length; every other
# text column is unbounded text, which holds whatever the schema's length check lets in.
KEY_STRINGS = frozenset({"email", "customer_key"})
# Case- and accent-sensitive on MySQL/MariaDB: their default collations treat
# 'José'/'Jose' and 'A@x'/'a@x' as equal, which would merge distinct keys.
BIN = "utf8mb4_bin"


def key_string(length: int) -> sa.types.TypeEngine[str]:
    """A short string usable in keys and indexes on every dialect."""
    return sa.String(length).with_variant(mysql.VARCHAR(length, collation=BIN), "mysql",
                                          "mariadb")


def text() -> sa.types.TypeEngine[str]:
    """Unbounded text, binary-collated on MySQL/MariaDB."""
    return sa.Text().with_variant(mysql.TEXT(collation=BIN), "mysql", "mariadb")


def timestamp() -> sa.types.TypeEngine[Any]:
    """A UTC timestamp stored without zone (naive UTC), microsecond precision."""
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def column_type(column: Column) -> sa.types.TypeEngine[object]:
    """The SQL type of a schema column."""
    if column.name in KEY_STRINGS and column.max_length:
        return key_string(column.max_length)  # type: ignore[return-value]
    return {  # type: ignore[return-value]
        Kind.INT: sa.BigInteger(),
        Kind.STR: text(),
        Kind.JSON: text(),
        Kind.TIMESTAMP: timestamp(),
        Kind.DATE: sa.Date(),
        Kind.BOOL: sa.Boolean(),
    }[column.kind]


def entity_table(entity: Entity) -> sa.Table:
    """An entity's table: key, attributes, row hash, lineage, soft-delete marker."""
    columns: list[sa.Column[object]] = [
        sa.Column("source", key_string(64), primary_key=True),
        sa.Column("record_key", key_string(KEY_LEN), primary_key=True),
        *(sa.Column(c.name, column_type(c), nullable=True)
          for c in entity.columns),
        sa.Column("extra", text(), nullable=True),
        sa.Column("row_hash", sa.BigInteger(), nullable=False),
        sa.Column("source_ref", text(), nullable=True),
        sa.Column("source_line", sa.BigInteger(), nullable=True),
        sa.Column("run_id", key_string(64), nullable=False),
        sa.Column("loaded_at", timestamp(), nullable=False),
        sa.Column("deleted_at", timestamp(), nullable=True),
        # digest of the raw source record (transform/rawdigest.py); null: not known yet
        sa.Column("raw_digest", sa.BigInteger(), nullable=True),
    ]
    return sa.Table(entity.table, metadata, *columns)


TABLES: dict[str, sa.Table] = {name: entity_table(e) for name, e in ENTITIES.items()}

sa.Index("ix_customers_email", TABLES["customer"].c.source, TABLES["customer"].c.website_id,
         TABLES["customer"].c.email, unique=True,
         sqlite_where=TABLES["customer"].c.deleted_at.is_(None),
         postgresql_where=TABLES["customer"].c.deleted_at.is_(None))
sa.Index("ix_customer_addresses_customer", TABLES["address"].c.source,
         TABLES["address"].c.customer_key)

RUNS = sa.Table(
    "magsync_runs", metadata,
    sa.Column("run_id", key_string(64), primary_key=True),
    sa.Column("source", key_string(64), nullable=False),
    sa.Column("status", key_string(32), nullable=False),
    sa.Column("started_at", timestamp(), nullable=False),
    sa.Column("finished_at", timestamp(), nullable=True),
    sa.Column("summary", text(), nullable=True),
)

STATE = sa.Table(
    "magsync_state", metadata,
    sa.Column("source", key_string(64), primary_key=True),
    sa.Column("entity", key_string(32), primary_key=True),
    sa.Column("cursor_value", text(), nullable=True),
    sa.Column("run_id", key_string(64), nullable=False),
    sa.Column("updated_at", timestamp(), nullable=False),
)

FAULTS = sa.Table(
    "magsync_faults", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("run_id", key_string(64), nullable=False, index=True),
    sa.Column("source", key_string(64), nullable=False),
    sa.Column("entity", key_string(32), nullable=False),
    sa.Column("record_key", key_string(KEY_LEN), nullable=True),
    sa.Column("stage", key_string(32), nullable=False),
    sa.Column("rule", key_string(64), nullable=False),
    sa.Column("column_name", key_string(64), nullable=True),
    sa.Column("value", text(), nullable=True),
    sa.Column("message", text(), nullable=False),
    sa.Column("source_ref", text(), nullable=True),
    sa.Column("source_line", sa.BigInteger(), nullable=True),
    sa.Column("created_at", timestamp(), nullable=False),
    sa.Column("cleared_run_id", key_string(64), nullable=True),
    # the faulted record's raw digest and the run's suite digest: an unchanged record
    # is re-reported from its open faults while both hold (load/refault.py)
    sa.Column("raw_digest", sa.BigInteger(), nullable=True),
    sa.Column("suite_digest", key_string(16), nullable=True),
    sa.Index("ix_magsync_faults_key", "source", "entity", "record_key"),
)

LOCK = sa.Table(
    "magsync_lock", metadata,
    sa.Column("source", key_string(64), primary_key=True),
    sa.Column("run_id", key_string(64), nullable=False),
    sa.Column("pid", sa.BigInteger(), nullable=False),
    sa.Column("host", key_string(255), nullable=False),
    sa.Column("since", key_string(32), nullable=False),
)

# Customers erased on request (`magsync forget`): an HMAC of their identity, never the
# values; a sync skips the records that match (load/suppression.py).
SUPPRESSION = sa.Table(
    "magsync_suppression", metadata,
    sa.Column("source", key_string(64), primary_key=True),
    sa.Column("digest", key_string(64), primary_key=True),
    sa.Column("kind", key_string(16), nullable=False),
    sa.Column("key_id", key_string(40), nullable=False),
    sa.Column("run_id", key_string(64), nullable=False),
    sa.Column("created_at", timestamp(), nullable=False),
)

# The target's own random HMAC key of the suppression digests, used when no PII key is set.
SUPPRESSION_KEY = sa.Table(
    "magsync_suppression_key", metadata,
    sa.Column("name", key_string(32), primary_key=True),
    sa.Column("secret", text(), nullable=False),
    sa.Column("created_at", timestamp(), nullable=False),
)

# The typing contexts (transform/rawdigest.py) each entity's stored rows were typed under:
# their raw digests were taken with one of them (load/typing_context.py).
TYPING = sa.Table(
    "magsync_typing", metadata,
    sa.Column("source", key_string(64), primary_key=True),
    sa.Column("entity", key_string(32), primary_key=True),
    sa.Column("context", key_string(16), primary_key=True),
    sa.Column("run_id", key_string(64), nullable=False),
    sa.Column("updated_at", timestamp(), nullable=False),
)
