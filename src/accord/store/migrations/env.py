"""Alembic environment: Accord passes its engine in; there is no alembic.ini."""

from __future__ import annotations

from alembic import context

from accord.store.engine import writing
from accord.store.schema import in_metadata
from accord.store.tables import metadata

engine = context.config.attributes["engine"]
with writing(engine) as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite needs table rebuilds for most ALTERs
        include_name=in_metadata,  # what each backend makes its own way (store.schema)
    )
    context.run_migrations()
