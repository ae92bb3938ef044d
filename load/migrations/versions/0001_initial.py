"""Initial tables: groups, customers, addresses, runs, state, faults.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIN = "utf8mb4_bin"


# Frozen copies of the type helpers as they were at this revision.
def key(length):
    return sa.String(length).with_variant(mysql.VARCHAR(length, collation=BIN), "mysql",
                                          "mariadb")


def text():
    return sa.Text().with_variant(mysql.TEXT(collation=BIN), "mysql", "mariadb")


def ts():
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade():
    op.create_table(
        "customer_groups",
        sa.Column("source", key(64), primary_key=True),
        sa.Column("record_key", key(512), primary_key=True),
        sa.Column("customer_group_id", sa.BigInteger()),
        sa.Column("customer_group_code", text()),
        sa.Column("extra", text()),
        sa.Column("row_hash", sa.BigInteger(), nullable=False),
        sa.Column("source_ref", text()),
        sa.Column("source_line", sa.BigInteger()),
        sa.Column("run_id", key(64), nullable=False),
        sa.Column("loaded_at", ts(), nullable=False),
        sa.Column("deleted_at", ts()),
    )
    op.create_table(
        "customers",
        sa.Column("source", key(64), primary_key=True),
        sa.Column("record_key", key(512), primary_key=True),
        sa.Column("customer_id", sa.BigInteger()),
        sa.Column("website_id", sa.BigInteger()),
        sa.Column("email", key(255)),
        sa.Column("website_code", text()),
        sa.Column("store_code", text()),
        sa.Column("store_id", sa.BigInteger()),
        sa.Column("group_id", sa.BigInteger()),
        sa.Column("created_in", text()),
        sa.Column("prefix", text()),
        sa.Column("firstname", text()),
        sa.Column("middlename", text()),
        sa.Column("lastname", text()),
        sa.Column("suffix", text()),
        sa.Column("taxvat", text()),
        sa.Column("dob", sa.Date()),
        sa.Column("gender", sa.BigInteger()),
        sa.Column("created_at", ts()),
        sa.Column("updated_at", ts()),
        sa.Column("disable_auto_group_change", sa.Boolean()),
        sa.Column("default_billing", sa.BigInteger()),
        sa.Column("default_shipping", sa.BigInteger()),
        sa.Column("password_hash", text()),
        sa.Column("rp_token", text()),
        sa.Column("confirmation", text()),
        sa.Column("rp_token_created_at", ts()),
        sa.Column("password_created_at", ts()),
        sa.Column("extra", text()),
        sa.Column("row_hash", sa.BigInteger(), nullable=False),
        sa.Column("source_ref", text()),
        sa.Column("source_line", sa.BigInteger()),
        sa.Column("run_id", key(64), nullable=False),
        sa.Column("loaded_at", ts(), nullable=False),
        sa.Column("deleted_at", ts()),
    )
    op.create_table(
        "customer_addresses",
        sa.Column("source", key(64), primary_key=True),
        sa.Column("record_key", key(512), primary_key=True),
        sa.Column("customer_address_id", sa.BigInteger()),
        sa.Column("customer_key", key(512)),
        sa.Column("customer_id", sa.BigInteger()),
        sa.Column("ordinal", sa.BigInteger()),
        sa.Column("created_at", ts()),
        sa.Column("updated_at", ts()),
        sa.Column("prefix", text()),
        sa.Column("firstname", text()),
        sa.Column("middlename", text()),
        sa.Column("lastname", text()),
        sa.Column("suffix", text()),
        sa.Column("company", text()),
        sa.Column("street", text()),
        sa.Column("city", text()),
        sa.Column("region", text()),
        sa.Column("region_id", sa.BigInteger()),
        sa.Column("postcode", text()),
        sa.Column("country_id", text()),
        sa.Column("telephone", text()),
        sa.Column("fax", text()),
        sa.Column("vat_id", text()),
        sa.Column("is_default_billing", sa.Boolean()),
        sa.Column("is_default_shipping", sa.Boolean()),
        sa.Column("extra", text()),
        sa.Column("row_hash", sa.BigInteger(), nullable=False),
        sa.Column("source_ref", text()),
        sa.Column("source_line", sa.BigInteger()),
        sa.Column("run_id", key(64), nullable=False),
        sa.Column("loaded_at", ts(), nullable=False),
        sa.Column("deleted_at", ts()),
    )
    op.create_index("ix_customers_email", "customers", ["source", "website_id", "email"],
                    unique=True, sqlite_where=sa.text("deleted_at IS NULL"),
                    postgresql_where=sa.text("deleted_at IS NULL"))
    op.create_index("ix_customer_addresses_customer", "customer_addresses",
                    ["source", "customer_key"])
    op.create_table(
        "magsync_runs",
        sa.Column("run_id", key(64), primary_key=True),
        sa.Column("source", key(64), nullable=False),
        sa.Column("status", key(32), nullable=False),
        sa.Column("started_at", ts(), nullable=False),
        sa.Column("finished_at", ts()),
        sa.Column("summary", text()),
    )
    op.create_table(
        "magsync_state",
        sa.Column("source", key(64), primary_key=True),
        sa.Column("entity", key(32), primary_key=True),
        sa.Column("cursor_value", text()),
        sa.Column("run_id", key(64), nullable=False),
        sa.Column("updated_at", ts(), nullable=False),
    )
    op.create_table(
        "magsync_faults",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("run_id", key(64), nullable=False),
        sa.Column("source", key(64), nullable=False),
        sa.Column("entity", key(32), nullable=False),
        sa.Column("record_key", key(512)),
        sa.Column("stage", key(32), nullable=False),
        sa.Column("rule", key(64), nullable=False),
        sa.Column("column_name", key(64)),
        sa.Column("value", text()),
        sa.Column("message", text(), nullable=False),
        sa.Column("source_ref", text()),
        sa.Column("source_line", sa.BigInteger()),
        sa.Column("created_at", ts(), nullable=False),
    )
    op.create_index("ix_magsync_faults_run_id", "magsync_faults", ["run_id"])


def downgrade():
    for table in ("magsync_faults", "magsync_state", "magsync_runs", "customer_addresses",
                  "customers", "customer_groups"):
        op.drop_table(table)
