"""experiments.cluster_defaults: the cluster's resource defaults as they were when the
experiment was applied

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

Written by hand. NULL for experiments applied before: they keep taking the cluster's defaults
as they are at each submission.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain ADD COLUMN: a batch copy of experiments on SQLite would cascade-delete work units
    op.add_column("experiments", sa.Column("cluster_defaults", sa.JSON(), nullable=True))


def downgrade() -> None:
    # DROP COLUMN in place (SQLite >= 3.35), never a table copy (see upgrade)
    op.execute("ALTER TABLE experiments DROP COLUMN cluster_defaults")
