"""cluster status: the controller's conditions per cluster (Reachable)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Written by hand: the ``cluster_status`` table (one row per cluster the controller reached or
failed to reach, ``local`` included).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cluster_status",
        sa.Column("cluster", sa.String(length=63), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("cluster", name=op.f("pk_cluster_status")),
    )


def downgrade() -> None:
    op.drop_table("cluster_status")
