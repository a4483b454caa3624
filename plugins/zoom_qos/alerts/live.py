"""Live alerts: a join of a call in progress whose recent quality crossed the limit, raised once
per problem (``qos_alerts``) and sent through the notifier.

The rule's figures are the ``[zoom_qos] live_*`` settings; the rows and their evaluation live in
``warehouse.live``. A notifier's failure is logged, never fatal: the alert is recorded either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from zoom_qos.alerts.notify import notify as configured_notify
from zoom_qos.core import config
from zoom_qos.warehouse.live import evaluate_live_alerts, mark_alert_notified
from zoom_qos.warehouse.store import Warehouse

log = logging.getLogger(__name__)


def raise_live_alerts(opened: Warehouse, notify: Callable[[str, str], object] | None
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Raise the alerts of joins whose recent quality crossed the limit, and tell the notifier."""
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
        return configured_notify(subject, text)
    except Exception as error:  # the alert is recorded; the poll goes on
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
