"""Alembic environment for the warehouse migrations.

Normally run programmatically by :func:`zoom_qos.warehouse.migrations.ensure_schema`, which hands over an open
connection (inside the caller's transaction and lock) and the PostgreSQL schema through
``config.attributes``. For ad-hoc use with the ``alembic`` CLI, an ini file with
``script_location = plugins/zoom_qos/warehouse/migrations`` and ``sqlalchemy.url`` (plus an optional
``warehouse_schema``, default ``zoom_qos``) works too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from zoom_qos.warehouse.schema import METADATA


def _run(connection: sa.Connection, schema: str | None) -> None:
    context.configure(
        connection=connection,
        target_metadata=METADATA,
        version_table_schema=schema,
        # Read by the revisions (op.get_context().opts) to place their objects.
        warehouse_schema=schema,
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection, config.attributes.get("warehouse_schema"))
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("No connection given and no sqlalchemy.url configured.")
    engine = sa.create_engine(url)
    schema: str | None = config.get_main_option("warehouse_schema") or "zoom_qos"
    if engine.dialect.name != "postgresql":
        schema = None
    try:
        with engine.begin() as connection:
            if schema:
                quoted = connection.dialect.identifier_preparer.quote_schema(schema)
                connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
            _run(connection, schema)
    finally:
        engine.dispose()


try:
    context.config  # noqa: B018 - fails unless Alembic is running this file
except (AttributeError, NameError):  # imported by something else (e.g. a plugin scan): do nothing
    pass
else:
    run()
