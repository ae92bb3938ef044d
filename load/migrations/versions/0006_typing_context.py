"""The typing contexts each entity's stored rows were typed under, so that a run typing
under another one can tell the records whose raw values did not change (history action
`retyped`, load/typing_context.py). Empty at first: the next run records its own.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def key(length):
    return sa.String(length).with_variant(mysql.VARCHAR(length, collation="utf8mb4_bin"),
                                          "mysql", "mariadb")


def upgrade():
    op.create_table(
        "magsync_typing",
        sa.Column("source", key(64), primary_key=True),
        sa.Column("entity", key(32), primary_key=True),
        sa.Column("context", key(16), primary_key=True),
        sa.Column("run_id", key(64), nullable=False),
        sa.Column("updated_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql",
                                                           "mariadb"), nullable=False),
    )


def downgrade():
    op.drop_table("magsync_typing")
