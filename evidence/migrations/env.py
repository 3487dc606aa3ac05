"""Alembic's environment for the evidence store.

The store runs the migrations itself when it opens a database (``evidence.store.migrate``), passing its own
connection in ``config.attributes["connection"]`` inside a transaction that holds the migration lock. A developer
writing a new migration may also run Alembic against a URL: ``sqlalchemy.url`` in the config.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from evidence.schema import metadata


def run() -> None:
    """Run the pending migrations on the store's connection (or on ``sqlalchemy.url``)."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
