"""Warehouse fixtures shared by every test module (loaded by ``tests/conftest.py``).

PostgreSQL tests get a fresh database per test, dropped afterwards. Without a server at
127.0.0.1:5432 they are skipped with the reason, unless ``ZOOM_QOS_REQUIRE_POSTGRES=1``, in
which case they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from zoom_qos.warehouse.loader import Warehouse

PG_ADMIN_URL = URL.create(
    "postgresql+psycopg", username="postgres", host="127.0.0.1", port=5432, database="postgres"
)
REQUIRE_POSTGRES_ENV = "ZOOM_QOS_REQUIRE_POSTGRES"


def pg_admin_engine() -> sa.Engine:
    """AUTOCOMMIT engine on the ``postgres`` database; skips (or fails) if unreachable."""
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as error:  # noqa: BLE001 - any failure means "no server"
        engine.dispose()
        message = f"PostgreSQL not reachable at 127.0.0.1:5432: {type(error).__name__}: {str(error)[:200]}"
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)
    return engine


def create_pg_database(admin: sa.Engine) -> URL:
    name = f"zoomqos_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.set(database=name)


def drop_pg_database(admin: sa.Engine, url: URL) -> None:
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


@pytest.fixture()
def pg_database() -> Iterator[URL]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    admin = pg_admin_engine()
    url = create_pg_database(admin)
    try:
        yield url
    finally:
        drop_pg_database(admin, url)
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> URL:
    """An empty warehouse database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return URL.create("sqlite", database=str(tmp_path / "warehouse.db"))
    return request.getfixturevalue("pg_database")


@pytest.fixture()
def warehouse(warehouse_url: URL) -> Iterator[Warehouse]:
    """A migrated warehouse on each back end (modules may define their own ``warehouse``)."""
    wh = Warehouse(warehouse_url)
    wh.ensure_schema()
    yield wh
    wh.dispose()
