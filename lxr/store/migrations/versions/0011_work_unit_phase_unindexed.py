"""status writes at scale: a work unit's phase is no longer indexed, so that on PostgreSQL a
status write updates its rows in place (HOT)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

Written by hand. ``ix_work_units_experiment_phase`` was the one index a status write moved:
PostgreSQL updates a row in its page without new index entries (a HOT update) only while no
indexed column changes, so every phase change wrote a new entry in each of the table's
indexes. At 100k work units that UPDATE took ~1.0 s of the server's time and 40 MB of WAL
(415k records) in EXPLAIN (ANALYZE, WAL); without it ~0.25 s and 11 MB (100k records).
SQLite's UPDATE, which rewrote the index's entries, goes from ~0.36 s to ~0.18 s. What read
through the index reads the experiment's rows by ``uq_work_units_experiment_idx`` (its first
column) instead: one experiment's per-phase counts took ~0.1 s at 100k with the index too
(its entries needed their rows: the visibility map is not set after a write); the metrics'
counts over every experiment, which SQLite read from the index alone, 0.01 -> 0.07 s there.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_work_units_experiment_phase", table_name="work_units")


def downgrade() -> None:
    op.create_index("ix_work_units_experiment_phase", "work_units", ["experiment_uid", "phase"])
