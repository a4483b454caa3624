"""From an Airflow connection to a configured engine: the URL, the PostgreSQL schema, and on
SQLite the pragmas and explicit ``BEGIN`` that let concurrent loads queue instead of failing."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from zoom_qos.config import DEFAULT_WAREHOUSE_SCHEMA, WAREHOUSE_CONN_ID, default_warehouse_path
from zoom_qos.warehouse.sql import check_dialect
from zoom_qos.warehouse.writers import json_serializer

__all__ = [
    "DEFAULT_CONN_ID",
    "DEFAULT_SCHEMA",
    "SUPPORTED_CONN_TYPES",
    "airflow_target",
    "create_engine",
    "url_from_connection",
    "warehouse_schema_from_connection",
    "write_transaction",
]

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = WAREHOUSE_CONN_ID
DEFAULT_SCHEMA = DEFAULT_WAREHOUSE_SCHEMA
SUPPORTED_CONN_TYPES = ("sqlite", "postgres", "postgresql")
SQLITE_BUSY_MS = 30_000
# libpq options that may be passed through from a connection's extra.
_PG_QUERY_OPTIONS = frozenset(
    {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "options"}
)


def _extra(conn: Any) -> dict[str, Any]:
    extra = getattr(conn, "extra_dejson", None)
    if isinstance(extra, Mapping):
        return dict(extra)
    raw = getattr(conn, "extra", None)
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, str) and raw.strip():
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def url_from_connection(conn: Any, conn_id: str = DEFAULT_CONN_ID) -> URL:
    """SQLAlchemy URL for an Airflow connection (``sqlite`` or ``postgres``).

    Built with ``URL.create`` so a password with special characters needs no quoting and
    ``str``/``repr`` of the URL mask it. Airflow's postgres connection keeps the *database*
    in ``schema``; the warehouse's PostgreSQL schema comes from the extra (see
    :func:`warehouse_schema_from_connection`).
    """
    conn_type = (getattr(conn, "conn_type", None) or "").strip().lower()
    if conn_type == "sqlite":
        path = getattr(conn, "host", None) or getattr(conn, "schema", None)
        if not path:
            raise ValueError(f"Connection {conn_id!r} (sqlite) needs the database file path in 'host'.")
        return URL.create("sqlite", database=str(path))
    if conn_type in ("postgres", "postgresql"):
        extra = _extra(conn)
        query = {k: str(v) for k, v in extra.items() if k in _PG_QUERY_OPTIONS and v is not None}
        port = getattr(conn, "port", None)
        return URL.create(
            "postgresql+psycopg",
            username=getattr(conn, "login", None) or None,
            password=getattr(conn, "password", None) or None,
            host=getattr(conn, "host", None) or None,
            port=int(port) if port else None,
            database=getattr(conn, "schema", None) or None,
            query=query,
        )
    raise ValueError(
        f"Connection {conn_id!r} has unsupported conn_type {conn_type or '(empty)'!r}; "
        f"supported: {', '.join(SUPPORTED_CONN_TYPES)}."
    )


def warehouse_schema_from_connection(conn: Any) -> str:
    """PostgreSQL schema for the warehouse: extra ``warehouse_schema``, default ``zoom_qos``."""
    value = _extra(conn).get("warehouse_schema")
    return str(value).strip() if value and str(value).strip() else DEFAULT_SCHEMA


def _is_connection_not_found(error: BaseException) -> bool:
    """True for the ways Airflow 3 says "no such connection" (not for real failures)."""
    if type(error).__name__ == "AirflowNotFoundException":
        return True
    if type(error).__name__ == "AirflowRuntimeError":
        detail = getattr(error, "error", None)
        kind = getattr(detail, "error", detail)
        return "CONNECTION_NOT_FOUND" in str(getattr(kind, "value", kind)) or (
            "CONNECTION_NOT_FOUND" in str(error)
        )
    return False


def airflow_target(
    conn_id: str = DEFAULT_CONN_ID, default_sqlite_path: str | Path | None = None
) -> tuple[URL, str]:
    """The URL and PostgreSQL schema of an Airflow connection, or the embedded SQLite file.

    Only "connection not defined" (or no Airflow at all) falls back to SQLite; any other
    lookup error is raised, so a production run never silently writes to a local file.
    """
    conn = None
    try:
        from airflow.sdk import BaseHook
    except ImportError:
        log.info("Airflow is not installed; using the SQLite warehouse.")
    else:
        try:
            conn = BaseHook.get_connection(conn_id)
        except Exception as error:
            if not _is_connection_not_found(error):
                raise
            log.info("Airflow connection %r is not defined; using the SQLite warehouse.", conn_id)
    if conn is None:
        path = Path(default_sqlite_path or default_warehouse_path()).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return URL.create("sqlite", database=str(path)), DEFAULT_SCHEMA
    return url_from_connection(conn, conn_id), warehouse_schema_from_connection(conn)


def create_engine(url: URL, schema: str | None) -> Engine:
    """The warehouse's engine: unqualified tables in ``schema`` (PostgreSQL), parameters kept out of
    exception text and logs (they hold raw payloads), and on SQLite the hooks of
    :func:`_install_sqlite_hooks`."""
    dialect = check_dialect(url.get_backend_name())
    options: dict[str, Any] = {}
    kwargs: dict[str, Any] = {"json_serializer": json_serializer, "hide_parameters": True}
    if dialect == "postgresql":
        options["schema_translate_map"] = {None: schema}
        kwargs["pool_pre_ping"] = True
    else:
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_MS / 1000}
    engine = sa.create_engine(url, execution_options=options, **kwargs)
    if dialect == "sqlite":
        _install_sqlite_hooks(engine)
    return engine


def _install_sqlite_hooks(engine: Engine) -> None:
    """WAL + busy timeout, and explicit BEGIN so writers can use BEGIN IMMEDIATE.

    pysqlite's own transaction handling defers BEGIN until the first write, so two
    writers can both read and then deadlock upgrading their locks. Taking the write
    lock up front (``BEGIN IMMEDIATE``) makes concurrent loads queue behind the busy
    timeout instead.
    """

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            _sqlite_enable_wal(cursor)
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _sqlite_enable_wal(cursor: Any) -> None:
    """Switch the file to WAL (persistent), tolerating other connections doing the same.

    Changing the journal mode needs an exclusive lock and SQLite reports "database is locked"
    at once instead of waiting on the busy timeout, so first connections racing on a new file
    retry briefly; once one has switched, the others find WAL already set.
    """
    deadline = time.monotonic() + SQLITE_BUSY_MS / 1000
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction: BEGIN IMMEDIATE on SQLite; commit, or roll back and re-raise."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn = conn.execution_options(sqlite_immediate=True)
        with conn.begin():
            yield conn
