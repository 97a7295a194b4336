"""status writes at scale: work units lose two indexes a status write had to keep up, and on
PostgreSQL attempts and work units leave room in each page for a row's next version

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

Written by hand. ``ix_work_units_cluster_phase`` (work units per cluster and phase, for the
metrics) moved with every phase change: at 100k units that ended it cost SQLite ~0.2 s of a
status write; the counts now come from ``ix_work_units_experiment_phase`` joined with the
experiments (a work unit runs on its experiment's cluster). ``ix_work_units_experiment_uid``
repeats the first column of that index and of ``uq_work_units_experiment_idx``. On
PostgreSQL a ``fillfactor`` of 50 keeps half of each page free, so an update can put the row's
new version in the same page (a HOT update, no new index entries while no indexed column
changes): a status write of 100k attempts without it moves every row to a new page.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

#: the tables whose rows every status write rewrites
_REWRITTEN = ("attempts", "work_units")


def upgrade() -> None:
    op.drop_index("ix_work_units_cluster_phase", table_name="work_units")
    op.drop_index("ix_work_units_experiment_uid", table_name="work_units")
    if op.get_bind().dialect.name == "postgresql":
        for table in _REWRITTEN:
            op.execute(f"ALTER TABLE {table} SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _REWRITTEN:
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
    op.create_index("ix_work_units_experiment_uid", "work_units", ["experiment_uid"])
    op.create_index("ix_work_units_cluster_phase", "work_units", ["cluster", "phase"])
