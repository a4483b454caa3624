"""The warehouse behind one SQLAlchemy engine: every write, and the reads the tasks decide on."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Engine, make_url

from zoom_qos.core.statuses import LIVE, LOADED, PENDING
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.transform.rows import session_row
from zoom_qos.warehouse import migrations, runs
from zoom_qos.warehouse import schema as tables
from zoom_qos.warehouse.columns import utcnow
from zoom_qos.warehouse.connection import (
    DEFAULT_CONN_ID,
    DEFAULT_SCHEMA,
    airflow_target,
    create_engine,
    write_transaction,
)
from zoom_qos.warehouse.derived import Progress
from zoom_qos.warehouse.loader import LoadSummary, SessionLoader
from zoom_qos.warehouse.plan import DEFAULT_MAX_ROWS_PER_TRANSACTION, SessionInput
from zoom_qos.warehouse.sql import check_dialect
from zoom_qos.warehouse.writers import upsert

__all__ = ["Warehouse"]

log = logging.getLogger(__name__)

#: Session ids per ``IN (…)`` list: well under SQLite's bound on parameters per statement.
_IDS_PER_QUERY = 500


class Warehouse:
    """The warehouse behind one SQLAlchemy engine; all writes go through here."""

    def __init__(
        self, url: str | URL, schema: str = DEFAULT_SCHEMA, creator: Callable[[], Any] | None = None
    ) -> None:
        """``creator``, when given, opens the DB-API connections instead of ``url`` (an Airflow
        hook's ``get_conn``: see :class:`zoom_qos.warehouse.connection.WarehouseTarget`)."""
        self.url: URL = make_url(url)
        self.dialect = check_dialect(self.url.get_backend_name())
        # The schema only exists on PostgreSQL; SQLite uses its main database.
        self.schema: str | None = schema if self.dialect == "postgresql" else None
        self.engine: Engine = create_engine(self.url, self.schema, creator)

    def __repr__(self) -> str:
        return f"Warehouse({self.url!r}, schema={self.schema!r})"

    @classmethod
    def from_airflow(
        cls,
        conn_id: str = DEFAULT_CONN_ID,
        default_sqlite_path: str | Path | None = None,
    ) -> Warehouse:
        """Warehouse from an Airflow connection (through its Airflow hook), or the embedded SQLite
        file if none is defined (see :func:`zoom_qos.warehouse.connection.airflow_target`)."""
        target = airflow_target(conn_id, default_sqlite_path)
        warehouse = cls(target.url, target.schema, target.creator)
        log.info("Warehouse: %r", warehouse)  # no password: the URL repr masks it, hooks' URLs lack it
        return warehouse

    def ensure_schema(self, progress: Progress | None = None, *, recompute: bool = False) -> bool:
        """Migrate the warehouse to the head revision, refresh changed BI views, and recompute the
        derived tables if the scoring rules or ``qos_thresholds`` changed (or ``recompute``: always).

        Idempotent, safe to run from many processes at once, and cheap when nothing changed
        (see :mod:`zoom_qos.warehouse.migrations`). Returns True when it had to take the schema lock.
        """
        return migrations.ensure_schema(self.engine, self.schema, progress, recompute=recompute)

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
        ``max_rows_per_transaction`` rows (and ``MAX_SESSIONS_PER_TRANSACTION`` sessions; the
        same session twice starts a new one); a session reaching ``min(STREAM_THRESHOLD_ROWS,
        max_rows_per_transaction)`` rows is written alone while its users are read, so memory
        stays bounded whatever the sizes (see :mod:`zoom_qos.warehouse.plan`). Unkeyable sessions
        are skipped and counted. Parse problems of loaded sessions are added to ``issues`` only
        once their transaction has committed, so a retried load does not count them twice. On an
        error, the transactions committed so far stay loaded, the failing one (however much of
        a streamed session it had written) is rolled back, and the exception propagates.
        Items of status ``live`` are loaded as :meth:`load_live_sessions` does.
        """
        return SessionLoader(self.engine, self.schema).load(items, issues, max_rows_per_transaction)

    def load_live_sessions(
        self,
        items: Iterable[SessionInput | tuple[Mapping[str, Any], Iterable[Mapping[str, Any]]]],
        issues: ParseIssues,
        max_rows_per_transaction: int = DEFAULT_MAX_ROWS_PER_TRANSACTION,
    ) -> LoadSummary:
        """Write sessions in progress (a live poll): each session's rows so far replace its rows
        whole, with ``qos_status = 'live'``; joins whose user is still in have ``leave_time`` NULL.

        ``items`` as for :meth:`load_sessions` (``SessionInput`` of status ``live``, its
        ``checked_at`` the poll's time, or ``(session, users)`` pairs); every item is written as
        ``live``. Per session it is one transaction, with the locks of every load, as in
        :meth:`load_sessions`. A session the warehouse already holds ``loaded`` (the daily run read
        it as past) is not touched: a late poll never overwrites final rows; it is counted in
        ``LoadSummary.sessions_already_loaded``. ``sessions_live`` counts the sessions written.
        The daily load later replaces a live session's rows with the final ones (``loaded``), or,
        when Zoom answers 3001, sets it ``pending`` and keeps the live rows until then.
        """

        def as_live() -> Iterator[SessionInput]:
            for item in items:
                item = item if isinstance(item, SessionInput) else SessionInput(*item)
                if item.qos_status != LIVE:
                    item = dataclasses.replace(item, qos_status=LIVE)
                yield item

        return SessionLoader(self.engine, self.schema).load(as_live(), issues, max_rows_per_transaction)

    def upsert_daily_usage(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Write Zoom's daily counts (``daily_usage`` rows without ``fetched_at``), replacing the
        figures of the same days; a later read of a day that was still going on wins. Returns the
        days written."""
        if not rows:
            return 0
        fetched_at = utcnow()
        with write_transaction(self.engine) as conn:
            upsert(conn, tables.daily_usage, [{**row, "fetched_at": fetched_at} for row in rows])
        return len(rows)

    def record_run(self, record: Mapping[str, Any]) -> None:
        """Upsert a ``pipeline_runs`` row by ``run_id``; only the given columns are updated.

        So a run can write ``outcome="running"`` at start and the figures at the end.
        Unknown keys are dropped with a warning rather than failing the run they describe.
        ``unparsed_detail`` may be a :class:`ParseIssues`; dates/timestamps may be ISO text.
        """
        with write_transaction(self.engine) as conn:
            runs.record_run(conn, record)

    def claim_quality_alert(self, row: Mapping[str, Any]) -> bool:
        """Insert a ``quality_alerts`` row unless its day and kind are already there; True when
        this call inserted it (so the caller, and no concurrent run, notifies)."""
        table = tables.quality_alerts
        if self.dialect == "postgresql":
            stmt: Any = pg_insert(table).on_conflict_do_nothing(index_elements=["alert_day", "kind"])
        else:
            stmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=["alert_day", "kind"])
        with write_transaction(self.engine) as conn:  # RETURNING: rowcount is -1 on psycopg here
            return conn.execute(stmt.returning(table.c.kind), dict(row)).first() is not None

    def note_quality_alert(self, alert_day: date, kind: str, **values: Any) -> None:
        """Update a ``quality_alerts`` row (``notified_at``, ``notify_error``) after the notifier ran."""
        table = tables.quality_alerts
        with write_transaction(self.engine) as conn:
            conn.execute(
                table.update()
                .where(table.c.alert_day == alert_day, table.c.kind == kind)
                .values(**values)
            )

    def settled_sessions(self, session_ids: Sequence[str], settle: timedelta) -> set[str]:
        """The sessions of ``session_ids`` whose QoS was loaded at least ``settle`` after they
        ended: reading them again is waste.

        A run's lookback re-lists sessions still live (so not listed) at the previous run. Those
        the previous run did load are skipped, unless they were loaded so soon after their end
        that Zoom may not have had all their QoS yet; how soon Zoom has it is not documented.
        Sessions that are ``pending`` or ``unavailable`` are always read again (docs/warehouse.md, v2).
        """
        sessions = tables.sessions
        settled: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(session_ids), _IDS_PER_QUERY):
                chunk = list(session_ids[start : start + _IDS_PER_QUERY])
                query = sa.select(sessions.c.session_id, sessions.c.end_time, sessions.c.loaded_at).where(
                    sessions.c.session_id.in_(chunk), sessions.c.qos_status == LOADED
                )
                settled.update(
                    row.session_id
                    for row in conn.execute(query)
                    if row.end_time is not None and row.loaded_at >= row.end_time + settle
                )
        return settled

    def refresh_listed(self, listed: Sequence[Mapping[str, Any]]) -> int:
        """Take the sessions list's own objects for ``loaded`` sessions whose QoS is not read again
        (the events path loaded them from what ``session.ended`` carries): their list fields
        (duration, user count, flags, quality grades) and raw payload, in one transaction. Their
        times, status, joins and samples stay as loaded (the derived tables do not read these
        fields). Returns how many sessions were refreshed."""
        sessions, raw = tables.sessions, tables.raw_sessions
        now = utcnow()
        refreshed = 0
        with write_transaction(self.engine) as conn:
            for session in listed:
                row = session_row(session, ParseIssues())
                if row is None:
                    continue
                fields = {k: v for k, v in row.items() if k not in ("session_id", "start_time", "end_time")}
                done = conn.execute(sa.update(sessions).where(
                    sessions.c.session_id == row["session_id"], sessions.c.qos_status == LOADED,
                ).values(**fields, loaded_at=now)).rowcount
                if done:
                    upsert(conn, raw, [{"session_id": row["session_id"], "payload": dict(session),
                                        "loaded_at": now}])
                    refreshed += done
        return refreshed

    def pending_sessions(self, exclude: Collection[str] = ()) -> dict[str, dict[str, Any]]:
        """The ``pending`` and ``live`` sessions not in ``exclude``, by id, as Zoom listed them last
        (their raw payload).

        Each is asked for again as past (one request) and then loaded, or left (or made) pending,
        or turned unavailable once it ended more than ``qos_pending_max_hours`` ago; so the set
        stays small, and no session the live polls saw stays ``live`` once a daily run is past it.
        """
        sessions, raw = tables.sessions, tables.raw_sessions
        query = (
            sa.select(sessions.c.session_id, raw.c.payload)
            .join(raw, raw.c.session_id == sessions.c.session_id)
            .where(sessions.c.qos_status.in_((PENDING, LIVE)))
        )
        with self.engine.connect() as conn:
            return {
                row.session_id: dict(row.payload)
                for row in conn.execute(query)
                if row.session_id not in exclude and isinstance(row.payload, Mapping)
            }

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
            found = conn.execute(query, {"schema": self.schema, "names": list(loaded)}).tuples().all()
        known: dict[str, float] = {str(name): float(rows) for name, rows in found}
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
                for table in tables.TABLES
            }

    def dispose(self) -> None:
        """Close pooled connections (call at task end; SQLite files stay unlocked)."""
        self.engine.dispose()
