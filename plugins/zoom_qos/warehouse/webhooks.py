"""The webhook store: Zoom's events kept durably, and the ``session.ended`` ones handed to the events DAG.

The receiver calls :func:`store_event` and answers Zoom 2xx only after it returns: the row is
committed (a failure raises, the receiver answers 5xx, and Zoom retries). An event is stored once
per identity (``ZoomEvent.key``): a retry or duplicate only counts a delivery. The events DAG reads
the ``session.ended`` rows not handled yet (:func:`due_ended_events`), loads their sessions and
records what came of each (:func:`record_outcomes`); the triggerer waits for such rows with
:func:`due_count`. The daily run leaves out the sessions the events path loaded
(:func:`event_loaded_sessions`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine

from zoom_qos.core.statuses import LOADED, UNAVAILABLE
from zoom_qos.warehouse.columns import UtcDateTime
from zoom_qos.warehouse.connection import write_transaction
from zoom_qos.warehouse.webhook_schema import (
    webhook_delivery_failures,
    webhook_events,
    webhook_signatures_seen,
    zoom_session_alerts,
)
from zoom_qos.zoom.webhooks import (
    SESSION_ALERT,
    SESSION_ENDED,
    SIGNATURE_WINDOW_SECONDS,
    LoggedDelivery,
    ZoomEvent,
)

__all__ = [
    "REPLAY_MEMORY",
    "STORED_EVENTS",
    "LEFT_TO_DAILY",
    "EndedEvent",
    "Outcome",
    "due_count",
    "due_ended_events",
    "event_loaded_sessions",
    "record_delivery_failures",
    "record_outcomes",
    "store_event",
    "stored_event_sessions",
]

#: The events kept (others are answered 200 and counted by the receiver, not stored).
STORED_EVENTS = frozenset({"session.started", SESSION_ENDED, SESSION_ALERT, "session.user_joined",
                           "session.user_left"})
#: An event's outcome when its backoff ran out: the daily run reads the session as any other.
LEFT_TO_DAILY = "left_to_daily"
#: Outcomes that close an event (a session's ``qos_status``, or left to the daily run); ``pending``
#: leaves it open until ``next_attempt_at``.
_CLOSING = frozenset({LOADED, UNAVAILABLE, LEFT_TO_DAILY})
_IDS_PER_QUERY = 500
#: How long a stored signed request is remembered: twice the window in which it is accepted at all.
REPLAY_MEMORY = timedelta(seconds=2 * SIGNATURE_WINDOW_SECONDS)


@dataclass(frozen=True)
class EndedEvent:
    """A stored ``session.ended`` still to handle."""

    key: str
    session_id: str
    event_ts: datetime
    attempts: int
    #: ``payload.object``: session_id, session_name, session_key, start_time, end_time.
    object: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What handling one session's events came to: its ``qos_status`` (``loaded``, ``pending`` with
    ``retry_at``, ``unavailable``) or ``left_to_daily``."""

    outcome: str
    retry_at: datetime | None = None


def _insert(conn: Connection) -> Any:
    return pg_dialect.insert if conn.dialect.name == "postgresql" else sqlite_dialect.insert


def store_event(engine: Engine, event: ZoomEvent, now: datetime) -> bool:
    """Commit ``event`` (and, for ``session.alert``, its ``zoom_session_alerts`` row) in one
    transaction; True if it is new, False for a delivery of an event already stored (counted) or the
    same signed request again (a replay: nothing changes)."""
    row = {"event_key": event.key, "event": event.event, "event_ts": event.event_ts,
           "session_id": event.session_id, "request_id": event.request_id, "payload": event.object,
           "received_at": now}
    with write_transaction(engine) as conn:
        insert = _insert(conn)
        if event.signature_hash is not None and not _first_sight(conn, event.signature_hash, now):
            return False
        stmt = insert(webhook_events).values(**row).on_conflict_do_nothing()
        # RETURNING, not rowcount: both drivers answer it the same way
        if conn.execute(stmt.returning(webhook_events.c.event_key)).first() is None:
            conn.execute(sa.update(webhook_events).where(webhook_events.c.event_key == event.key)
                         .values(deliveries=webhook_events.c.deliveries + 1))
            return False
        if event.event == SESSION_ALERT and event.session_id:
            issues = event.object.get("issues")
            alert = {"session_id": event.session_id, "event_ts": event.event_ts,
                     "alert_id": _text(event.object.get("id")),
                     "session_name": _text(event.object.get("session_name")),
                     "session_key": _text(event.object.get("session_key")),
                     "issues": ", ".join(str(i) for i in issues) if isinstance(issues, list) else "",
                     "received_at": now}
            conn.execute(insert(zoom_session_alerts).values(**alert).on_conflict_do_nothing())
        return True


def _first_sight(conn: Connection, signature: str, now: datetime) -> bool:
    """Remember a signed request; False if it was stored before (within the memory). Entries older
    than the memory go: such a request is refused as stale before it gets here."""
    seen = webhook_signatures_seen
    conn.execute(sa.delete(seen).where(seen.c.received_at < now - REPLAY_MEMORY))
    stmt = _insert(conn)(seen).values(signature_hash=signature, received_at=now).on_conflict_do_nothing()
    return conn.execute(stmt.returning(seen.c.signature_hash)).first() is not None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _due(now: datetime) -> sa.ColumnElement[bool]:
    e = webhook_events.c
    return sa.and_(e.event == SESSION_ENDED, e.handled_at.is_(None),
                   sa.or_(e.next_attempt_at.is_(None), e.next_attempt_at <= now))


def due_ended_events(engine: Engine, now: datetime, limit: int = 1000) -> list[EndedEvent]:
    """The ``session.ended`` events not handled yet whose next attempt is due, oldest first; one per
    session (a session's later duplicates are closed with it)."""
    e = webhook_events.c
    query = (sa.select(e.event_key, e.session_id, e.event_ts, e.attempts, e.payload)
             .where(_due(now)).order_by(e.event_ts, e.event_key).limit(limit))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    out: dict[str, EndedEvent] = {}
    for key, session_id, ts, attempts, payload in rows:
        out.setdefault(session_id, EndedEvent(key, session_id, ts, attempts, dict(payload or {})))
    return list(out.values())


def due_count(engine: Engine, now: datetime) -> tuple[int, datetime | None]:
    """How many ``session.ended`` events are due now, and since when the latest of them is (its
    arrival, or the end of its backoff): what the triggerer's watcher looks at."""
    e = webhook_events.c
    since = sa.type_coerce(sa.func.max(sa.func.coalesce(e.next_attempt_at, e.received_at)), UtcDateTime())
    with engine.connect() as conn:
        due, latest = conn.execute(sa.select(sa.func.count(), since).where(_due(now))).one()
    return int(due), latest


def record_outcomes(engine: Engine, outcomes: Mapping[str, Outcome], run: str, now: datetime) -> None:
    """Record what came of each session's events (by session id): every open ``session.ended`` of
    that session is closed, or left pending until ``retry_at``; attempts counted once."""
    e = webhook_events.c
    with write_transaction(engine) as conn:
        for session_id, result in outcomes.items():
            open_rows = sa.and_(e.event == SESSION_ENDED, e.session_id == session_id, e.handled_at.is_(None))
            values: dict[str, Any] = {"attempts": e.attempts + 1, "outcome": result.outcome,
                                      "handled_by": run}
            if result.outcome in _CLOSING:
                values.update(handled_at=now, next_attempt_at=None)
            else:
                values.update(next_attempt_at=result.retry_at or now)
            conn.execute(sa.update(webhook_events).where(open_rows).values(**values))


def event_loaded_sessions(engine: Engine, session_ids: Collection[str]) -> set[str]:
    """The sessions of ``session_ids`` the events path loaded: the daily run does not read them again."""
    e = webhook_events.c
    return _sessions_with(engine, session_ids, e.event == SESSION_ENDED, e.outcome == LOADED)


def record_delivery_failures(engine: Engine, failures: Collection[LoggedDelivery], now: datetime) -> int:
    """Keep failed deliveries of Zoom's ``webhook_logs``, each attempt once (a reconciliation that
    runs twice, or two at once, adds nothing the second time); returns how many are new."""
    added = 0
    columns = ("request_id", "retry_num", "event", "event_ts", "session_id", "status", "failed_reason_type",
               "endpoint", "attempted_at")
    with write_transaction(engine) as conn:
        insert = _insert(conn)
        for failure in failures:
            row = {name: getattr(failure, name) for name in columns}
            stmt = (insert(webhook_delivery_failures).values(**row, recorded_at=now).on_conflict_do_nothing()
                    .returning(webhook_delivery_failures.c.request_id))
            added += conn.execute(stmt).first() is not None
    return added


def stored_event_sessions(engine: Engine, event: str, session_ids: Collection[str]) -> set[str]:
    """The sessions of ``session_ids`` with an ``event`` the receiver stored."""
    return _sessions_with(engine, session_ids, webhook_events.c.event == event)


def _sessions_with(engine: Engine, session_ids: Collection[str], *where: sa.ColumnElement[bool]) -> set[str]:
    """The sessions of ``session_ids`` with a ``webhook_events`` row matching ``where`` (asked in chunks)."""
    e = webhook_events.c
    ids = sorted(session_ids)
    found: set[str] = set()
    with engine.connect() as conn:
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            query = sa.select(e.session_id).where(*where, e.session_id.in_(chunk)).distinct()
            found.update(str(v) for v in conn.execute(query).scalars())
    return found
