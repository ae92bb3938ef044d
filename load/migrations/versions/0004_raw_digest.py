"""A digest of each record's raw source values, so a re-sync skips unchanged records
before typing them (transform/rawdigest.py). Null for rows stored before: the next run
types them as before and fills it in.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("customer_groups", "customers", "customer_addresses")


def upgrade():
    for table in TABLES:
        op.add_column(table, sa.Column("raw_digest", sa.BigInteger(), nullable=True))


def downgrade():
    for table in TABLES:
        op.drop_column(table, "raw_digest")
