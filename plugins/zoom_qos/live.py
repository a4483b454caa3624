"""What the live DAG's poll does: sessions in progress, their QoS so far, into the warehouse.

One poll lists the sessions Zoom has in progress (``type=live``, over yesterday and today: a
session may run over midnight), reads every one's users' QoS with ``type=live`` (all pages, the
same client, pacing, page-token restarts and budget as the daily run, from the live share of the
daily cap), replaces each session's rows whole as ``qos_status = 'live'``, raises the alerts of
joins whose recent quality is poor (``qos_alerts``, once per problem) and writes its run record.

A poll whose live share of the day's requests is spent *pauses*: it records ``paused`` and
succeeds, and the polls after 00:00 UTC go on. Live sessions are few and small (users in a call
right now), so a poll holds them in memory instead of staging them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

from zoom_qos import config, tasks
from zoom_qos.config import ZOOM_CONN_ID
from zoom_qos.errors import DailyLimitReached, ZoomApiError
from zoom_qos.extract.availability import LIVE
from zoom_qos.extract.privacy import Pseudonymizer
from zoom_qos.hooks import ZoomVideoSdkHook
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.warehouse import SessionInput, Warehouse
from zoom_qos.zoom.bodies import decode_user
from zoom_qos.zoom.ids import shown_id, unrequestable_reason
from zoom_qos.zoom.pagination import last_pass
from zoom_qos.zoom.published import ErrorCode

log = logging.getLogger(__name__)

#: The live poll's time limit: a poll must end well before the next (``live_interval_minutes``).
POLL_TIMEOUT = timedelta(minutes=30)
#: The daily DAG's extraction task, which a poll leaves Zoom to when no Redis shares the pacing.
DAILY_EXTRACTION = (config.DAILY_DAG_ID, "extract_qos")


def poll(*, dag_id: str, run_id: str, started_at: datetime | None = None, zoom_conn_id: str = ZOOM_CONN_ID,
         warehouse: Warehouse | None = None, today: date | None = None,
         notify: Callable[[str, str], object] | None = None) -> dict[str, Any]:
    """One live poll; returns its run record's figures (``outcome`` ``success`` or ``paused``).

    ``notify`` sends one alert (subject, text); the default is the ``[zoom_qos] notifier``.
    """
    today = today or datetime.now(UTC).date()
    with tasks.opened_warehouse(warehouse) as opened:
        hook = ZoomVideoSdkHook(zoom_conn_id, live=True)
        started = time.monotonic()
        try:
            result = _poll(opened, hook, today, notify)
        except Exception as failure:
            # A failed poll is recorded too (no message text: it could name what the log masks).
            opened.record_run(_record(
                dag_id=dag_id, run_id=run_id, started_at=started_at, today=today, outcome="failed",
                error=f"The poll failed ({type(failure).__name__}); see the task log.", hook=hook,
                summary=None, issues=ParseIssues(), listed=0, seconds=time.monotonic() - started))
            raise
        finally:
            hook.close()
        sessions, summary, issues, outcome, error, raised, cleared = result
        opened.record_run(_record(dag_id=dag_id, run_id=run_id, started_at=started_at, today=today,
                                  outcome=outcome, error=error, hook=hook, summary=summary, issues=issues,
                                  listed=len(sessions), seconds=time.monotonic() - started))
    log.info("Live poll: %d sessions in progress, %d alerts raised, %d cleared (%s)", len(sessions),
             len(raised), len(cleared), outcome)
    return {"outcome": outcome, "sessions": len(sessions), "alerts_raised": len(raised),
            "alerts_cleared": len(cleared), "api_requests": hook.stats.requests}


def _poll(opened: Warehouse, hook: ZoomVideoSdkHook, today: date,
          notify: Callable[[str, str], object] | None) -> tuple[Any, ...]:
    """Read, load and alert; a spent live share pauses the poll (nothing read is loaded)."""
    sessions: list[SessionInput] = []
    outcome, error = "success", None
    try:
        sessions = _read_live(hook, today)
    except DailyLimitReached as spent:
        outcome, error = "paused", str(spent)
        log.warning("Live polling paused: %s", spent)
    issues = ParseIssues()
    summary = opened.load_live_sessions(sessions, issues) if sessions else None
    raised, cleared = _alerts(opened, notify)
    return sessions, summary, issues, outcome, error, raised, cleared


def daily_extraction_running(ti: Any) -> bool:
    """Whether an extraction of the daily DAG is running now, asked of Airflow (the task
    instance's API); False when Airflow cannot say (a poll outside a supervised task)."""
    dag_id, task_id = DAILY_EXTRACTION
    try:
        return ti.get_ti_count(dag_id=dag_id, task_ids=[task_id], states=["running"]) > 0
    except Exception:  # noqa: BLE001 - no supervisor to ask (tests, scripts): nothing is known
        log.debug("Could not ask whether %s.%s runs", dag_id, task_id, exc_info=True)
        return False


def _read_live(hook: ZoomVideoSdkHook, today: date) -> list[SessionInput]:
    """Every session in progress with its users so far (several sessions at a time)."""
    listed = {str(s["id"]): s for s in hook.iter_live_sessions(today - timedelta(days=1), today)
              if s.get("id")}
    key = hook.settings.pseudonymization_key
    pseudonymizer = Pseudonymizer(key) if key else None
    checked_at = datetime.now(UTC)

    def read(session: Mapping[str, Any]) -> SessionInput | None:
        users = _live_users(hook, str(session["id"]), pseudonymizer)
        return None if users is None else SessionInput(session, users, LIVE, checked_at)

    workers = max(1, min(hook.settings.max_concurrent_sessions, len(listed)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zoom-qos-live") as pool:
        read_back = list(pool.map(read, listed.values()))
    return [item for item in read_back if item is not None]


def _live_users(hook: ZoomVideoSdkHook, session_id: str,
                pseudonymizer: Pseudonymizer | None) -> list[dict[str, Any]] | None:
    """The session's users with their samples so far; None when it ended between the listing and
    this request (Zoom answers 404/3001 for it as live: the daily run reads it as past), or when its
    id cannot be requested safely (``zoom.ids``: the daily run keeps it as unavailable)."""
    problem = unrequestable_reason(session_id)
    if problem is not None:
        log.warning("Live session %s cannot be requested safely (%s): not polled", shown_id(session_id),
                    problem)
        return None
    try:
        users = [decode_user(user) for user in last_pass(
            hook.iter_session_qos_pages(session_id, session_type="live"))]
    except ZoomApiError as error:
        if error.status == 404 and error.code == ErrorCode.SESSION_NOT_AVAILABLE:
            log.info("Session %r ended during the poll; the daily run reads it", session_id)
            return None
        raise
    return [pseudonymizer.user(u) for u in users] if pseudonymizer else users


def _alerts(opened: Warehouse, notify: Callable[[str, str], object] | None
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Raise the alerts of joins whose recent quality crossed the limit, and tell the notifier."""
    from zoom_qos.warehouse.live import evaluate_live_alerts, mark_alert_notified

    raised, cleared = evaluate_live_alerts(
        opened, window_minutes=int(config.live_window_minutes()),
        poor_share=config.live_alert_poor_share(), min_samples=config.live_alert_min_samples())
    for alert in raised:
        subject, text = alert_message(alert)
        log.warning("Live alert: %s", subject)
        if _send(subject, text, notify):
            mark_alert_notified(opened, alert)
    return raised, cleared


def _send(subject: str, text: str, notify: Callable[[str, str], object] | None) -> bool:
    """True when a notifier took the alert; a notifier's failure is logged, never fatal."""
    try:
        if notify is not None:
            notify(subject, text)
            return True
        from zoom_qos.alerts import notify as configured

        return configured(subject, text)
    except Exception as error:  # noqa: BLE001 - the alert is recorded; the poll goes on
        log.warning("The notifier failed for %r: %s: %s", subject, type(error).__name__, error)
        return False


def alert_message(alert: Mapping[str, Any]) -> tuple[str, str]:
    """Subject and text of a live alert: who, where, on what network, and the figures."""
    media = str(alert["media_type"]).replace("_", " ")
    who = alert.get("user_name") or alert["user_id"]
    session = alert.get("session_name") or alert["session_id"]
    share = float(alert["poor_share"])
    subject = f"Zoom call going bad: {who} in {session!s} ({media} {share:.0%} poor)"
    lines = [
        f"{who} ({alert['user_id']}) in session {session} ({alert['session_id']}) has poor {media}:",
        f"{share:.0%} of {alert['rated_samples']} rated samples poor over the last "
        f"{alert['window_minutes']} minutes, up to {alert['first_seen_at']}.",
        f"Device: {alert.get('device') or 'unknown'}; network: {alert.get('network_type') or 'unknown'}; "
        f"data center: {alert.get('data_center') or 'unknown'}.",
        "The session is still in progress; the view live_session_quality shows it.",
    ]
    return subject, "\n".join(lines)


def _record(*, dag_id: str, run_id: str, started_at: datetime | None, today: date, outcome: str,
            error: str | None, hook: ZoomVideoSdkHook, summary: Any, issues: ParseIssues, listed: int,
            seconds: float) -> dict[str, Any]:
    """The poll's ``pipeline_runs`` row, built as the daily run's is (``tasks.run_row``): the
    listing's window and requests, the load's counts."""
    listing = {"window_start": (today - timedelta(days=1)).isoformat(), "window_end": today.isoformat(),
               "sessions_listed": listed, **hook.stats.as_dict()}
    loaded = {"sessions_loaded": getattr(summary, "sessions_loaded", 0),
              "sessions_skipped": getattr(summary, "sessions_skipped", 0),
              "sessions_pending": 0, "sessions_unavailable": 0,
              "users_loaded": getattr(summary, "users", 0), "qos_rows": getattr(summary, "qos_rows", 0),
              "system_rows": getattr(summary, "system_rows", 0),
              "unparsed_values": issues.total, "unparsed_detail": issues.as_dict()}
    return tasks.run_row(run_id=run_id, dag_id=dag_id, started_at=started_at, listing=listing,
                         extracts=[{"extract_seconds": round(seconds, 3)}], loaded=loaded, outcome=outcome,
                         error=error)
