"""per-rank exit codes of an attempt

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

Written by hand: ``attempts.rank_exit_codes`` (the exit code of each rank of a work unit that
runs several processes, by rank; null for a plain task) and ``attempts.first_failed_rank`` (the
rank that ended non-zero first). Both nullable: existing rows read null.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rank_exit_codes", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("first_failed_rank", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("first_failed_rank")
        batch_op.drop_column("rank_exit_codes")
