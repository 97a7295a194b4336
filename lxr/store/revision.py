"""The schema revision this lxr expects, apart from the engine so that a read can compare it
with the database's own (one plain query) without importing SQLAlchemy or Alembic."""

from __future__ import annotations

__all__ = ["HEAD_REVISION"]

#: the newest Alembic revision in ``migrations/versions/`` (a test checks it against the
#: scripts): a database there needs no Alembic
HEAD_REVISION = "0011"
