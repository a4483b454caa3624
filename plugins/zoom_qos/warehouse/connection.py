"""From an Airflow connection to a configured engine, through Airflow's own hooks.

The connection is read with ``BaseHook.get_connection`` and turned into a target by
:class:`~airflow.providers.sqlite.hooks.sqlite.SqliteHook` or
:class:`~airflow.providers.postgres.hooks.postgres.PostgresHook`, so secrets backends, TLS options,
IAM tokens and every libpq extra work as they do for any other Airflow user. The engine itself is
ours (:func:`create_engine`): the PostgreSQL schema, parameters kept out of errors, our JSON, and
on SQLite the pragmas and explicit ``BEGIN`` that let concurrent loads queue instead of failing.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

from zoom_qos.core.config import DEFAULT_WAREHOUSE_SCHEMA, WAREHOUSE_CONN_ID, default_warehouse_path
from zoom_qos.core.errors import WarehouseConnectionError
from zoom_qos.warehouse.sql import check_dialect
from zoom_qos.warehouse.writers import json_serializer

if TYPE_CHECKING:
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.sdk import Connection as AirflowConnection

__all__ = [
    "DEFAULT_CONN_ID",
    "DEFAULT_SCHEMA",
    "SUPPORTED_CONN_TYPES",
    "WAREHOUSE_SCHEMA_EXTRA",
    "WarehouseConnectionError",
    "WarehouseTarget",
    "airflow_target",
    "client_url",
    "create_engine",
    "sqlite_file_target",
    "write_transaction",
]

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = WAREHOUSE_CONN_ID
DEFAULT_SCHEMA = DEFAULT_WAREHOUSE_SCHEMA
SUPPORTED_CONN_TYPES = ("sqlite", "postgres")
#: Accepted too: the name of the URI scheme, which some connections were defined with.
_POSTGRES_ALIASES = ("postgres", "postgresql")
#: The connection extra holding the warehouse's PostgreSQL schema (Airflow's ``schema`` field of a
#: postgres connection is the *database*).
WAREHOUSE_SCHEMA_EXTRA = "warehouse_schema"
#: What the extra may name: a plain identifier, at most PostgreSQL's NAMEDATALEN - 1 bytes (longer
#: names are silently cut, so two schemas could end up one); ``pg_`` names are PostgreSQL's own.
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]*", re.IGNORECASE | re.ASCII)
_SCHEMA_NAME_MAX_BYTES = 63
_SCHEMA_NAME_RULE = (
    f"a plain identifier: a letter or _, then letters, digits or _ (A-Z, a-z, 0-9, _), at most "
    f"{_SCHEMA_NAME_MAX_BYTES} characters, not starting with pg_"
)
#: The loader's COPY path is psycopg 3's, whatever the connection's ``sqlalchemy_scheme`` says.
_PG_SQLALCHEMY_SCHEME = "postgresql+psycopg"
#: Where Airflow's environment-variables secrets backend looks for a connection.
_CONN_ENV_PREFIX = "AIRFLOW_CONN_"
SQLITE_BUSY_MS = 30_000


class WarehouseTarget(NamedTuple):
    """Where the warehouse is.

    ``url`` gives the dialect, the logs' and lineage's names, and on SQLite the file. With a
    ``creator`` (PostgreSQL through :class:`PostgresHook`) every connection is opened by the hook
    instead, and ``url`` carries no password: it is never used to log in, so it cannot leak one.
    """

    url: URL
    schema: str = DEFAULT_SCHEMA
    creator: Callable[[], Any] | None = None


def airflow_target(
    conn_id: str = DEFAULT_CONN_ID, default_sqlite_path: str | Path | None = None
) -> WarehouseTarget:
    """The warehouse of Airflow connection ``conn_id``, or the embedded SQLite file.

    Only "connection not defined" (or no Airflow at all) falls back to SQLite; any other
    lookup error is raised, so a production run never silently writes to a local file.
    """
    conn = _get_airflow_connection(conn_id)
    if conn is None:
        return sqlite_file_target(default_sqlite_path)
    return _target_from_connection(conn, conn_id)


#: libpq parameters of a postgres connection's extra that another client's driver takes as well.
_CLIENT_LIBPQ_EXTRAS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "options")


def client_url(conn_id: str = DEFAULT_CONN_ID) -> tuple[URL, str | None]:
    """The warehouse of ``conn_id`` as another SQL client (a BI tool) reaches it: a plain
    SQLAlchemy URL *with* the password, and the PostgreSQL schema (None on SQLite).

    It is for a file the user asked for (``zoom-qos superset bundle``); never log it. As for the
    pipeline, an undefined connection means the embedded SQLite file.
    """
    conn = _get_airflow_connection(conn_id)
    if conn is None:
        return sqlite_file_target().url, None
    conn_type = (conn.conn_type or "").strip().lower()
    if conn_type not in _POSTGRES_ALIASES:
        return _target_from_connection(conn, conn_id).url, None
    extra = conn.extra_dejson
    query = {key: str(extra[key]) for key in _CLIENT_LIBPQ_EXTRAS if extra.get(key) not in (None, "")}
    url = URL.create("postgresql", username=conn.login or None, password=conn.password or None,
                     host=conn.host or None, port=conn.port, database=conn.schema or None, query=query)
    return url, _warehouse_schema(conn, conn_id)


def _get_airflow_connection(conn_id: str) -> AirflowConnection | None:
    """The connection from Airflow's secrets backends; None when Airflow is absent or says it
    is not defined (``AirflowNotFoundException``, in a task, under ``airflow dags test`` and in
    plain Python alike: the task SDK turns the API's CONNECTION_NOT_FOUND into it)."""
    try:
        # Airflow's connections only when the warehouse is named by one
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:
        log.info("Airflow is not installed; using the embedded SQLite warehouse.")
        return None
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as error:
        _refuse_unreadable_env_connection(conn_id, error)
        log.warning("Airflow connection %r is not defined; using the embedded SQLite warehouse.", conn_id)
        return None


def _refuse_unreadable_env_connection(conn_id: str, error: Exception) -> None:
    """Raise if ``AIRFLOW_CONN_<ID>`` is set although Airflow found no connection ``conn_id``.

    Airflow skips a secrets backend that fails to parse its value and then reports the connection
    as not defined; for a variable that is plainly there, that means a typo in its JSON or URI,
    and falling back to a local file would hide it. The value (it holds the password) is not shown.
    """
    name = _CONN_ENV_PREFIX + conn_id.upper()
    if os.environ.get(name, "").strip():
        raise WarehouseConnectionError(
            f"{name} is set but Airflow could not read connection {conn_id!r} from it: fix its JSON "
            "or URI, or unset it to use the embedded SQLite warehouse."
        ) from error


def sqlite_file_target(path: str | Path | None = None) -> WarehouseTarget:
    """The embedded SQLite warehouse: ``path`` or ``config.default_warehouse_path()``, its folder
    created so the first run can start from nothing."""
    resolved = Path(path or default_warehouse_path()).expanduser().resolve()
    resolved.parent.mkdir(parents=True, exist_ok=True)
    return WarehouseTarget(URL.create("sqlite", database=str(resolved)))


def _target_from_connection(conn: AirflowConnection, conn_id: str = DEFAULT_CONN_ID) -> WarehouseTarget:
    """The warehouse of an Airflow connection, by its type: ``sqlite`` or ``postgres``."""
    conn_type = (conn.conn_type or "").strip().lower()
    if conn_type == "sqlite":
        return _sqlite_target(conn, conn_id)
    if conn_type in _POSTGRES_ALIASES:
        return _postgres_target(conn, conn_id)
    raise WarehouseConnectionError(
        f"Airflow connection {conn_id!r} has conn_type {conn_type or '(empty)'!r}, which the warehouse "
        f"cannot use; supported: {', '.join(SUPPORTED_CONN_TYPES)}."
    )


def _sqlite_target(conn: AirflowConnection, conn_id: str) -> WarehouseTarget:
    """A sqlite connection's file, as :class:`SqliteHook` reads it: the path is in ``host``.

    SqliteHook has no ``sqlalchemy_url``; its ``get_uri`` is what its own
    ``get_sqlalchemy_engine`` uses (``sqlite:////abs/path.db``).
    """
    from airflow.providers.sqlite.hooks.sqlite import SqliteHook  # only for an Airflow connection

    if not (conn.host or "").strip():
        # A URI "sqlite:////abs/path.db" puts the path in 'schema', where SqliteHook does not look.
        raise WarehouseConnectionError(
            f"Airflow connection {conn_id!r} (sqlite) has no database file in 'host', where SqliteHook "
            'reads it: define it as {"conn_type": "sqlite", "host": "/abs/path/warehouse.db"} or, as '
            "a URI, percent-encode the path: sqlite://%2Fabs%2Fpath%2Fwarehouse.db."
        )
    hook = SqliteHook(sqlite_conn_id=conn_id, connection=conn)
    return WarehouseTarget(make_url(hook.get_uri()))


def _postgres_target(conn: AirflowConnection, conn_id: str) -> WarehouseTarget:
    """A postgres connection: connections opened by ``PostgresHook.get_conn``, the URL from
    ``PostgresHook.sqlalchemy_url`` without its password.

    Why not an engine on ``sqlalchemy_url`` (``get_sqlalchemy_engine``): in providers-postgres 7.1
    that URL carries no libpq extra (``sslmode``, ``sslrootcert``, ``options``…, only the
    ``sqlalchemy_query`` extra), and with ``iam`` it holds one token, which expires while the pool
    still opens connections. ``get_conn`` passes every extra to libpq and asks for a fresh token per
    connection, as for any other Airflow user of the connection.
    """
    schema = _warehouse_schema(conn, conn_id)
    hook = _postgres_hook(conn, conn_id)
    # A copy: with ``iam``, sqlalchemy_url writes the token into the connection it reads.
    url = _postgres_hook(copy.deepcopy(conn), conn_id).sqlalchemy_url
    return WarehouseTarget(url._replace(password=None), schema, hook.get_conn)


def _postgres_hook(conn: AirflowConnection, conn_id: str) -> PostgresHook:
    """A PostgresHook on ``conn`` that speaks psycopg 3 and keeps our own extra away from libpq.

    Imported here so that the package works without the ``postgres`` extra when only SQLite is used.
    """
    try:
        from airflow.providers.postgres.hooks.postgres import PostgresHook  # the postgres extra
    except ImportError as error:
        raise WarehouseConnectionError(
            f"Airflow connection {conn_id!r} is a postgres connection but the postgres provider is not "
            "installed: install zoom-videosdk-qos[postgres] (apache-airflow-providers-postgres, psycopg)."
        ) from error
    hook = PostgresHook(postgres_conn_id=conn_id, connection=conn, sqlalchemy_scheme=_PG_SQLALCHEMY_SCHEME)
    # get_conn passes every extra it does not know to libpq, which rejects "warehouse_schema".
    hook.ignored_extra_options = {*PostgresHook.ignored_extra_options, WAREHOUSE_SCHEMA_EXTRA}
    return hook


def _warehouse_schema(conn: AirflowConnection, conn_id: str) -> str:
    """The PostgreSQL schema: extra ``warehouse_schema``, default ``zoom_qos``.

    Only a plain identifier (``_SCHEMA_NAME_RULE``) is taken. The warehouse quotes the name
    wherever it writes it into SQL, but a name with quotes, ``;`` or spaces is far more likely a
    mistake (or an attempt) than a wish, and it is refused here, before any connection is opened
    or any schema created, rather than made into an odd schema that every query must quote.
    """
    value = conn.extra_dejson.get(WAREHOUSE_SCHEMA_EXTRA)
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_SCHEMA
    if not isinstance(value, str):
        raise WarehouseConnectionError(
            f"Airflow connection {conn_id!r}: extra {WAREHOUSE_SCHEMA_EXTRA!r} must be a schema name "
            f"(text), not {type(value).__name__}."
        )
    name = value.strip()
    if (not _SCHEMA_NAME.fullmatch(name) or len(name.encode()) > _SCHEMA_NAME_MAX_BYTES
            or name.lower().startswith("pg_")):
        raise WarehouseConnectionError(
            f"Airflow connection {conn_id!r}: extra {WAREHOUSE_SCHEMA_EXTRA!r} is {name[:80]!r}, which "
            f"is not a schema name the warehouse accepts: it must be {_SCHEMA_NAME_RULE} (e.g. "
            f"{DEFAULT_SCHEMA!r}). Nothing was connected to or created; fix the extra, or remove it "
            f"to use {DEFAULT_SCHEMA!r}."
        )
    return name


def create_engine(url: URL, schema: str | None, creator: Callable[[], Any] | None = None) -> Engine:
    """The warehouse's engine: unqualified tables in ``schema`` (PostgreSQL), parameters kept out of
    exception text and logs (they hold raw payloads), and on SQLite the hooks of
    :func:`_install_sqlite_hooks`.

    ``creator`` (see :class:`WarehouseTarget`) opens each DB-API connection in place of ``url``.
    A URL of another database raises ``UnsupportedDatabaseError``, a ``WarehouseConnectionError``
    (permanent) like every other refusal of the connection here.
    """
    dialect = check_dialect(url.get_backend_name())
    options: dict[str, Any] = {}
    kwargs: dict[str, Any] = {"json_serializer": json_serializer, "hide_parameters": True}
    if creator is not None:
        kwargs["creator"] = creator
    if dialect == "postgresql":
        options["schema_translate_map"] = {None: schema}
        kwargs["pool_pre_ping"] = True
    else:
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_MS / 1000}
    engine = sa.create_engine(url, execution_options=options, **kwargs)
    if dialect == "sqlite":
        _install_sqlite_hooks(engine)
    elif creator is not None:
        _install_psycopg_json(engine)
    return engine


def _install_psycopg_json(engine: Engine) -> None:
    """Our JSON serializer on connections the engine did not open itself.

    SQLAlchemy's psycopg dialect hands ``json_serializer`` to psycopg through the adapters it passes
    to ``connect``; a ``creator`` (the hook's ``get_conn``) never receives them, so without this the
    raw layer would go through plain ``json.dumps`` (NUL escapes that jsonb refuses, odd types
    failing).
    """

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        from psycopg.types.json import set_json_dumps  # the postgres extra

        set_json_dumps(json_serializer, dbapi_conn)


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
