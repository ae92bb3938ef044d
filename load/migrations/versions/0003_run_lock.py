"""Who holds a target's run lock, for the message a blocked run prints.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def key(length):
    return sa.String(length).with_variant(mysql.VARCHAR(length, collation="utf8mb4_bin"),
                                          "mysql", "mariadb")


def upgrade():
    op.create_table(
        "magsync_lock",
        sa.Column("source", key(64), primary_key=True),
        sa.Column("run_id", key(64), nullable=False),
        sa.Column("pid", sa.BigInteger(), nullable=False),
        sa.Column("host", key(255), nullable=False),
        sa.Column("since", key(32), nullable=False),
    )


def downgrade():
    op.drop_table("magsync_lock")
