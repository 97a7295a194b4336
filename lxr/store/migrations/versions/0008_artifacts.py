"""artifacts: content-addressed blobs (chunked in the database), staged blobs per cluster and
each experiment's status.artifacts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

Written by hand: ``artifacts`` (one row per digest a launch or apply recorded), ``artifact_chunks``
(the bytes, on a database that holds them: PostgreSQL), ``staged_artifacts`` (what the controller
put on each cluster, for ``lxr gc``) and ``experiments.artifacts`` (status.artifacts).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_artifacts")),
    )
    op.create_table(
        "artifact_chunks",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("digest", "seq", name=op.f("pk_artifact_chunks")),
    )
    op.create_table(
        "staged_artifacts",
        sa.Column("cluster", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("staged_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("cluster", "name", name=op.f("pk_staged_artifacts")),
    )
    # a plain ADD COLUMN: a batch copy of experiments on SQLite would cascade-delete work units
    op.add_column("experiments", sa.Column("artifacts", sa.JSON(), nullable=True))


def downgrade() -> None:
    # DROP COLUMN in place (SQLite >= 3.35), never a table copy (see upgrade)
    op.execute("ALTER TABLE experiments DROP COLUMN artifacts")
    op.drop_table("staged_artifacts")
    op.drop_table("artifact_chunks")
    op.drop_table("artifacts")
