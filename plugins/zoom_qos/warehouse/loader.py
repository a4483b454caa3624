"""Idempotent, transactional bulk loads of Zoom sessions into the warehouse (SQLite or PostgreSQL).

:meth:`Warehouse.load_sessions` takes ``(session, users)`` pairs where ``users`` may be any
iterable, a one-shot iterator over a huge session included, and loads in bounded memory:

- A session is turned into rows until it reaches :data:`STREAM_THRESHOLD_ROWS` rows (or the
  transaction bound). If its users end first it is *small*: consecutive small sessions share a
  transaction of at most about ``max_rows_per_transaction`` rows, held in memory.
- Otherwise it is *big*: the current group is committed, then the big session is written alone
  in its own transaction while the rest of its users are read, in batches of about
  :data:`STREAM_BATCH_ROWS` rows, so memory never holds more than one batch of it.

In each transaction every session's ``sessions``/``raw_sessions`` rows are upserted on the
primary key and its child rows are replaced by exactly the new set (rows Zoom no longer reports
are gone), so a re-run, an overlapping run or a re-read where users disappeared all leave the
rows one load leaves, and a crash or failure (a users iterator that raises included) leaves
every session either fully old or fully new (WAREHOUSE.md). Parse problems are added to the
caller's :class:`ParseIssues` only once their transaction has committed.

Duplicate users (same ``id`` and ``join_time`` instant) load once, and the **first** occurrence
wins (:func:`zoom_qos.transform.unique_users`): a stream cannot look ahead. Staging guarantees that
a page-token restart does not hand the loader the same join twice, so the choice only matters
for entries Zoom itself duplicated. (:func:`zoom_qos.transform.dedupe_users`, last one wins, is
unchanged for its other callers.)

Per transaction, on PostgreSQL ``pg_advisory_xact_lock`` on every session id in sorted key order
(so concurrent loads of overlapping sessions queue instead of deadlocking; on SQLite ``BEGIN
IMMEDIATE`` serialises writers); then the sessions' child rows are deleted, their
``sessions``/``raw_sessions`` rows upserted (updated in place) and the new child rows inserted:
with ``COPY`` straight into the tables on PostgreSQL (nobody else can write these sessions
meanwhile, and the new rows are distinct, so no conflict is possible), ``executemany`` on SQLite.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine, make_url

from zoom_qos.config import DEFAULT_WAREHOUSE_SCHEMA, WAREHOUSE_CONN_ID, default_warehouse_path
from zoom_qos.extract.availability import LOADED, PENDING, UNAVAILABLE
from zoom_qos.transform.parsing import ParseIssues, storable_text
from zoom_qos.transform.rows import GradeIndex, UserRows, grade_index, session_row, unique_users, user_rows
from zoom_qos.warehouse import migrations
from zoom_qos.warehouse import schema as s

__all__ = [
    "DEFAULT_CONN_ID",
    "DEFAULT_MAX_ROWS_PER_TRANSACTION",
    "MAX_SESSIONS_PER_TRANSACTION",
    "STREAM_BATCH_ROWS",
    "STREAM_THRESHOLD_ROWS",
    "SUPPORTED_CONN_TYPES",
    "LoadSummary",
    "SessionInput",
    "SessionLoadResult",
    "Warehouse",
    "url_from_connection",
    "warehouse_schema_from_connection",
]

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = WAREHOUSE_CONN_ID
DEFAULT_SCHEMA = DEFAULT_WAREHOUSE_SCHEMA
SUPPORTED_CONN_TYPES = ("sqlite", "postgres", "postgresql")
#: Rows per ``executemany`` batch (SQLite loads, upserts).
_BATCH_ROWS = 5000
#: A session that reaches this many rows (all tables) while its users are read is big: it is
#: written alone, in its own transaction, while the rest of its users are read. Below it,
#: sessions are held in memory whole and share transactions.
STREAM_THRESHOLD_ROWS = 5_000
#: Rows (all tables together) a big session buffers before writing them out.
STREAM_BATCH_ROWS = 5_000
#: Default bound on rows (all tables) per transaction of small sessions; they are held in
#: memory until their transaction is written, so this bounds the loader's memory too.
DEFAULT_MAX_ROWS_PER_TRANSACTION = 20_000
#: Bound on sessions per transaction: on PostgreSQL each takes an advisory lock, and the
#: shared lock table holds about max_locks_per_transaction (64) x max_connections entries.
MAX_SESSIONS_PER_TRANSACTION = 500
_SQLITE_BUSY_MS = 30_000
# libpq options that may be passed through from a connection's extra.
_PG_QUERY_OPTIONS = frozenset(
    {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "options"}
)
# Tables a session load writes, in order; the first two hold one row per session, the others
# (the children) are made to hold exactly the new set of the session's rows.
_LOAD_TABLES = (
    s.sessions,
    s.raw_sessions,
    s.session_users,
    s.raw_session_users,
    s.user_qos,
    s.user_system_qos,
)
_PARENT_TABLES = frozenset({s.sessions.name, s.raw_sessions.name})
_CHILD_TABLES = tuple(table for table in _LOAD_TABLES if table.name not in _PARENT_TABLES)
# JSON escape for NUL not preceded by an escaping backslash (jsonb rejects \u0000).
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


@dataclass(frozen=True)
class SessionLoadResult:
    """What one ``load_session`` call wrote (all zero when the session was skipped)."""

    loaded: bool
    users: int = 0
    qos_rows: int = 0
    system_rows: int = 0


@dataclass(frozen=True)
class SessionInput:
    """One listed session to load, with what became of its QoS.

    ``qos_status`` ``loaded``: ``users`` (any iterable, read once) are its joins and samples, which
    replace the ones in the warehouse. ``pending``/``unavailable``: Zoom did not serve its QoS, so
    only its ``sessions``/``raw_sessions`` rows are written and its joins and samples, if an earlier
    run loaded them, are kept (a ``loaded`` session stays ``loaded``). ``checked_at``: when its QoS
    was asked for. ``grades``: the ``GET …/users`` entries of the session (None: not read).
    """

    session: Mapping[str, Any]
    users: Iterable[Mapping[str, Any]] = ()
    qos_status: str = LOADED
    checked_at: datetime | None = None
    grades: Sequence[Mapping[str, Any]] | None = None


@dataclass
class LoadSummary:
    """What one ``load_sessions`` call wrote.

    ``sessions_loaded`` counts session loads (a session given twice counts twice, as two
    loads happened); ``session_ids`` lists the distinct ids loaded, in first-load order;
    ``transactions`` counts committed transactions (a big, streamed session is one of its own).
    ``sessions_pending``/``sessions_unavailable`` count the sessions written without QoS, by the
    status they were left with.
    """

    sessions_loaded: int = 0
    sessions_skipped: int = 0
    sessions_pending: int = 0
    sessions_unavailable: int = 0
    users: int = 0
    qos_rows: int = 0
    system_rows: int = 0
    session_ids: list[str] = field(default_factory=list)
    transactions: int = 0


@dataclass
class _PreparedSession:
    """One session's rows per table (without ``loaded_at``), what they count, the issues found.

    For a big session ``rows`` holds the users read so far and ``rest`` the users not read yet
    (deduplicated and turned into rows lazily); the counts grow as ``rest`` is written.
    """

    session_id: str
    rows: dict[str, list[dict[str, Any]]]
    issues: ParseIssues
    rest: Iterator[UserRows] | None = None
    #: Written without QoS (pending/unavailable): its child rows are left as they are.
    unread: bool = False
    users: int = 0
    qos_rows: int = 0
    system_rows: int = 0

    @property
    def size(self) -> int:
        return sum(len(rows) for rows in self.rows.values())

    def add(self, derived: UserRows) -> None:
        """Hold one user's rows (and count them)."""
        _append_user(self.rows, derived)
        self.count(derived)

    def count(self, derived: UserRows) -> None:
        self.users += 1
        self.qos_rows += len(derived.qos)
        self.system_rows += len(derived.system)


def _json_serializer(value: Any) -> str:
    """JSON for the raw layer: never fails on odd types, and jsonb-safe (no NUL escapes).

    An object decoded from staging brings its own text, stored as is unless it holds a
    ``\\u`` escape (it may be a NUL or a lone surrogate, which jsonb refuses).
    """
    text = getattr(value, "json_text", None)
    if text is not None and "\\u" not in text:
        return text
    text = json.dumps(value, default=str, ensure_ascii=False)
    # The regexes are the costly part of a load's serialization: only run them when they can
    # match. json.dumps escapes NUL, so only a lone surrogate (never ASCII) is unstorable here.
    if not text.isascii():
        text = storable_text(text)
    return _JSON_NUL.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


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


def advisory_lock_key(session_id: str) -> int:
    """Stable signed 64-bit key for ``pg_advisory_xact_lock`` (Python's hash() is salted)."""
    digest = hashlib.blake2b(session_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _batches(rows: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), _BATCH_ROWS):
        yield rows[start : start + _BATCH_ROWS]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _append_user(rows: dict[str, list[dict[str, Any]]], derived: UserRows) -> None:
    rows[s.session_users.name].append(derived.session_user)
    rows[s.raw_session_users.name].append(derived.raw)
    rows[s.user_qos.name].extend(derived.qos)
    rows[s.user_system_qos.name].extend(derived.system)


def _row_count(derived: UserRows) -> int:
    return 2 + len(derived.qos) + len(derived.system)


def _check_users(session_id: str, users: object) -> Iterable[Mapping[str, Any]]:
    """``users`` itself if it can be a sequence of user objects; a clear error if not.

    A dict or a string is iterable too, but iterating one would "load" its keys or characters
    as unkeyable users instead of failing.
    """
    if isinstance(users, Iterable) and not isinstance(users, (str, bytes, Mapping)):
        return users
    raise TypeError(
        f"The users of session {session_id!r} must be an iterable of Zoom user objects, got "
        f"{type(users).__name__}; pass [] for a session without users."
    )


def _derived_users(
    session_id: str, users: Iterable[Mapping[str, Any]], issues: ParseIssues, grades: GradeIndex | None
) -> Iterator[UserRows]:
    """Each distinct, keyable join of a session as rows, read lazily (first occurrence wins)."""
    for user in unique_users(users):
        derived = user_rows(session_id, user, issues, grades)
        if derived is not None:
            yield derived


def _prepare(item: SessionInput, issues: ParseIssues, limit: int | None = None) -> _PreparedSession | None:
    """One session's rows (users deduplicated), or None if the session cannot be keyed.

    With ``limit``, reading the users stops once the rows reach it, and the users not read yet
    are left in ``rest`` to be streamed; without, every user is read (``rest`` stays None).
    """
    session = item.session
    srow = session_row(session, issues)
    if srow is None:
        return None
    srow["qos_status"] = item.qos_status
    srow["qos_checked_at"] = item.checked_at
    session_id: str = srow["session_id"]
    rows: dict[str, list[dict[str, Any]]] = {
        s.sessions.name: [srow],
        s.raw_sessions.name: [{"session_id": session_id, "payload": dict(session)}],
        **{table.name: [] for table in _CHILD_TABLES},
    }
    prepared = _PreparedSession(session_id, rows, issues, unread=item.qos_status != LOADED)
    if prepared.unread:
        return prepared
    grades = None if item.grades is None else grade_index(item.grades, issues)
    derived = _derived_users(session_id, _check_users(session_id, item.users), issues, grades)
    for user in derived:
        prepared.add(user)
        if limit is not None and prepared.size >= limit:
            prepared.rest = derived
            break
    return prepared


def _transactions(prepared: Iterable[_PreparedSession], max_rows: int) -> Iterator[list[_PreparedSession]]:
    """Consecutive sessions grouped into the transactions ``load_sessions`` writes.

    A group ends before it would exceed ``max_rows`` rows or :data:`MAX_SESSIONS_PER_TRANSACTION`
    sessions, or hold the same session twice. A big session (users left to stream, or at least
    ``min(STREAM_THRESHOLD_ROWS, max_rows)`` rows) is a group of its own. Each group is yielded
    before the next session is read, so at most one small group and one session's first rows
    are in memory at a time.
    """
    alone_from = min(STREAM_THRESHOLD_ROWS, max_rows)
    group: list[_PreparedSession] = []
    size = 0
    for session in prepared:
        alone = session.rest is not None or session.size >= alone_from
        if group and (
            alone
            or size + session.size > max_rows
            or len(group) >= MAX_SESSIONS_PER_TRANSACTION
            or any(p.session_id == session.session_id for p in group)
        ):
            yield group
            group, size = [], 0
        if alone:
            yield [session]
        else:
            group.append(session)
            size += session.size
    if group:
        yield group


def _keep_loaded_status(conn: Connection, unread: Sequence[_PreparedSession]) -> None:
    """A session whose QoS was loaded before keeps its rows and its ``loaded`` status when Zoom
    answers 3001 on a later read (it may still be processing it, or have dropped it): what we
    read is a fact we keep. Runs under the group's locks, so the status read is the current one."""
    if not unread:
        return
    ids = [p.session_id for p in unread]
    query = sa.select(s.sessions.c.session_id).where(
        s.sessions.c.session_id.in_(ids), s.sessions.c.qos_status == LOADED)
    kept = set(conn.execute(query).scalars())
    for prepared in unread:
        if prepared.session_id in kept:
            row = prepared.rows[s.sessions.name][0]
            log.warning("Session %r was loaded before, but Zoom now answers that its QoS is not "
                        "available; its rows and its 'loaded' status are kept", prepared.session_id)
            row["qos_status"] = LOADED


def _sqlite_enable_wal(cursor: Any) -> None:
    """Switch the file to WAL (persistent), tolerating other connections doing the same.

    Changing the journal mode needs an exclusive lock and SQLite reports "database is locked"
    at once instead of waiting on the busy timeout, so first connections racing on a new file
    retry briefly; once one has switched, the others find WAL already set.
    """
    deadline = time.monotonic() + _SQLITE_BUSY_MS / 1000
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


def copy_values(
    table: sa.Table, rows: Iterable[Mapping[str, Any]], loaded_at: datetime | None
) -> Iterator[list[Any]]:
    """Each row's values in column order, as binary ``COPY`` takes them (JSON text wrapped as
    ``Jsonb``, aware UTC times).

    This runs for every row of a PostgreSQL load (and of the benchmark's COPY ceiling), so per
    row there is one C-level ``map`` over the columns and only the columns that need it are
    converted; times already in UTC (all the transform makes) are left as they are.
    """
    from psycopg.types.json import Jsonb

    columns = [c.name for c in table.columns]
    json_at = [i for i, c in enumerate(table.columns) if isinstance(c.type, sa.JSON)]
    time_at = [
        i for i, c in enumerate(table.columns) if isinstance(c.type, s.UtcDateTime) and c.name != "loaded_at"
    ]
    stamp_at = columns.index("loaded_at") if "loaded_at" in columns else None
    stamp = None if loaded_at is None else _utc(loaded_at)
    for row in rows:
        values = list(map(row.get, columns))
        if stamp_at is not None:
            values[stamp_at] = stamp
        for i in time_at:
            value = values[i]
            if value is not None and value.tzinfo is not UTC:
                values[i] = _utc(value)
        for i in json_at:
            value = values[i]
            if value is not None:  # JSON text, sent to jsonb as it is
                values[i] = Jsonb(_json_serializer(value), dumps=_as_is)
        yield values


def copy_rows(
    cursor: Any, target: Any, table: sa.Table, rows: Iterable[Mapping[str, Any]], loaded_at: datetime | None
) -> None:
    """``COPY`` ``rows`` into ``target`` (a psycopg ``sql`` identifier of a table like ``table``).

    The loader's only way of sending rows to PostgreSQL, shared with the benchmark's COPY
    ceiling so that both pay exactly the same client-side cost per value.
    """
    from psycopg import sql

    columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in table.columns)
    # Binary: PostgreSQL takes numbers and times without parsing text, and the client sends
    # them without formatting it; four times the rows per second of text COPY here.
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(target, columns)
    with cursor.copy(statement) as copy:
        copy.set_types(_pg_types(table))
        for values in copy_values(table, rows, loaded_at):
            copy.write_row(values)


def _as_is(text: str) -> str:
    return text


@functools.cache
def _pg_types(table: sa.Table) -> list[str]:
    """The PostgreSQL type of each column, which binary ``COPY`` must be told."""
    return [str(c.type.compile(dialect=pg_dialect.dialect())).lower() for c in table.columns]


def _upsert(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """``INSERT … ON CONFLICT (primary key) DO UPDATE`` of the columns ``rows`` carry, in batches."""
    insert = pg_dialect.insert if conn.dialect.name == "postgresql" else sqlite_dialect.insert
    stmt = insert(table)
    keys = [c.name for c in table.primary_key.columns]
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    updates = {name: value for name, value in updates.items() if name in rows[0]}
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_=updates)
    for batch in _batches(rows):
        conn.execute(stmt, list(batch))


class _Load:
    """One load transaction's writer; the write lock (SQLite) or the sessions' advisory locks
    (PostgreSQL) must already be held.

    Starting it deletes the sessions' child rows; then every batch written is inserted, except
    that the one ``sessions``/``raw_sessions`` row of a session is upserted (updated in place,
    so anything keyed on a session stays valid). Replacing the children wholesale makes them
    exactly the new set, and is much cheaper than upserting them: in the load benchmark a full
    re-load runs at ~0.8 of a plain COPY's speed, against ~0.43 when the rows went through temp
    tables, a ``DELETE … NOT EXISTS`` and ``INSERT … ON CONFLICT DO UPDATE``.
    """

    def __init__(self, conn: Connection, replaced_ids: Sequence[str], loaded_at: datetime | None) -> None:
        self.conn = conn
        self.loaded_at = loaded_at
        ids = sorted(set(replaced_ids))
        for table in _CHILD_TABLES if ids else ():
            conn.execute(table.delete().where(table.c.session_id.in_(ids)))

    def write(self, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        if table.name in _PARENT_TABLES:
            _upsert(self.conn, table, [{**row, "loaded_at": self.loaded_at} for row in rows])
        else:
            self._insert(table, rows)

    def _insert(self, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        stamped = [{**row, "loaded_at": self.loaded_at} for row in rows]
        for batch in _batches(stamped):
            self.conn.execute(table.insert(), list(batch))


class _PgLoad(_Load):
    """The PostgreSQL writer: child rows go straight into their tables with ``COPY``.

    No conflict is possible: the sessions' old child rows are gone, the new ones are distinct
    (deduplicated on the primary key), and every writer holds the sessions' advisory locks.
    """

    def __init__(
        self, conn: Connection, schema: str, replaced_ids: Sequence[str], loaded_at: datetime | None
    ) -> None:
        super().__init__(conn, replaced_ids, loaded_at)
        self.schema = schema

    def _insert(self, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        import psycopg
        from psycopg import sql

        raw = self.conn.connection.driver_connection  # psycopg.Connection, inside our transaction
        target = sql.Identifier(self.schema, table.name)
        try:
            with raw.cursor() as cur:
                copy_rows(cur, target, table, rows, self.loaded_at)
        except psycopg.Error as error:
            # Same exception types as the SQLAlchemy paths (IntegrityError, OperationalError…).
            raise sa.exc.DBAPIError.instance(
                sql.SQL("COPY {}").format(target).as_string(raw),
                None,
                error,
                psycopg.Error,
                hide_parameters=True,
                dialect=self.conn.dialect,
            ) from error


class Warehouse:
    """The warehouse behind one SQLAlchemy engine; all writes go through here."""

    def __init__(self, url: str | URL, schema: str = DEFAULT_SCHEMA) -> None:
        self.url: URL = make_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"Unsupported warehouse database {self.dialect!r}; use sqlite or postgresql.")
        # The schema only exists on PostgreSQL; SQLite uses its main database.
        self.schema: str | None = schema if self.dialect == "postgresql" else None
        options: dict[str, Any] = {}
        kwargs: dict[str, Any] = {
            "json_serializer": _json_serializer,
            # Parameters hold raw payloads: keep them out of exception text and logs.
            "hide_parameters": True,
        }
        if self.dialect == "postgresql":
            options["schema_translate_map"] = {None: self.schema}
            kwargs["pool_pre_ping"] = True
        else:
            kwargs["connect_args"] = {"timeout": _SQLITE_BUSY_MS / 1000}
        self.engine: Engine = sa.create_engine(self.url, execution_options=options, **kwargs)
        if self.dialect == "sqlite":
            self._install_sqlite_hooks()

    def __repr__(self) -> str:
        return f"Warehouse({self.url!r}, schema={self.schema!r})"

    def _install_sqlite_hooks(self) -> None:
        """WAL + busy timeout, and explicit BEGIN so writers can use BEGIN IMMEDIATE.

        pysqlite's own transaction handling defers BEGIN until the first write, so two
        writers can both read and then deadlock upgrading their locks. Taking the write
        lock up front (``BEGIN IMMEDIATE``) makes concurrent loads queue behind the busy
        timeout instead.
        """

        @sa.event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
                _sqlite_enable_wal(cursor)
            finally:
                cursor.close()

        @sa.event.listens_for(self.engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("sqlite_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @classmethod
    def from_airflow(
        cls,
        conn_id: str = DEFAULT_CONN_ID,
        default_sqlite_path: str | Path | None = None,
    ) -> Warehouse:
        """Warehouse from an Airflow connection, or the embedded SQLite file if none is defined.

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
            warehouse = cls(URL.create("sqlite", database=str(path)))
        else:
            warehouse = cls(url_from_connection(conn, conn_id), warehouse_schema_from_connection(conn))
        log.info("Warehouse: %r", warehouse)  # URL repr masks the password
        return warehouse

    def ensure_schema(self) -> bool:
        """Migrate the warehouse to the head revision and refresh changed BI views.

        Idempotent, safe to run from many processes at once, and cheap when nothing changed
        (see :mod:`zoom_qos.warehouse.migrations`). Returns True when it had to take the schema lock.
        """
        return migrations.ensure_schema(self.engine, self.schema)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction: BEGIN IMMEDIATE on SQLite; commit, or roll back and re-raise."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn

    def load_session(
        self,
        session: Mapping[str, Any],
        users: Iterable[Mapping[str, Any]],
        issues: ParseIssues,
    ) -> SessionLoadResult:
        """Write one session and exactly its current users/samples, in one transaction."""
        summary = self.load_sessions([SessionInput(session, users)], issues)
        if not summary.sessions_loaded:
            return SessionLoadResult(loaded=False)
        return SessionLoadResult(
            loaded=True, users=summary.users, qos_rows=summary.qos_rows, system_rows=summary.system_rows
        )

    def load_sessions(
        self,
        items: Iterable[SessionInput | tuple[Mapping[str, Any], Iterable[Mapping[str, Any]]]],
        issues: ParseIssues,
        max_rows_per_transaction: int = DEFAULT_MAX_ROWS_PER_TRANSACTION,
    ) -> LoadSummary:
        """Write sessions (:class:`SessionInput`, or ``(session, users)`` pairs of loaded
        sessions), each with exactly its current users/samples.

        ``items`` and each ``users`` (any iterable: a list, or a one-shot iterator over a huge
        session) are read once, lazily. Small sessions share transactions of at most
        ``max_rows_per_transaction`` rows (and :data:`MAX_SESSIONS_PER_TRANSACTION` sessions; the
        same session twice starts a new one); a session reaching ``min(STREAM_THRESHOLD_ROWS,
        max_rows_per_transaction)`` rows is written alone while its users are read, so memory
        stays bounded whatever the sizes (see the module docstring). Unkeyable sessions are
        skipped and counted. Parse problems of loaded sessions are added to ``issues`` only once
        their transaction has committed, so a retried load does not count them twice. On an
        error, the transactions committed so far stay loaded, the failing one (however much of
        a streamed session it had written) is rolled back, and the exception propagates.
        """
        if max_rows_per_transaction < 1:
            raise ValueError(f"max_rows_per_transaction must be at least 1, got {max_rows_per_transaction}")
        summary = LoadSummary()
        seen: set[str] = set()
        limit = min(STREAM_THRESHOLD_ROWS, max_rows_per_transaction)

        def prepared_sessions() -> Iterator[_PreparedSession]:
            for item in items:
                local = ParseIssues()
                prepared = _prepare(item if isinstance(item, SessionInput) else SessionInput(*item),
                                    local, limit)
                if prepared is None:
                    issues.merge(local)
                    summary.sessions_skipped += 1
                    continue
                yield prepared

        for group in _transactions(prepared_sessions(), max_rows_per_transaction):
            self._write_group(group)
            summary.transactions += 1
            for prepared in group:  # committed: count it
                issues.merge(prepared.issues)
                status = prepared.rows[s.sessions.name][0]["qos_status"]
                summary.sessions_pending += status == PENDING
                summary.sessions_unavailable += status == UNAVAILABLE
                summary.sessions_loaded += not prepared.unread
                summary.users += prepared.users
                summary.qos_rows += prepared.qos_rows
                summary.system_rows += prepared.system_rows
                if prepared.session_id not in seen:
                    seen.add(prepared.session_id)
                    summary.session_ids.append(prepared.session_id)
        return summary

    def _write_group(self, group: Sequence[_PreparedSession]) -> None:
        """One transaction: every session of ``group`` goes from its old rows to its new rows.

        The users of a big session not read yet (``rest``; such a session is alone in its group)
        are read and written inside the same transaction, a batch at a time, so any error (the
        users iterator's own included) rolls the whole session back.
        """
        session_ids = [p.session_id for p in group]
        loaded_at = s.utcnow()
        with self._write() as conn:
            load = self._begin_load(conn, session_ids, [p.session_id for p in group if not p.unread],
                                    loaded_at)
            _keep_loaded_status(conn, [p for p in group if p.unread])
            for table in _LOAD_TABLES:
                self._write_rows(load, table, [row for p in group for row in p.rows[table.name]])
            for prepared in group:
                if prepared.rest is not None:
                    self._stream_rest(load, prepared)

    def _begin_load(self, conn: Connection, session_ids: Sequence[str], replaced_ids: Sequence[str],
                    loaded_at: datetime | None) -> _Load:
        """Lock the group's sessions (PostgreSQL) and delete the child rows of those it replaces."""
        if self.dialect == "postgresql":
            self._lock_sessions(conn, session_ids)
            return _PgLoad(conn, self.schema or "public", replaced_ids, loaded_at)
        return _Load(conn, replaced_ids, loaded_at)

    def _stream_rest(self, load: _Load, prepared: _PreparedSession) -> None:
        """Read and write a big session's remaining users, about STREAM_BATCH_ROWS rows at a time."""
        assert prepared.rest is not None
        for table in _CHILD_TABLES:  # the rows read first are written: let them go
            prepared.rows[table.name] = []
        batch: dict[str, list[dict[str, Any]]] = {table.name: [] for table in _CHILD_TABLES}
        size = 0
        for derived in prepared.rest:
            prepared.count(derived)
            _append_user(batch, derived)
            size += _row_count(derived)
            if size >= STREAM_BATCH_ROWS:
                self._write_batch(load, batch)
                size = 0
        self._write_batch(load, batch)

    def _write_batch(self, load: _Load, batch: dict[str, list[dict[str, Any]]]) -> None:
        for table in _CHILD_TABLES:
            if batch[table.name]:
                self._write_rows(load, table, batch[table.name])
                batch[table.name] = []

    def _write_rows(self, load: _Load, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        """Write one batch of ``table``'s new rows (a streamed session sends many per table)."""
        load.write(table, rows)

    def _lock_sessions(self, conn: Connection, session_ids: Sequence[str]) -> None:
        """Transaction-scoped advisory locks on the sessions, taken in sorted key order.

        Two loads of overlapping sessions then wait for each other at their first common
        session instead of interleaving writes (and every load takes its locks in the same
        order, so the waits cannot form a cycle).
        """
        keys = sorted({advisory_lock_key(sid) for sid in session_ids})
        conn.execute(
            sa.text(
                "SELECT count(pg_advisory_xact_lock(k)) FROM "
                "(SELECT k FROM unnest(CAST(:keys AS bigint[])) AS k ORDER BY k) AS ordered"
            ),
            {"keys": keys},
        )

    def upsert_daily_usage(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Write Zoom's daily counts (``daily_usage`` rows without ``fetched_at``), replacing the
        figures of the same days; a later read of a day that was still going on wins. Returns the
        days written."""
        if not rows:
            return 0
        fetched_at = s.utcnow()
        with self._write() as conn:
            _upsert(conn, s.daily_usage, [{**row, "fetched_at": fetched_at} for row in rows])
        return len(rows)

    def record_run(self, record: Mapping[str, Any]) -> None:
        """Upsert a ``pipeline_runs`` row by ``run_id``; only the given columns are updated.

        So a run can write ``outcome="running"`` at start and the figures at the end.
        Unknown keys are dropped with a warning rather than failing the run they describe.
        ``unparsed_detail`` may be a :class:`ParseIssues`; dates/timestamps may be ISO text.
        """
        if not record.get("run_id"):
            raise ValueError("record_run needs a run_id")
        columns = s.pipeline_runs.c
        row: dict[str, Any] = {}
        for key, value in record.items():
            if key not in columns:
                log.warning("record_run: ignoring unknown column %r", key)
                continue
            row[key] = self._coerce_run_value(key, value)
        if isinstance(record.get("unparsed_detail"), ParseIssues) and "unparsed_values" not in record:
            row["unparsed_values"] = record["unparsed_detail"].total
        row.setdefault("recorded_at", s.utcnow())
        row["run_id"] = str(row["run_id"])
        with self._write() as conn:
            _upsert(conn, s.pipeline_runs, [row])

    @staticmethod
    def _coerce_run_value(key: str, value: Any) -> Any:
        if isinstance(value, ParseIssues):
            return value.as_dict()
        if key in ("window_start", "window_end") and value is not None:
            if isinstance(value, datetime):
                return value.date()
            if isinstance(value, str):
                return date.fromisoformat(value[:10])
        return value

    def refresh_statistics(self, loaded: Mapping[str, int]) -> list[str]:
        """``ANALYZE`` the tables whose planner statistics know fewer rows than ``loaded`` wrote.

        ``loaded`` maps table names to rows just written. Right after a first big load the
        statistics still describe empty tables and PostgreSQL plans the data-quality joins as
        nested loops: 17 s instead of 0.4 s for 140,000 samples. Autovacuum would analyze them
        later; the checks run now. A mature warehouse, whose statistics know more rows than a
        day adds, is left to autovacuum. Returns the tables analyzed (none on SQLite).
        """
        if self.dialect != "postgresql":
            return []
        query = sa.text(
            "SELECT c.relname, c.reltuples FROM pg_class AS c JOIN pg_namespace AS n "
            "ON n.oid = c.relnamespace WHERE n.nspname = :schema AND c.relname = ANY(:names)"
        )
        with self.engine.connect() as conn:
            known = dict(conn.execute(query, {"schema": self.schema, "names": list(loaded)}).tuples().all())
        stale = [name for name, rows in loaded.items() if rows and known.get(name, -1) < rows]
        with self.engine.begin() as conn:
            quote = conn.dialect.identifier_preparer.quote
            for name in stale:
                conn.exec_driver_sql(f"ANALYZE {quote(self.schema or 'public')}.{quote(name)}")
        return stale

    def count_rows(self) -> dict[str, int]:
        """Row count per table, in load order (for the demo's summary and checks)."""
        with self.engine.connect() as conn:
            return {
                table.name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
                for table in s.TABLES
            }

    def dispose(self) -> None:
        """Close pooled connections (call at task end; SQLite files stay unlocked)."""
        self.engine.dispose()
