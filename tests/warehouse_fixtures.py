"""Warehouse fixtures shared by every test module (loaded by ``tests/conftest.py``).

* ``pg_database``: a fresh, EMPTY PostgreSQL database per test, dropped afterwards (for the tests
  of the migrations themselves).
* ``pg_migrated_database``: a PostgreSQL database already at the head revision (views included),
  cloned per test with ``CREATE DATABASE ... TEMPLATE`` from one template the session migrates
  once; dropped afterwards.
* ``warehouse_url``: an empty warehouse on each back end (``[sqlite]`` / ``[postgresql]``).
* ``warehouse``: a migrated :class:`Warehouse` on each back end; on SQLite a copy of a file the
  session migrated once, on PostgreSQL a clone of the template. Its database is its own, not
  ``warehouse_url``'s: a test that needs the URL of its warehouse reads ``warehouse.url``.

Without a PostgreSQL server at 127.0.0.1:5432 the PostgreSQL tests are skipped with the reason,
unless ``ZOOM_QOS_REQUIRE_POSTGRES=1``, in which case they fail.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from zoom_qos.warehouse.store import Warehouse

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
    except Exception as error:  # any failure means "no server"
        engine.dispose()
        message = f"PostgreSQL not reachable at 127.0.0.1:5432: {type(error).__name__}: {str(error)[:200]}"
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)
    return engine


def create_pg_database(admin: sa.Engine, template: URL | None = None) -> URL:
    """A new database with a unique name: empty, or a copy of ``template`` (which must have no
    other connection open while it is copied)."""
    name = f"zoomqos_test_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template.database}"' if template is not None else ""
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"{clause}')
    return PG_ADMIN_URL.set(database=name)


def drop_pg_database(admin: sa.Engine, url: URL) -> None:
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    """The session's AUTOCOMMIT engine on the ``postgres`` database (skip/fail rule inside)."""
    admin = pg_admin_engine()
    yield admin
    admin.dispose()


@pytest.fixture()
def pg_database(pg_admin: sa.Engine) -> Iterator[URL]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    url = create_pg_database(pg_admin)
    try:
        yield url
    finally:
        drop_pg_database(pg_admin, url)


@pytest.fixture(scope="session")
def pg_template_database(pg_admin: sa.Engine) -> Iterator[URL]:
    """Once per session: a database migrated to head (default schema), the template of
    ``pg_migrated_database``. Nothing but ``CREATE DATABASE ... TEMPLATE`` may connect to it."""
    url = create_pg_database(pg_admin)
    try:
        wh = Warehouse(url)
        wh.ensure_schema()
        wh.dispose()  # no connection may remain open on a template while it is copied
        yield url
    finally:
        drop_pg_database(pg_admin, url)


@pytest.fixture()
def pg_migrated_database(pg_admin: sa.Engine, pg_template_database: URL) -> Iterator[URL]:
    """A fresh PostgreSQL database at the head revision (a copy of the session's template)."""
    url = create_pg_database(pg_admin, template=pg_template_database)
    try:
        yield url
    finally:
        drop_pg_database(pg_admin, url)


@pytest.fixture(scope="session")
def sqlite_template_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Once per session: a SQLite warehouse file migrated to head, copied by ``warehouse``."""
    path = tmp_path_factory.mktemp("warehouse-template") / "warehouse.db"
    wh = Warehouse(URL.create("sqlite", database=str(path)))
    wh.ensure_schema()
    wh.dispose()
    return path


def copy_sqlite_file(source: Path, target: Path) -> None:
    """Copy a closed SQLite database, with its write-ahead log if one was left."""
    shutil.copyfile(source, target)
    for suffix in ("-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def warehouse_backend(request: pytest.FixtureRequest) -> str:
    """The back end of ``warehouse_url`` and ``warehouse``: one parameter for both, so a test using
    the two runs once per back end, not once per pair."""
    return request.param


@pytest.fixture()
def warehouse_url(request: pytest.FixtureRequest, warehouse_backend: str, tmp_path: Path) -> URL:
    """An empty warehouse database: a SQLite file, or a fresh PostgreSQL database."""
    if warehouse_backend == "sqlite":
        return URL.create("sqlite", database=str(tmp_path / "warehouse.db"))
    return request.getfixturevalue("pg_database")


@pytest.fixture()
def warehouse(request: pytest.FixtureRequest, warehouse_backend: str, tmp_path: Path) -> Iterator[Warehouse]:
    """A migrated warehouse on each back end, of its own (modules may define their own ``warehouse``)."""
    if warehouse_backend == "sqlite":
        path = tmp_path / "warehouse.db"
        copy_sqlite_file(request.getfixturevalue("sqlite_template_file"), path)
        url = URL.create("sqlite", database=str(path))
    else:
        url = request.getfixturevalue("pg_migrated_database")
    wh = Warehouse(url)
    yield wh
    wh.dispose()
