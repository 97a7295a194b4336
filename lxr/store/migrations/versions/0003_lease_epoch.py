"""the lease's epoch (fencing token)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Written by hand: ``leases.epoch``, one more at every new term of a controller and checked by
every write of that term, so a stale leader's writes fail (existing rows read 0).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("epoch", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_column("epoch")
