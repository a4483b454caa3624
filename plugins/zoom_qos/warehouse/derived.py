"""Keeps the derived tables (``derived_schema``) equal to what the stored rows say, transaction
by transaction.

A load calls :class:`Derivation` inside the transaction that replaces sessions' rows: the sessions'
old derived rows (and their share of the day-level tables) are taken away before their rows are
replaced, the new ones added after, and the days they touch recomputed, all before the commit. So a
crash leaves old rows with old derived rows, or new with new, never a mix; and a reload, a late
session or a live session turning past changes exactly the rows it touches.

Day-level figures are exact without reading a day's samples: counts come from ``quality_join_days``
(one row per join, media type and day) and nearest-rank p95s from ``quality_value_counts`` (how many
samples have each value), which a load adjusts by the sessions it replaces. On PostgreSQL the
day-level part is serialised by one advisory lock (taken after the sessions' locks, so loads cannot
deadlock on it); SQLite's ``BEGIN IMMEDIATE`` serialises every write already.

:func:`bring_up_to_date` recomputes everything from the stored samples when the scoring rules
(the SQL's checksum) or the thresholds (``qos_thresholds``) differ from what the derived rows were
made with: ``ensure_schema`` calls it, and so ``zoom-qos warehouse upgrade`` and every task that
opens the warehouse. A threshold change keeps ``quality_value_counts`` (values do not depend on
thresholds) and recomputes the rest.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from zoom_qos.core.statuses import LIVE
from zoom_qos.warehouse import derive_sql
from zoom_qos.warehouse.columns import utcnow
from zoom_qos.warehouse.derived_schema import (
    DERIVED_TABLES,
    derived_state,
    quality_daily,
    quality_daily_causes,
    quality_join_days,
    quality_joins,
    quality_sessions,
    quality_value_counts,
)
from zoom_qos.warehouse.schema import qos_thresholds, sessions
from zoom_qos.warehouse.scoring import SCORE_VERSION
from zoom_qos.warehouse.sql import object_prefix

__all__ = [
    "DERIVED_LOCK_KEY",
    "Derivation",
    "Progress",
    "bring_up_to_date",
    "recompute_all",
    "state_is_current",
]

log = logging.getLogger(__name__)

#: Advisory-lock key serialising the day-level derived tables on PostgreSQL ("ZQOSDerv").
DERIVED_LOCK_KEY = 0x5A514F5344657276
#: Ids (sessions or days) per statement: well under SQLite's bound on parameters.
_CHUNK = 500
#: ``derived_state`` names.
_SCORING, _THRESHOLDS = "scoring", "thresholds"

#: Called as ``progress(sessions_done, sessions_total)`` during a recomputation.
Progress = Callable[[int, int], None]


@functools.cache
def _statements(dialect: str, prefix: str) -> dict[str, sa.TextClause]:
    ids: sa.BindParameter[Any] = sa.bindparam("session_ids", expanding=True)
    days: sa.BindParameter[Any] = sa.bindparam("days", expanding=True)
    texts = {
        "scratch": derive_sql.scratch_ddl(dialect),
        "clear": f"DELETE FROM {derive_sql.SCRATCH}",
        "fill": derive_sql.scratch_fill_sql(dialect, prefix),
        "joins": derive_sql.join_quality_sql(dialect, prefix),
        "join_days": derive_sql.join_days_sql(dialect, prefix),
        "add_values": derive_sql.value_counts_sql(dialect, prefix, 1),
        "remove_values": derive_sql.value_counts_sql(dialect, prefix, -1),
        "sessions": derive_sql.session_quality_sql(dialect, prefix),
        "days": derive_sql.days_of_sessions_sql(prefix),
        "daily": derive_sql.quality_daily_sql(dialect, prefix),
        "causes": derive_sql.daily_causes_sql(prefix),
    }
    statements = {}
    for name, text in texts.items():
        clause = sa.text(text)
        for param in (ids, days):
            if f":{param.key}" in text:
                clause = clause.bindparams(param)
        statements[name] = clause
    return statements


@functools.cache
def scoring_checksum(dialect: str) -> str:
    """sha256 of the derivation's SQL (schema-free) and score version: what the rows were made by."""
    text = json.dumps(
        {"version": SCORE_VERSION, "sql": {k: str(v) for k, v in _statements(dialect, "").items()}},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _chunks(items: Sequence[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])


class Derivation:
    """The derived-table work of one transaction on ``conn`` (a warehouse connection, schema-translated)."""

    def __init__(self, conn: Connection, schema: str | None) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name
        self.sql = _statements(self.dialect, object_prefix(self.dialect, schema))
        self.days: set[Any] = set()

    def lock(self) -> None:
        """Serialise the day-level tables with every other writer of them (PostgreSQL)."""
        if self.dialect == "postgresql":
            self.conn.execute(sa.select(sa.func.pg_advisory_xact_lock(DERIVED_LOCK_KEY)))
            # The derivation joins intermediate results whose sizes PostgreSQL cannot estimate (it
            # guesses a few rows): hash joins, not nested loops (8 s -> 0.1 s for 25,000 samples).
            # Until finish(); the loader's own statements are single-table.
            self.conn.exec_driver_sql("SET LOCAL enable_nestloop = off")

    def counted(self, session_ids: Iterable[str]) -> set[str]:
        """Of ``session_ids``, those whose rows the derived tables hold now."""
        found: set[str] = set()
        for chunk in _chunks(sorted(set(session_ids))):
            query = sa.select(quality_sessions.c.session_id).where(quality_sessions.c.session_id.in_(chunk))
            found.update(self.conn.execute(query).scalars())
        return found

    def _run(self, name: str, chunk: list[Any] | None = None) -> None:
        key = "days" if name in ("daily", "causes") else "session_ids"
        self.conn.execute(self.sql[name], {} if chunk is None else {key: chunk})

    def _note_days(self, chunk: list[str]) -> None:
        self.days.update(self.conn.execute(self.sql["days"], {"session_ids": chunk}).scalars())

    def remove(self, session_ids: Sequence[str]) -> None:
        """Take the sessions' current rows out of the derived tables (before their rows change)."""
        ids = sorted(set(session_ids))
        if not ids:
            return
        self._run("scratch")
        for chunk in _chunks(ids):
            self._note_days(chunk)
            self._run("clear")
            self._run("fill", chunk)  # the rows about to be replaced, read once
            self._run("remove_values")
            for table in (quality_joins, quality_join_days, quality_sessions):
                self.conn.execute(table.delete().where(table.c.session_id.in_(chunk)))
        self._run("clear")

    def add(self, session_ids: Sequence[str], *, values: bool = True) -> None:
        """Derive the sessions' rows from their stored rows (after they were written)."""
        ids = sorted(set(session_ids))
        if not ids:
            return
        self._run("scratch")
        for chunk in _chunks(ids):
            self._run("clear")
            self._run("fill", chunk)  # each sample scored once, read by every statement below
            self._run("joins", chunk)
            self._run("join_days")
            if values:
                self._run("add_values")
            self._run("sessions", chunk)
            self._note_days(chunk)
        self._run("clear")  # SQLite keeps temporary rows past the commit

    def finish(self) -> None:
        """Recompute the day-level rows of every day the removed or added sessions touch."""
        for chunk in _chunks(sorted(self.days, key=str)):
            for table in (quality_daily, quality_daily_causes):
                self.conn.execute(table.delete().where(table.c.day.in_(chunk)))
            values = quality_value_counts
            self.conn.execute(values.delete().where(values.c.day.in_(chunk), values.c.samples <= 0))
            self._run("daily", chunk)
            self._run("causes", chunk)
        self.days.clear()
        if self.dialect == "postgresql":
            self.conn.exec_driver_sql("SET LOCAL enable_nestloop = on")


def _thresholds_checksum(conn: Connection) -> str:
    rows = conn.execute(sa.select(qos_thresholds).order_by(qos_thresholds.c.media_type)).mappings().all()
    text = json.dumps([{k: v for k, v in row.items() if k != "note"} for row in rows], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _wanted(conn: Connection) -> dict[str, str]:
    return {_SCORING: scoring_checksum(conn.dialect.name), _THRESHOLDS: _thresholds_checksum(conn)}


def _stored(conn: Connection) -> dict[str, str]:
    return dict(conn.execute(sa.select(derived_state.c.name, derived_state.c.checksum)).tuples().all())


def state_is_current(conn: Connection) -> bool:
    """True when the derived rows were made by these rules and thresholds (two small reads)."""
    return _stored(conn) == _wanted(conn)


def recompute_all(
    conn: Connection, schema: str | None, progress: Progress | None = None, *, values: bool = True
) -> int:
    """Recompute every derived row from the stored rows of the sessions that are not live, in the
    caller's transaction; ``values`` False keeps ``quality_value_counts`` (a threshold change).
    Returns the sessions derived; ``progress`` hears of each chunk of them."""
    derivation = Derivation(conn, schema)
    derivation.lock()
    tables = DERIVED_TABLES if values else tuple(t for t in DERIVED_TABLES if t is not quality_value_counts)
    for table in tables:
        conn.execute(table.delete())
    ids = list(
        conn.execute(
            sa.select(sessions.c.session_id)
            .where(sessions.c.qos_status != LIVE)
            .order_by(sessions.c.session_id)
        ).scalars()
    )
    done = 0
    for chunk in _chunks(ids):
        derivation.add(chunk, values=values)
        done += len(chunk)
        if progress is not None:
            progress(done, len(ids))
    derivation.finish()
    _record_state(conn)
    return len(ids)


def _record_state(conn: Connection) -> None:
    now = utcnow()
    conn.execute(derived_state.delete())
    conn.execute(
        derived_state.insert(),
        [{"name": name, "checksum": checksum, "updated_at": now} for name, checksum in _wanted(conn).items()],
    )


def bring_up_to_date(conn: Connection, schema: str | None, progress: Progress | None = None) -> bool:
    """Recompute the derived rows if the rules or the thresholds changed since they were made
    (all of them for new rules, all but the value counts for new thresholds). True if it did."""
    stored, wanted = _stored(conn), _wanted(conn)
    if stored == wanted:
        return False
    values = stored.get(_SCORING) != wanted[_SCORING]
    why = "the scoring rules are new" if values else "qos_thresholds changed"
    log.info("Recomputing the derived quality tables from the stored samples (%s).", why)
    sessions_done = recompute_all(conn, schema, progress, values=values)
    log.info("Derived quality tables recomputed for %d sessions.", sessions_done)
    return True
