"""The daily reconciliation of Zoom's webhook deliveries: a broken endpoint seen before data is late.

Zoom retries a delivery our endpoint failed (a 5xx, no answer) three times over about an hour, and
never after a 4xx; an event whose attempts all failed never reaches the receiver. Its session is not
lost (the daily run lists and loads every session), only late. Zoom logs every attempt
(``GET /videosdk/report/webhook_logs``, the last seven days, a Medium call outside the daily cap):
:func:`reconcile_deliveries` reads the failed ones, keeps each attempt once in
``webhook_delivery_failures``, and warns with how many ``session.ended`` events never arrived at
all, so the operator fixes the endpoint (docs/webhooks.md says what each failure means).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypedDict

from zoom_qos.warehouse.opening import ensure_reachable, opened_warehouse
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.webhooks import record_delivery_failures, stored_event_sessions
from zoom_qos.zoom.ids import shown_id
from zoom_qos.zoom.published import WEBHOOK_LOGS_DAYS
from zoom_qos.zoom.webhooks import SESSION_ENDED, BadEventError, LoggedDelivery, logged_delivery

__all__ = ["LOG_REACH", "ReconcileResult", "WebhookLogSource", "reconcile_deliveries"]

log = logging.getLogger(__name__)

#: How far back Zoom's log reaches; the window asked for starts a minute inside it, so that clocks a
#: little apart never make Zoom refuse it (400/1502).
LOG_REACH = timedelta(days=WEBHOOK_LOGS_DAYS)
_MARGIN = timedelta(minutes=1)


class WebhookLogSource(Protocol):
    """What reads Zoom's webhook log (``ZoomClient``; the Airflow hook's client)."""

    def iter_webhook_logs(self, from_time: datetime, to_time: datetime) -> Iterator[dict[str, Any]]: ...


class ReconcileResult(TypedDict):
    """What a reconciliation found (the task's return value, so JSON)."""

    window_start: str
    window_end: str
    failed_attempts: int
    new_failed_attempts: int
    unreadable_entries: int
    #: Sessions whose ``session.ended`` Zoom failed to deliver and the receiver never stored: the
    #: daily run loads them, later than the events path would have.
    ended_events_never_received: int


def reconcile_deliveries(*, source: WebhookLogSource, warehouse: Warehouse | None = None,
                         now: datetime | None = None) -> ReconcileResult:
    """Read the failed deliveries of Zoom's last seven days and keep each attempt once."""
    now = now or datetime.now(UTC)
    start = now - LOG_REACH + _MARGIN
    failures: dict[tuple[str, int], LoggedDelivery] = {}  # a page-token restart repeats entries
    unreadable = 0
    for entry in source.iter_webhook_logs(start, now):
        try:
            delivery = logged_delivery(entry)
        except BadEventError as why:
            unreadable += 1
            log.warning("Zoom's webhook log has an entry we cannot read (%s): not recorded.", why)
            continue
        if delivery.failed:
            failures[(delivery.request_id, delivery.retry_num)] = delivery
    with opened_warehouse(warehouse, ensure_reachable) as opened:
        added = record_delivery_failures(opened.engine, list(failures.values()), now)
        ended = {d.session_id for d in failures.values() if d.event == SESSION_ENDED and d.session_id}
        missing = sorted(ended - stored_event_sessions(opened.engine, SESSION_ENDED, ended))
    if failures:
        statuses = sorted({d.status for d in failures.values()})
        log.warning(
            "Zoom failed %d webhook deliveries in the last %d days (%d not seen before; statuses %s); "
            "%d session.ended events never reached the receiver%s: the daily run loads those sessions. "
            "Check the endpoint (docs/webhooks.md, 'Failed deliveries').",
            len(failures), LOG_REACH.days, added, ", ".join(map(str, statuses)), len(missing),
            f" (e.g. {', '.join(shown_id(s) for s in missing[:3])})" if missing else "")
    else:
        log.info("Zoom's webhook log: no failed delivery in the last %d days.", LOG_REACH.days)
    return ReconcileResult(window_start=start.isoformat(), window_end=now.isoformat(),
                           failed_attempts=len(failures), new_failed_attempts=added,
                           unreadable_entries=unreadable, ended_events_never_received=len(missing))
