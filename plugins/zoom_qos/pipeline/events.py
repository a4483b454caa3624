"""The events path: the sessions Zoom said have ended (``session.ended``), loaded minutes after.

The receiver stores each event (``zoom_qos.receiver``); the DAG ``zoom_videosdk_qos_events`` runs
when the triggerer sees new ones (``zoom_qos.triggers``), and also when started by hand. A run
stages every ``session.ended`` it has not handled yet (:func:`claim_ended`), reads and loads them
with the daily run's own extraction and load, then records what came of each (:func:`settle`):
``loaded``; ``pending`` when Zoom answered 3001 right after the end, asked again after a backoff of
a minute, doubling, for at most :data:`MAX_ATTEMPTS` tries; then ``left_to_daily`` (the daily run
reads it as any other session); ``unavailable`` when Zoom will not serve it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa

from zoom_qos.core.contracts import BatchRef, ListingStats
from zoom_qos.core.errors import NothingToLoad
from zoom_qos.core.statuses import LOADED, PENDING, UNAVAILABLE
from zoom_qos.pipeline.listing import stage_batches
from zoom_qos.pipeline.staging import read_jsonl
from zoom_qos.warehouse import schema as tables
from zoom_qos.warehouse.opening import ensure_reachable, opened_warehouse
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.webhooks import LEFT_TO_DAILY, EndedEvent, Outcome, due_ended_events, record_outcomes

__all__ = ["FIRST_RETRY", "MAX_ATTEMPTS", "claim_ended", "session_from_event", "settle", "staged_session_ids"]

log = logging.getLogger(__name__)

#: A session Zoom does not serve yet is asked again after a minute, then 2, 4, 8, 15, 15 … minutes.
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(minutes=15)
#: Tries before a pending session is left to the daily run (about an hour and a half of backoff).
MAX_ATTEMPTS = 8
#: The fields of a session.ended object that the sessions list has too (the list's ``id`` is the
#: event's ``session_id``; the event's own ``id`` is a deprecated integer, not the session id).
_LISTED_FIELDS = ("session_name", "session_key", "start_time", "end_time")
_IDS_PER_QUERY = 500


def session_from_event(event: EndedEvent) -> dict[str, Any]:
    """The session as the sessions list would give it, from what ``session.ended`` carries. The
    daily run later refreshes it from the list's own object (user count, quality grades)."""
    session = {name: event.object[name] for name in _LISTED_FIELDS if name in event.object}
    session["id"] = event.session_id
    return session


def claim_ended(*, dag_id: str, run_id: str, batch_size: int, staging: str | None = None,
                warehouse: Warehouse | None = None, now: datetime | None = None
                ) -> tuple[list[BatchRef], ListingStats]:
    """Stage the sessions of every due ``session.ended`` not handled yet, as the daily listing stages
    its sessions. Raises ``NothingToLoad`` when there is none (the run is then skipped)."""
    with opened_warehouse(warehouse, ensure_reachable) as opened:
        events = due_ended_events(opened.engine, now or datetime.now(UTC))
    if not events:
        raise NothingToLoad("No session.ended event is waiting: nothing to load.")
    sessions = [session_from_event(event) for event in events]
    batches = stage_batches(sessions, staging=staging, dag_id=dag_id, run_id=run_id, batch_size=batch_size)
    days = sorted(str(s["start_time"])[:10] for s in sessions if s.get("start_time"))
    stats = cast(ListingStats, {
        "window_start": days[0] if days else None, "window_end": days[-1] if days else None,
        "sessions_listed": len(sessions), "sessions_already_loaded": 0, "sessions_revisited": 0,
        "sessions_unrequestable": 0, "batches": len(batches), "daily_usage": [],
    })
    log.info("%d ended sessions to load, in %d batches", len(sessions), len(batches))
    return batches, stats


def staged_session_ids(batches: Sequence[BatchRef]) -> list[str]:
    """The ids of the sessions staged in ``batches``."""
    return [str(session["id"]) for batch in batches for session in read_jsonl(batch["sessions_uri"])]


def settle(*, session_ids: Sequence[str], run: str, warehouse: Warehouse | None = None,
           now: datetime | None = None) -> dict[str, str]:
    """Record on their events what the run's load made of each session (its ``qos_status``);
    returns session id -> outcome."""
    now = now or datetime.now(UTC)
    with opened_warehouse(warehouse, ensure_reachable) as opened:
        status = _statuses(opened, session_ids)
        tried = {event.session_id: event.attempts + 1 for event in due_ended_events(opened.engine, now)}
        outcomes = {session_id: _outcome(status.get(session_id), tried.get(session_id, 1), now)
                    for session_id in session_ids}
        record_outcomes(opened.engine, outcomes, run, now)
    counts: dict[str, int] = {}
    for result in outcomes.values():
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    log.info("Events settled: %s", ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "none")
    return {session_id: result.outcome for session_id, result in outcomes.items()}


def _outcome(status: str | None, tries: int, now: datetime) -> Outcome:
    if status in (LOADED, UNAVAILABLE):
        return Outcome(status)
    # pending, or not written at all (staged but not loaded): ask again later, a bounded number of times
    if tries >= MAX_ATTEMPTS:
        return Outcome(LEFT_TO_DAILY)
    return Outcome(PENDING, now + min(FIRST_RETRY * 2 ** (tries - 1), LONGEST_RETRY))


def _statuses(warehouse: Warehouse, session_ids: Sequence[str]) -> dict[str, str]:
    sessions = tables.sessions
    out: dict[str, str] = {}
    with warehouse.engine.connect() as conn:
        for start in range(0, len(session_ids), _IDS_PER_QUERY):
            chunk = list(session_ids[start : start + _IDS_PER_QUERY])
            query = sa.select(sessions.c.session_id, sessions.c.qos_status).where(
                sessions.c.session_id.in_(chunk))
            out.update((str(i), str(s)) for i, s in conn.execute(query))
    return out
