"""Faults are cleared by the run that receives the corrected record.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def key(length):
    return sa.String(length).with_variant(mysql.VARCHAR(length, collation="utf8mb4_bin"),
                                          "mysql", "mariadb")


def upgrade():
    op.add_column("magsync_faults", sa.Column("cleared_run_id", key(64), nullable=True))
    op.create_index("ix_magsync_faults_key", "magsync_faults",
                    ["source", "entity", "record_key"])


def downgrade():
    op.drop_index("ix_magsync_faults_key", "magsync_faults")
    op.drop_column("magsync_faults", "cleared_run_id")
