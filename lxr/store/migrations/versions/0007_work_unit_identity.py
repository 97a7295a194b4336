"""sweep edits and scaled retries: work-unit identities and flags, attempt resources

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

Written by hand. ``work_units.identity`` is a unit's content (args, env, and its name when the
spec gave one), what a re-applied sweep matches units by; existing rows get theirs from the
stored spec: before this revision a spec never changed, so unit ``idx`` is the ``idx``-th unit
the spec expands to. ``work_units.removed`` (False for existing rows) and
``resource_scale``, ``attempts.resources`` and ``experiments.next_index`` (NULL: nothing
scaled, nothing recorded, one past the largest index) need no backfill.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op

from lxr.api.sweep import content_digest, identities

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN, never a batch table copy: copying experiments or work_units would
    # drop the old table, and SQLite's foreign keys cascade that to every work unit and attempt
    op.add_column("work_units", sa.Column("identity", sa.String(length=80), nullable=True))
    op.add_column(
        "work_units",
        sa.Column("removed", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("work_units", sa.Column("resource_scale", sa.JSON(), nullable=True))
    op.add_column("attempts", sa.Column("resources", sa.JSON(), nullable=True))
    op.add_column("experiments", sa.Column("next_index", sa.Integer(), nullable=True))
    _backfill_identities()


def _backfill_identities() -> None:
    conn = op.get_bind()
    experiments = sa.table("experiments", sa.column("uid"), sa.column("spec", sa.JSON()))
    units = sa.table(
        "work_units",
        sa.column("id"),
        sa.column("experiment_uid"),
        sa.column("idx"),
        sa.column("args", sa.JSON()),
        sa.column("env", sa.JSON()),
        sa.column("identity"),
    )
    specs: dict[str, Any] = {
        uid: spec for uid, spec in conn.execute(sa.select(experiments.c.uid, experiments.c.spec))
    }
    rows: dict[str, list[Any]] = defaultdict(list)
    for row in conn.execute(
        sa.select(
            units.c.id, units.c.experiment_uid, units.c.idx, units.c.args, units.c.env
        ).order_by(units.c.experiment_uid, units.c.idx)
    ):
        rows[row.experiment_uid].append(row)
    values = []
    for uid, members in rows.items():
        templates = (specs.get(uid) or {}).get("workUnits") or []
        digests = []
        for row in members:
            template = templates[row.idx] if row.idx < len(templates) else {}
            digests.append(content_digest(row.args or {}, row.env or {}, template.get("name")))
        values += [
            {"_id": row.id, "identity": identity}
            for row, identity in zip(members, identities(digests), strict=True)
        ]
    if values:
        conn.execute(
            units.update()
            .where(units.c.id == sa.bindparam("_id"))
            .values(identity=sa.bindparam("identity")),
            values,
        )


def downgrade() -> None:
    # DROP COLUMN (SQLite >= 3.35), for the same reason as above
    op.drop_column("experiments", "next_index")
    op.drop_column("attempts", "resources")
    for column in ("resource_scale", "removed", "identity"):
        op.drop_column("work_units", column)
