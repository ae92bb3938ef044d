"""The raw digest of each faulted record and the digest of the suites that judged it, so
a re-sync re-reports unchanged faulted records without validating them (load/refault.py).
Null for faults stored before: their records are validated once more, as before.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("magsync_faults", sa.Column("raw_digest", sa.BigInteger(), nullable=True))
    op.add_column("magsync_faults", sa.Column(
        "suite_digest", sa.String(16).with_variant(
            mysql.VARCHAR(16, collation="utf8mb4_bin"), "mysql", "mariadb"), nullable=True))


def downgrade():
    op.drop_column("magsync_faults", "suite_digest")
    op.drop_column("magsync_faults", "raw_digest")
