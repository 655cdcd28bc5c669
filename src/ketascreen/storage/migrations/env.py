"""Alembic environment: runs the migrations on the connection ketascreen hands over (or on the
configured URL when Alembic is run by hand)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, text

from ketascreen.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    is_pg = connection.dialect.name == "postgresql"
    context.configure(connection=connection, target_metadata=target_metadata,
                      transactional_ddl=True, render_as_batch=not is_pg)
    with context.begin_transaction():
        if is_pg:
            # Several servers starting at once: one migrates, the others wait, then see head.
            context.get_bind().execute(text("SELECT pg_advisory_xact_lock(727275)"))
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("ketascreen's migrations run online only: use `ketascreen db upgrade`")
run_migrations_online()
