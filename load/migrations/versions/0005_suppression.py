"""Customers erased on request: the suppression table and the target's own HMAC key.

Revision ID: 0005
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def key(length):
    return sa.String(length).with_variant(mysql.VARCHAR(length, collation="utf8mb4_bin"),
                                          "mysql", "mariadb")


def stamp():
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade():
    op.create_table(
        "magsync_suppression",
        sa.Column("source", key(64), primary_key=True),
        sa.Column("digest", key(64), primary_key=True),
        sa.Column("kind", key(16), nullable=False),
        sa.Column("key_id", key(40), nullable=False),
        sa.Column("run_id", key(64), nullable=False),
        sa.Column("created_at", stamp(), nullable=False),
    )
    op.create_table(
        "magsync_suppression_key",
        sa.Column("name", key(32), primary_key=True),
        sa.Column("secret", sa.Text().with_variant(mysql.TEXT(collation="utf8mb4_bin"),
                                                   "mysql", "mariadb"), nullable=False),
        sa.Column("created_at", stamp(), nullable=False),
    )


def downgrade():
    op.drop_table("magsync_suppression_key")
    op.drop_table("magsync_suppression")
