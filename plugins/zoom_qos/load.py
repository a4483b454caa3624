"""Idempotent, transactional loads of Zoom sessions into the warehouse (SQLite or PostgreSQL).

Every session is written in one transaction: its ``sessions``/``raw_sessions`` rows are
upserted on the primary key and its child rows are replaced by exactly the new set, so a
re-run, an overlapping run or a re-read where users disappeared all leave the rows one load
leaves, and a failure leaves the old rows untouched (WAREHOUSE.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine, make_url

from zoom_qos import schema as s
from zoom_qos.config import DEFAULT_WAREHOUSE_SCHEMA, WAREHOUSE_CONN_ID, default_warehouse_path
from zoom_qos.parsing import ParseIssues
from zoom_qos.transform import dedupe_users, session_row, user_rows

__all__ = [
    "DEFAULT_CONN_ID",
    "SUPPORTED_CONN_TYPES",
    "SessionLoadResult",
    "Warehouse",
    "url_from_connection",
    "warehouse_schema_from_connection",
]

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = WAREHOUSE_CONN_ID
DEFAULT_SCHEMA = DEFAULT_WAREHOUSE_SCHEMA
SUPPORTED_CONN_TYPES = ("sqlite", "postgres", "postgresql")
_BATCH_ROWS = 1000
_SQLITE_BUSY_MS = 30_000
# libpq options that may be passed through from a connection's extra.
_PG_QUERY_OPTIONS = frozenset(
    {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "options"}
)
# Child tables replaced wholesale on every session load.
_CHILD_TABLES = (s.user_qos, s.user_system_qos, s.session_users, s.raw_session_users)
# JSON escape for NUL not preceded by an escaping backslash (jsonb rejects \u0000).
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


@dataclass(frozen=True)
class SessionLoadResult:
    """What one ``load_session`` call wrote (all zero when the session was skipped)."""

    loaded: bool
    users: int = 0
    qos_rows: int = 0
    system_rows: int = 0


def _json_serializer(value: Any) -> str:
    """JSON for the raw layer: never fails on odd types, and jsonb-safe (no NUL escapes)."""
    return _JSON_NUL.sub(r"\1\\ufffd", json.dumps(value, default=str, ensure_ascii=False))


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
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
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

    def ensure_schema(self) -> None:
        """Create the schema and tables if missing (idempotent, safe to run concurrently)."""
        s.create_all(self.engine, self.schema)

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

    def _insert(self, conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        for batch in _batches(rows):
            conn.execute(table.insert(), list(batch))

    def load_session(
        self,
        session: Mapping[str, Any],
        users: Sequence[Mapping[str, Any]],
        issues: ParseIssues,
    ) -> SessionLoadResult:
        """Write one session and exactly its current users/samples, in one transaction.

        Parse problems are added to ``issues`` only once the load has committed, so a
        retried load does not count them twice.
        """
        local = ParseIssues()
        srow = session_row(session, local)
        if srow is None:
            issues.merge(local)
            return SessionLoadResult(loaded=False)
        session_id: str = srow["session_id"]
        derived = [r for r in (user_rows(session_id, u, local) for u in dedupe_users(users)) if r]

        loaded_at = s.utcnow()
        stamp: dict[str, Any] = {"loaded_at": loaded_at}
        children: dict[str, list[dict[str, Any]]] = {
            s.session_users.name: [{**r.session_user, **stamp} for r in derived],
            s.raw_session_users.name: [{**r.raw, **stamp} for r in derived],
            s.user_qos.name: [{**q, **stamp} for r in derived for q in r.qos],
            s.user_system_qos.name: [{**q, **stamp} for r in derived for q in r.system],
        }
        with self._write() as conn:
            if self.dialect == "postgresql":
                # Two runs loading the same session serialise here instead of interleaving
                # their delete/insert and hitting primary-key conflicts.
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(advisory_lock_key(session_id))))
            self._upsert(conn, s.sessions, [{**srow, **stamp}])
            self._upsert(
                conn,
                s.raw_sessions,
                [{"session_id": session_id, "payload": dict(session), **stamp}],
            )
            for table in _CHILD_TABLES:
                conn.execute(table.delete().where(table.c.session_id == session_id))
            for table in (s.session_users, s.raw_session_users, s.user_qos, s.user_system_qos):
                self._insert(conn, table, children[table.name])
        issues.merge(local)
        return SessionLoadResult(
            loaded=True,
            users=len(children[s.session_users.name]),
            qos_rows=len(children[s.user_qos.name]),
            system_rows=len(children[s.user_system_qos.name]),
        )

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
