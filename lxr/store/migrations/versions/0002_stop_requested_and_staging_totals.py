"""per-work-unit stop, and bytes staged per cluster

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Written by hand: ``work_units.stop_requested`` (batch mode, so SQLite gets it by a table copy;
existing rows read False) and the ``staging_totals`` counter table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("work_units", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stop_requested", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "staging_totals",
        sa.Column("cluster", sa.String(length=63), nullable=False),
        sa.Column("bytes_total", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("cluster", name=op.f("pk_staging_totals")),
    )


def downgrade() -> None:
    op.drop_table("staging_totals")
    with op.batch_alter_table("work_units", schema=None) as batch_op:
        batch_op.drop_column("stop_requested")
