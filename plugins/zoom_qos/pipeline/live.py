"""What the live DAG's poll does: sessions in progress, their QoS so far, into the warehouse.

One poll lists the sessions Zoom has in progress (``type=live``, over yesterday and today: a
session may run over midnight), reads every one's users' QoS with ``type=live`` through the same
``BatchExtractor`` as the daily run (all pages, the same client, pacing, page-token restarts and
budget, from the live share of the daily cap), replaces each session's rows whole as
``qos_status = 'live'``, raises the alerts of joins whose recent quality is poor
(``alerts.live``) and writes its run record.

A poll whose live share of the day's requests is spent *pauses*: it records ``paused`` and
succeeds, and the polls after 00:00 UTC go on. Live sessions are few and small (users in a call
right now), so a poll holds them in memory instead of staging them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from zoom_qos.alerts.live import raise_live_alerts
from zoom_qos.core.contracts import DAILY_DAG_ID, EXTRACT_TASK_ID, ListingStats, LoadCounts, RunRecord
from zoom_qos.core.errors import DailyLimitReached
from zoom_qos.core.statuses import LIVE
from zoom_qos.pipeline.extraction import BatchExtractor
from zoom_qos.pipeline.runrecord import run_row
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.warehouse.opening import opened_warehouse
from zoom_qos.warehouse.plan import SessionInput
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.zoom.client import ZoomSource
from zoom_qos.zoom.errors import ZoomApiError

log = logging.getLogger(__name__)

#: The live poll's time limit: a poll must end well before the next (``live_interval_minutes``).
POLL_TIMEOUT = timedelta(minutes=30)


@dataclass
class PollResult:
    """What one poll did: the sessions read, what was written, its outcome and the alerts."""

    sessions: list[SessionInput] = field(default_factory=list)
    counts: LoadCounts | None = None
    outcome: str = "success"
    error: str | None = None
    raised: list[dict[str, Any]] = field(default_factory=list)
    cleared: list[dict[str, Any]] = field(default_factory=list)


def poll(*, dag_id: str, run_id: str, source: ZoomSource, started_at: datetime | None = None,
         warehouse: Warehouse | None = None, today: date | None = None,
         notify: Callable[[str, str], object] | None = None) -> dict[str, Any]:
    """One live poll; returns its run record's figures (``outcome`` ``success`` or ``paused``).

    ``source`` hands out the client (read on first use, so a connection that cannot be read is a
    failed poll, recorded); ``notify`` sends one alert (subject, text); the default is the
    ``[zoom_qos] notifier``.
    """
    today = today or datetime.now(UTC).date()
    with opened_warehouse(warehouse) as opened:
        started = time.monotonic()

        def record(outcome: str, error: str | None, result: PollResult) -> None:
            opened.record_run(_record(dag_id=dag_id, run_id=run_id, started_at=started_at, today=today,
                                      outcome=outcome, error=error, source=source, result=result,
                                      seconds=time.monotonic() - started))

        try:
            result = _poll(opened, source, today, notify)
        except Exception as failure:
            # A failed poll is recorded too (no message text: it could name what the log masks).
            record("failed", f"The poll failed ({type(failure).__name__}); see the task log.", PollResult())
            raise
        record(result.outcome, result.error, result)
    log.info("Live poll: %d sessions in progress, %d alerts raised, %d cleared (%s)", len(result.sessions),
             len(result.raised), len(result.cleared), result.outcome)
    return {"outcome": result.outcome, "sessions": len(result.sessions), "alerts_raised": len(result.raised),
            "alerts_cleared": len(result.cleared), "api_requests": source.stats.requests}


def _poll(opened: Warehouse, source: ZoomSource, today: date,
          notify: Callable[[str, str], object] | None) -> PollResult:
    """Read, load and alert; a spent live share pauses the poll (nothing read is loaded)."""
    result = PollResult()
    try:
        result.sessions = _read_live(BatchExtractor(source.client, session_type="live"), today)
    except DailyLimitReached as spent:
        result.outcome, result.error = "paused", str(spent)
        log.warning("Live polling paused: %s", spent)
    issues = ParseIssues()
    if result.sessions:
        result.counts = opened.load_live_sessions(result.sessions, issues).counts(issues)
    result.raised, result.cleared = raise_live_alerts(opened, notify)
    return result


def daily_extraction_running(ti: Any) -> bool:
    """Whether an extraction of the daily DAG is running now, asked of Airflow (the task
    instance's API); False when Airflow cannot say (a poll outside a supervised task)."""
    try:
        return ti.get_ti_count(dag_id=DAILY_DAG_ID, task_ids=[EXTRACT_TASK_ID], states=["running"]) > 0
    except Exception:  # no supervisor to ask (tests, scripts): nothing is known
        log.debug("Could not ask whether %s.%s runs", DAILY_DAG_ID, EXTRACT_TASK_ID, exc_info=True)
        return False


def _read_live(extractor: BatchExtractor, today: date) -> list[SessionInput]:
    """Every session in progress with its users so far (several sessions at a time)."""
    listed = {str(s["id"]): s for s in extractor.client.iter_live_sessions(today - timedelta(days=1), today)
              if s.get("id")}
    checked_at = datetime.now(UTC)
    read_back: list[SessionInput] = []

    def read(session: Mapping[str, Any]) -> SessionInput | None:
        users = _live_users(extractor, str(session["id"]))
        return None if users is None else SessionInput(session, users, LIVE, checked_at)

    def done(item: SessionInput | None) -> None:
        if item is not None:
            read_back.append(item)

    extractor.run(listed.values(), read, done, len(listed))
    return read_back


def _live_users(extractor: BatchExtractor, session_id: str) -> list[dict[str, Any]] | None:
    """The session's users with their samples so far; None when it ended between the listing and
    this request (Zoom answers 404/3001 for it as live: the daily run reads it as past), or when its
    id cannot be requested safely (``zoom.ids``: the daily run keeps it as unavailable)."""
    if extractor.refused(session_id) is not None:
        return None
    try:
        return extractor.users(session_id)
    except ZoomApiError as error:
        if error.session_not_ready:
            log.info("Session %r ended during the poll; the daily run reads it", session_id)
            return None
        raise


def _record(*, dag_id: str, run_id: str, started_at: datetime | None, today: date, outcome: str,
            error: str | None, source: ZoomSource, result: PollResult, seconds: float) -> RunRecord:
    """The poll's ``pipeline_runs`` row, built as the daily run's is (``runrecord.run_row``): the
    listing's window and requests, the load's counts."""
    listing = ListingStats(window_start=(today - timedelta(days=1)).isoformat(), window_end=today.isoformat(),
                           sessions_listed=len(result.sessions),
                           **source.stats.as_dict())  # type: ignore[typeddict-item]
    counts = result.counts or LoadCounts(
        sessions_loaded=0, sessions_skipped=0, sessions_pending=0, sessions_unavailable=0, users_loaded=0,
        qos_rows=0, system_rows=0, unparsed_values=0, unparsed_detail={})
    return run_row(run_id=run_id, dag_id=dag_id, started_at=started_at, listing=listing,
                   extracts=[{"extract_seconds": round(seconds, 3)}], loaded=counts, outcome=outcome,
                   error=error)
