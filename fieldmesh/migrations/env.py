"""Alembic environment: online migrations only, serialised by an advisory lock."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

_LOCK_KEY = 0x6669656C646D  # "fieldm": one migrator at a time per database

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url is not None, "fieldmesh.migrate sets sqlalchemy.url"

engine = create_engine(url)
with engine.connect() as connection:
    connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
    connection.commit()
    try:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
        connection.commit()
engine.dispose()
