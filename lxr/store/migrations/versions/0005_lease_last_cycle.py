"""the lease records the leader's last cycle

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Written by hand: ``leases.last_cycle_at`` and ``leases.last_cycle`` (a one-line summary:
cluster, counts, duration), written with the lease's renewals, so ``lxr controller status``
can say what the leader last did from any host.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_cycle_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("last_cycle", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_column("last_cycle")
        batch_op.drop_column("last_cycle_at")
