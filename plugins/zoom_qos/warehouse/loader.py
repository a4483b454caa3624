"""The load itself: idempotent, transactional bulk loads of Zoom sessions, in bounded memory.

In each transaction (:mod:`zoom_qos.warehouse.plan` decides which sessions share one) every
session's ``sessions``/``raw_sessions`` rows are upserted on the primary key and its child rows
are replaced by exactly the new set (rows Zoom no longer reports are gone), so a re-run, an
overlapping run or a re-read where users disappeared all leave the rows one load leaves, and a
crash or failure (a users iterator that raises included) leaves every session either fully old
or fully new (docs/warehouse.md). Parse problems are added to the caller's :class:`ParseIssues` only
once their transaction has committed.

Per transaction, on PostgreSQL ``pg_advisory_xact_lock`` on every session id in sorted key order
(so concurrent loads of overlapping sessions queue instead of deadlocking; on SQLite ``BEGIN
IMMEDIATE`` serialises writers); then the sessions' child rows are deleted, their
``sessions``/``raw_sessions`` rows upserted (updated in place) and the new child rows inserted:
with ``COPY`` straight into the tables on PostgreSQL (nobody else can write these sessions
meanwhile, and the new rows are distinct, so no conflict is possible), ``executemany`` on SQLite.
A big session is written while the rest of its users are read, :data:`STREAM_BATCH_ROWS` rows at
a time.

Live sessions (``qos_status = 'live'``, :meth:`zoom_qos.warehouse.store.Warehouse.load_live_sessions`)
go the same way: their rows so far replace their rows whole at each poll. Under the same locks the
loader reads which sessions are ``loaded`` already; a live session that is, is not written at all,
so a live poll and the daily load of the same session end ``loaded`` with the final rows whatever
their order.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from zoom_qos.core.contracts import LoadCounts
from zoom_qos.core.statuses import LIVE, LOADED, PENDING, UNAVAILABLE
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.warehouse import plan, schema
from zoom_qos.warehouse.columns import utcnow
from zoom_qos.warehouse.connection import write_transaction
from zoom_qos.warehouse.derived import Derivation
from zoom_qos.warehouse.plan import (
    CHILD_TABLES,
    DEFAULT_MAX_ROWS_PER_TRANSACTION,
    LOAD_TABLES,
    PreparedSession,
    SessionInput,
)
from zoom_qos.warehouse.writers import PgWriter, Writer, copy_rows

__all__ = [
    "DEFAULT_MAX_ROWS_PER_TRANSACTION",
    "STREAM_BATCH_ROWS",
    "LoadSummary",
    "SessionInput",
    "SessionLoader",
    "advisory_lock_key",
    "copy_rows",
    "lock_sessions",
]

log = logging.getLogger(__name__)

#: Rows (all tables together) a big session buffers before writing them out.
STREAM_BATCH_ROWS = 5_000

@dataclass
class LoadSummary:
    """What one ``load_sessions`` call wrote.

    ``sessions_loaded`` counts session loads (a session given twice counts twice, as two
    loads happened); ``session_ids`` lists the distinct ids loaded, in first-load order;
    ``transactions`` counts committed transactions (a big, streamed session is one of its own).
    ``sessions_pending``/``sessions_unavailable`` count the sessions written without QoS, by the
    status they were left with. ``sessions_live`` counts the live sessions written (also counted
    in ``sessions_loaded``: their rows were written); ``sessions_already_loaded`` the live ones
    not written because the warehouse already held their final (``loaded``) rows (not in
    ``sessions_skipped``, which counts the unkeyable).
    """

    sessions_loaded: int = 0
    sessions_skipped: int = 0
    sessions_pending: int = 0
    sessions_unavailable: int = 0
    sessions_live: int = 0
    sessions_already_loaded: int = 0
    users: int = 0
    qos_rows: int = 0
    system_rows: int = 0
    session_ids: list[str] = field(default_factory=list)
    transactions: int = 0

    def counts(self, issues: ParseIssues) -> LoadCounts:
        """What the run record and XCom say of this load (with the values it could not parse)."""
        return LoadCounts(
            sessions_loaded=self.sessions_loaded, sessions_skipped=self.sessions_skipped,
            sessions_pending=self.sessions_pending, sessions_unavailable=self.sessions_unavailable,
            users_loaded=self.users, qos_rows=self.qos_rows, system_rows=self.system_rows,
            unparsed_values=issues.total, unparsed_detail=issues.as_dict())

    def add(self, prepared: PreparedSession) -> None:
        """Count a session whose transaction committed (its id is the caller's to list)."""
        status = prepared.rows[schema.sessions.name][0]["qos_status"]
        self.sessions_pending += status == PENDING
        self.sessions_unavailable += status == UNAVAILABLE
        self.sessions_live += status == LIVE
        self.sessions_loaded += not prepared.unread
        self.users += prepared.users
        self.qos_rows += prepared.qos_rows
        self.system_rows += prepared.system_rows


def advisory_lock_key(session_id: str) -> int:
    """Stable signed 64-bit key for ``pg_advisory_xact_lock`` (Python's hash() is salted)."""
    digest = hashlib.blake2b(session_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class SessionLoader:
    """Loads sessions into the warehouse behind ``engine`` (tables in ``schema`` on PostgreSQL)."""

    def __init__(self, engine: Engine, schema_name: str | None) -> None:
        self.engine = engine
        self.schema_name = schema_name

    def load(
        self,
        items: Iterable[SessionInput | tuple[Mapping[str, Any], Iterable[Mapping[str, Any]]]],
        issues: ParseIssues,
        max_rows_per_transaction: int = DEFAULT_MAX_ROWS_PER_TRANSACTION,
    ) -> LoadSummary:
        """See :meth:`zoom_qos.warehouse.store.Warehouse.load_sessions`."""
        if max_rows_per_transaction < 1:
            raise ValueError(f"max_rows_per_transaction must be at least 1, got {max_rows_per_transaction}")
        summary = LoadSummary()
        seen: set[str] = set()
        limit = plan.stream_limit(max_rows_per_transaction)

        def prepared_sessions() -> Iterator[PreparedSession]:
            for item in items:
                local = ParseIssues()
                prepared = plan.prepare(item if isinstance(item, SessionInput) else SessionInput(*item),
                                        local, limit)
                if prepared is None:
                    issues.merge(local)
                    summary.sessions_skipped += 1
                    continue
                yield prepared

        for group in plan.transactions(prepared_sessions(), max_rows_per_transaction):
            self.write_group(group)
            summary.transactions += 1
            for prepared in group:  # committed: count it
                if prepared.kept_final:
                    summary.sessions_already_loaded += 1
                    continue
                issues.merge(prepared.issues)
                summary.add(prepared)
                if prepared.session_id not in seen:
                    seen.add(prepared.session_id)
                    summary.session_ids.append(prepared.session_id)
        return summary

    def write_group(self, group: Sequence[PreparedSession]) -> None:
        """One transaction: every session of ``group`` goes from its old rows to its new rows.

        The users of a big session not read yet (``rest``; such a session is alone in its group)
        are read and written inside the same transaction, a batch at a time, so any error (the
        users iterator's own included) rolls the whole session back.
        """
        loaded_at = utcnow()
        with write_transaction(self.engine) as conn:
            if conn.dialect.name == "postgresql":
                lock_sessions(conn, [p.session_id for p in group])
            written = _settle_statuses(conn, group)
            derivation = Derivation(conn, self.schema_name)
            derivation.lock()
            counted = derivation.counted(p.session_id for p in written)
            # Rows kept as they are (Zoom did not send QoS) and counted already: nothing to derive.
            kept = {p.session_id for p in written if p.unread and not p.live} & counted
            derivation.remove(sorted(counted - kept))
            writer = self._writer(conn, [p.session_id for p in written if not p.unread], loaded_at)
            for table in LOAD_TABLES:
                self._write_rows(writer, table, [row for p in written for row in p.rows[table.name]])
            for prepared in written:
                if prepared.rest is not None:
                    self._stream_rest(writer, prepared)
            derivation.add(sorted({p.session_id for p in written if not p.live} - kept))
            derivation.finish()

    def _writer(self, conn: Connection, replaced_ids: Sequence[str], loaded_at: datetime | None) -> Writer:
        """The writer of a transaction whose sessions are locked; it deletes the child rows of those
        it replaces."""
        if conn.dialect.name == "postgresql":
            return PgWriter(conn, self.schema_name or "public", replaced_ids, loaded_at)
        return Writer(conn, replaced_ids, loaded_at)

    def _stream_rest(self, writer: Writer, prepared: PreparedSession) -> None:
        """Read and write a big session's remaining users, about STREAM_BATCH_ROWS rows at a time."""
        assert prepared.rest is not None
        for table in CHILD_TABLES:  # the rows read first are written: let them go
            prepared.rows[table.name] = []
        batch: dict[str, list[dict[str, Any]]] = {table.name: [] for table in CHILD_TABLES}
        size = 0
        for derived in prepared.rest:
            prepared.count(derived)
            plan.append_user(batch, derived)
            size += plan.row_count(derived)
            if size >= STREAM_BATCH_ROWS:
                self._write_batch(writer, batch)
                size = 0
        self._write_batch(writer, batch)

    def _write_batch(self, writer: Writer, batch: dict[str, list[dict[str, Any]]]) -> None:
        for table in CHILD_TABLES:
            if batch[table.name]:
                self._write_rows(writer, table, batch[table.name])
                batch[table.name] = []

    def _write_rows(self, writer: Writer, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        """Write one batch of ``table``'s new rows (a streamed session sends many per table)."""
        writer.write(table, rows)


def lock_sessions(conn: Connection, session_ids: Sequence[str]) -> None:
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


def _settle_statuses(conn: Connection, group: Sequence[PreparedSession]) -> list[PreparedSession]:
    """The sessions of ``group`` to write, given what the warehouse holds now (under the group's
    locks, so the status read is the current one and stays so until the commit).

    A session whose QoS was loaded before keeps its rows and its ``loaded`` status when Zoom answers
    3001 on a later read (it may still be processing it, or have dropped it): what we read is a fact
    we keep. A ``live`` session already ``loaded`` is not written at all (a late poll must not
    overwrite final rows); it is marked ``kept_final``. A ``live`` session answering 3001 to the
    daily run simply takes the status given (``pending``): its live rows stay, as unread sessions'
    rows always do, until final rows replace them.
    """
    checked = [p for p in group if p.unread or p.live]
    if not checked:
        return list(group)
    sessions = schema.sessions
    query = sa.select(sessions.c.session_id).where(
        sessions.c.session_id.in_(sorted({p.session_id for p in checked})), sessions.c.qos_status == LOADED
    )
    loaded = set(conn.execute(query).scalars())
    written: list[PreparedSession] = []
    for prepared in group:
        if prepared.session_id in loaded and prepared.live:
            log.info("Session %r is already loaded with its final rows; the live rows are not written",
                     prepared.session_id)
            prepared.kept_final = True
            continue
        if prepared.session_id in loaded and prepared.unread:
            log.warning("Session %r was loaded before, but Zoom now answers that its QoS is not "
                        "available; its rows and its 'loaded' status are kept", prepared.session_id)
            prepared.rows[sessions.name][0]["qos_status"] = LOADED
        written.append(prepared)
    return written
