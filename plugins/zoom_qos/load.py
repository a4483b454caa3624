"""Idempotent, transactional bulk loads of Zoom sessions into the warehouse (SQLite or PostgreSQL).

:meth:`Warehouse.load_sessions` groups consecutive sessions into transactions of at most about
``max_rows_per_transaction`` rows (a single larger session is still one transaction). In each
transaction every session's ``sessions``/``raw_sessions`` rows are upserted on the primary key
and its child rows end up exactly the new set (rows Zoom no longer reports are deleted), so a
re-run, an overlapping run or a re-read where users disappeared all leave the rows one load
leaves, and a crash or failure leaves every session either fully old or fully new (WAREHOUSE.md).

PostgreSQL: per group, ``pg_advisory_xact_lock`` on every session id in sorted key order (so
concurrent loads of overlapping sessions queue instead of deadlocking), ``COPY`` into
``ON COMMIT DROP`` staging tables, then per table one ``INSERT … SELECT … ON CONFLICT DO
UPDATE`` and one ``DELETE`` of the group's rows missing from the new set. SQLite:
``BEGIN IMMEDIATE``, upsert the sessions, delete and re-insert the children with executemany.
"""

from __future__ import annotations

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

from zoom_qos import migrations
from zoom_qos import schema as s
from zoom_qos.config import DEFAULT_WAREHOUSE_SCHEMA, WAREHOUSE_CONN_ID, default_warehouse_path
from zoom_qos.parsing import ParseIssues, storable_text
from zoom_qos.transform import dedupe_users, session_row, user_rows

__all__ = [
    "DEFAULT_CONN_ID",
    "SUPPORTED_CONN_TYPES",
    "LoadSummary",
    "SessionLoadResult",
    "Warehouse",
    "url_from_connection",
    "warehouse_schema_from_connection",
]

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = WAREHOUSE_CONN_ID
DEFAULT_SCHEMA = DEFAULT_WAREHOUSE_SCHEMA
SUPPORTED_CONN_TYPES = ("sqlite", "postgres", "postgresql")
_BATCH_ROWS = 5000
#: Default bound on rows (all tables) per load transaction.
DEFAULT_MAX_ROWS_PER_TRANSACTION = 50_000
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
# JSON escape for NUL not preceded by an escaping backslash (jsonb rejects \u0000).
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


@dataclass(frozen=True)
class SessionLoadResult:
    """What one ``load_session`` call wrote (all zero when the session was skipped)."""

    loaded: bool
    users: int = 0
    qos_rows: int = 0
    system_rows: int = 0


@dataclass
class LoadSummary:
    """What one ``load_sessions`` call wrote.

    ``sessions_loaded`` counts session loads (a session given twice counts twice, as two
    loads happened); ``session_ids`` lists the distinct ids loaded, in first-load order.
    """

    sessions_loaded: int = 0
    sessions_skipped: int = 0
    users: int = 0
    qos_rows: int = 0
    system_rows: int = 0
    session_ids: list[str] = field(default_factory=list)
    transactions: int = 0


@dataclass
class _PreparedSession:
    """One session's rows per table (without ``loaded_at``) and the issues found building them."""

    session_id: str
    rows: dict[str, list[dict[str, Any]]]
    issues: ParseIssues

    @property
    def size(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


def _json_serializer(value: Any) -> str:
    """JSON for the raw layer: never fails on odd types, and jsonb-safe (no NUL escapes)."""
    text = storable_text(json.dumps(value, default=str, ensure_ascii=False))
    # The regex is the costly part of a load's serialization: only run it when it can match.
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


def _prepare(
    session: Mapping[str, Any], users: Sequence[Mapping[str, Any]], issues: ParseIssues
) -> _PreparedSession | None:
    """All rows of one session (users deduplicated), or None if the session cannot be keyed."""
    srow = session_row(session, issues)
    if srow is None:
        return None
    session_id: str = srow["session_id"]
    derived = [r for r in (user_rows(session_id, u, issues) for u in dedupe_users(users)) if r]
    rows = {
        s.sessions.name: [srow],
        s.raw_sessions.name: [{"session_id": session_id, "payload": dict(session)}],
        s.session_users.name: [r.session_user for r in derived],
        s.raw_session_users.name: [r.raw for r in derived],
        s.user_qos.name: [q for r in derived for q in r.qos],
        s.user_system_qos.name: [q for r in derived for q in r.system],
    }
    return _PreparedSession(session_id, rows, issues)


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
    table: sa.Table, rows: Iterable[Mapping[str, Any]], loaded_at: datetime
) -> Iterator[list[Any]]:
    """Each row's values in column order, as ``COPY`` takes them (JSON text, aware UTC times)."""
    columns = [c.name for c in table.columns]
    json_columns = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
    time_columns = {c.name for c in table.columns if isinstance(c.type, s.UtcDateTime)}
    for row in rows:
        values = []
        for name in columns:
            value = loaded_at if name == "loaded_at" else row.get(name)
            if value is not None:
                if name in json_columns:
                    value = _json_serializer(value)
                elif name in time_columns:
                    value = _utc(value)
            values.append(value)
        yield values


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
        (see :mod:`zoom_qos.migrations`). Returns True when it had to take the schema lock.
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

    def _upsert(self, conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        insert = pg_dialect.insert if self.dialect == "postgresql" else sqlite_dialect.insert
        stmt = insert(table)
        keys = [c.name for c in table.primary_key.columns]
        updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        updates = {name: value for name, value in updates.items() if name in rows[0]}
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_=updates)
        for batch in _batches(rows):
            conn.execute(stmt, list(batch))

    def load_session(
        self,
        session: Mapping[str, Any],
        users: Sequence[Mapping[str, Any]],
        issues: ParseIssues,
    ) -> SessionLoadResult:
        """Write one session and exactly its current users/samples, in one transaction."""
        summary = self.load_sessions([(session, users)], issues)
        if not summary.sessions_loaded:
            return SessionLoadResult(loaded=False)
        return SessionLoadResult(
            loaded=True, users=summary.users, qos_rows=summary.qos_rows, system_rows=summary.system_rows
        )

    def load_sessions(
        self,
        items: Iterable[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]],
        issues: ParseIssues,
        max_rows_per_transaction: int = DEFAULT_MAX_ROWS_PER_TRANSACTION,
    ) -> LoadSummary:
        """Write ``(session, users)`` pairs, each session with exactly its current users/samples.

        Consecutive sessions share a transaction until it would exceed
        ``max_rows_per_transaction`` rows (or :data:`MAX_SESSIONS_PER_TRANSACTION` sessions, or
        the same session comes again); a session is never split. ``items`` is consumed lazily,
        so memory holds one group at a time. Unkeyable sessions are skipped and counted. Parse
        problems of loaded sessions are added to ``issues`` only once their transaction has
        committed, so a retried load does not count them twice. On an error, the groups
        committed so far stay loaded and the exception propagates.
        """
        if max_rows_per_transaction < 1:
            raise ValueError("max_rows_per_transaction must be at least 1")
        summary = LoadSummary()
        seen: set[str] = set()
        group: list[_PreparedSession] = []
        group_rows = 0

        def flush() -> None:
            nonlocal group, group_rows
            if not group:
                return
            self._write_group(group)
            summary.transactions += 1
            for prepared in group:
                issues.merge(prepared.issues)
                summary.sessions_loaded += 1
                summary.users += len(prepared.rows[s.session_users.name])
                summary.qos_rows += len(prepared.rows[s.user_qos.name])
                summary.system_rows += len(prepared.rows[s.user_system_qos.name])
                if prepared.session_id not in seen:
                    seen.add(prepared.session_id)
                    summary.session_ids.append(prepared.session_id)
            group, group_rows = [], 0

        for session, users in items:
            local = ParseIssues()
            prepared = _prepare(session, users, local)
            if prepared is None:
                issues.merge(local)
                summary.sessions_skipped += 1
                continue
            if group and (
                group_rows + prepared.size > max_rows_per_transaction
                or len(group) >= MAX_SESSIONS_PER_TRANSACTION
                or any(p.session_id == prepared.session_id for p in group)
            ):
                flush()
            group.append(prepared)
            group_rows += prepared.size
        flush()
        return summary

    def _write_group(self, group: Sequence[_PreparedSession]) -> None:
        """One transaction: every session of ``group`` goes from its old rows to its new rows."""
        session_ids = [p.session_id for p in group]
        loaded_at = s.utcnow()
        with self._write() as conn:
            if self.dialect == "postgresql":
                self._lock_sessions(conn, session_ids)
            for table in _LOAD_TABLES:
                rows = [row for p in group for row in p.rows[table.name]]
                self._replace_rows(conn, table, rows, session_ids, loaded_at)

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

    def _replace_rows(
        self,
        conn: Connection,
        table: sa.Table,
        rows: Sequence[dict[str, Any]],
        session_ids: Sequence[str],
        loaded_at: datetime,
    ) -> None:
        """Make ``table``'s rows of ``session_ids`` exactly ``rows`` (stamped ``loaded_at``)."""
        if self.dialect == "postgresql":
            self._pg_replace_rows(conn, table, rows, session_ids, loaded_at)
            return
        stamped = [{**row, "loaded_at": loaded_at} for row in rows]
        if table.name in _PARENT_TABLES:
            self._upsert(conn, table, stamped)
            return
        conn.execute(table.delete().where(table.c.session_id.in_(list(session_ids))))
        for batch in _batches(stamped):
            conn.execute(table.insert(), list(batch))

    def _pg_replace_rows(
        self,
        conn: Connection,
        table: sa.Table,
        rows: Sequence[dict[str, Any]],
        session_ids: Sequence[str],
        loaded_at: datetime,
    ) -> None:
        import psycopg
        from psycopg import sql

        columns = [c.name for c in table.columns]
        keys = [c.name for c in table.primary_key.columns]
        target = sql.Identifier(self.schema or "public", table.name)
        staging = sql.Identifier(f"tmp_{table.name}")
        column_list = sql.SQL(", ").join(map(sql.Identifier, columns))
        is_parent = table.name in _PARENT_TABLES
        statement: sql.Composable = sql.SQL("")
        raw = conn.connection.driver_connection  # psycopg.Connection, inside our transaction
        try:
            with raw.cursor() as cur:
                if not rows:
                    if not is_parent:
                        statement = sql.SQL("DELETE FROM {} WHERE session_id = ANY(%s)").format(target)
                        cur.execute(statement, (list(session_ids),))
                    return
                statement = sql.SQL(
                    "CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP"
                ).format(staging, target)
                cur.execute(statement)
                statement = sql.SQL("COPY {} ({}) FROM STDIN").format(staging, column_list)
                with cur.copy(statement) as copy:
                    for values in copy_values(table, rows, loaded_at):
                        copy.write_row(values)
                if len(rows) > 1000:
                    cur.execute(sql.SQL("ANALYZE {}").format(staging))
                if not is_parent:
                    # Rows of these sessions that the new set no longer has.
                    statement = sql.SQL(
                        "DELETE FROM {target} AS t WHERE t.session_id = ANY(%s) AND NOT EXISTS "
                        "(SELECT 1 FROM {staging} AS n WHERE {match})"
                    ).format(
                        target=target,
                        staging=staging,
                        match=sql.SQL(" AND ").join(
                            sql.SQL("n.{0} = t.{0}").format(sql.Identifier(k)) for k in keys
                        ),
                    )
                    cur.execute(statement, (list(session_ids),))
                statement = sql.SQL(
                    "INSERT INTO {target} ({columns}) SELECT {columns} FROM {staging} "
                    "ON CONFLICT ({keys}) DO UPDATE SET {updates}"
                ).format(
                    target=target,
                    columns=column_list,
                    staging=staging,
                    keys=sql.SQL(", ").join(map(sql.Identifier, keys)),
                    updates=sql.SQL(", ").join(
                        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                        for c in columns
                        if c not in keys
                    ),
                )
                cur.execute(statement)
        except psycopg.Error as error:
            # Same exception types as the SQLAlchemy paths (IntegrityError, OperationalError…).
            text = statement.as_string(raw) if statement else None
            raise sa.exc.DBAPIError.instance(
                text, None, error, psycopg.Error, hide_parameters=True, dialect=conn.dialect
            ) from error

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
            self._upsert(conn, s.pipeline_runs, [row])

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
