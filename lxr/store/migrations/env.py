"""Alembic environment: migrations run from lxr's own store code, on its connection."""

from __future__ import annotations

from alembic import context

from lxr.store.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when running the alembic CLI by hand
    from sqlalchemy import create_engine

    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("alembic: set sqlalchemy.url (or run migrations through lxr's Store)")
    connection = create_engine(url).connect()

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
