"""The daily quality alerts: a loaded day of poor quality, or short of Zoom's own count.

After a successful load (:func:`quality_alerts`, the daily DAG's ``check_alerts`` task), for each
day of the run's window: the poor share of each media type (view ``daily_quality``) above
``alert_poor_share``, and the share of Zoom's own session count missing from the warehouse (view
``daily_completeness``) above ``alert_count_gap``. Each (day, kind) alerts once, ever: the alert
is a ``quality_alerts`` row, inserted before the notifier is called, so a re-run of the day, or
two runs at once, do not alert again; a figure that changes later (a lookback loads more of the
day) does not alert again either, the row keeps the figures that alerted. A notifier that fails
is logged and recorded (``notified_at`` NULL, ``notify_error``); it never fails the load, and
that alert is not sent again.

The alerts go through the configured notifier (``alerts.notify``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from zoom_qos.alerts.notify import configured_notifier, notify
from zoom_qos.core.config import (  # the thresholds are defined there, re-exported here
    CONFIG_SECTION,
    DEFAULT_ALERT_COUNT_GAP,
    DEFAULT_ALERT_POOR_SHARE,
    alert_count_gap,
    alert_poor_share,
)
from zoom_qos.core.contracts import window_days
from zoom_qos.report.build import expected_report_path
from zoom_qos.transform.parsing import utc_day
from zoom_qos.warehouse.opening import opened_warehouse
from zoom_qos.warehouse.sql import object_prefix
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.views import MEDIA_TYPES

__all__ = [
    "COUNT_GAP",
    "DEFAULT_ALERT_COUNT_GAP",
    "DEFAULT_ALERT_POOR_SHARE",
    "POOR_SHARE",
    "QualityAlert",
    "alert_count_gap",
    "alert_poor_share",
    "evaluate",
    "quality_alerts",
]

log = logging.getLogger(__name__)

#: The kinds of quality alert (``quality_alerts.kind``).
POOR_SHARE = "poor_share"
COUNT_GAP = "count_gap"


# --------------------------------------------------------------------------- quality
@dataclass
class QualityAlert:
    """One day and kind of alert, with what crossed the threshold."""

    day: date
    kind: str
    threshold: float
    observed: float
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        what = "poor call quality" if self.kind == POOR_SHARE else "sessions missing against Zoom's count"
        return f"Zoom QoS alert {self.day.isoformat()}: {what} ({self.observed:.1%})"

    def message(self, report_path: str | None, run_id: str | None) -> str:
        day = self.day.isoformat()
        if self.kind == POOR_SHARE:
            lines = [f"On {day} (UTC) the share of poor QoS samples was above "
                     f"[{CONFIG_SECTION}] alert_poor_share = {self.threshold:g}:"]
            for media, figures in self.figures["media_types"].items():
                mark = "  <-- above" if media in self.figures["above"] else ""
                lines.append(f"  {media}: {figures['poor_share']:.1%} poor ({figures['poor_samples']:,} "
                             f"of {figures['samples']:,} samples, {figures['sessions']:,} sessions){mark}")
        else:
            f = self.figures
            lines = [f"On {day} (UTC) {f['missing']:,} of the {f['zoom_sessions']:,} sessions Zoom counted "
                     f"({f['gap']:.1%}) are not in the warehouse, above [{CONFIG_SECTION}] alert_count_gap "
                     f"= {self.threshold:g}.",
                     f"  warehouse: {f['warehouse_sessions']:,} sessions ({f['sessions_loaded']:,} loaded, "
                     f"{f['sessions_pending']:,} pending, {f['sessions_unavailable']:,} unavailable)"]
        if report_path:
            lines.append(f"Report: {report_path} (rendered by zoom_videosdk_qos_report after the load)")
        if run_id:
            lines.append(f"Run: {run_id}")
        lines.append("This day and kind of alert is sent once; see the warehouse table quality_alerts.")
        return "\n".join(lines)


def quality_alerts(
    warehouse: Warehouse,
    days: Iterable[date],
    report_path: str | Path | None = None,
    *,
    run_id: str | None = None,
    context: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Raise the quality alerts of ``days`` not raised before; returns them (JSON-able: day, kind,
    threshold, observed, notified).

    Each alert is first inserted into ``quality_alerts``; only the run whose insert wins notifies,
    so a day alerts once even with two runs at once. A notifier failure is logged as a warning and
    recorded, never raised; a wrong notifier configuration raises ``NotifierConfigError`` before
    anything is recorded (so the alerts are sent once it is fixed and the task is cleared).
    ``report_path`` defaults to ``report.build.expected_report_path``.
    """
    days = sorted(set(days))
    if not days:
        return []
    # A wrong configuration fails here, before anything is recorded (building sends nothing).
    configured = configured_notifier("check", "check") is not None
    found = evaluate(warehouse, days, alert_poor_share(), alert_count_gap())
    if not found:
        log.info("Quality alerts: nothing above the thresholds on %s..%s", days[0], days[-1])
        return []
    if report_path is None:
        report_path = expected_report_path(warehouse)
    path = str(report_path)
    raised: list[dict[str, Any]] = []
    for alert in found:
        stamp = now or datetime.now(UTC)
        row = {"alert_day": alert.day, "kind": alert.kind, "threshold": alert.threshold,
               "observed": alert.observed, "figures": alert.figures, "report_path": path,
               "run_id": run_id, "raised_at": stamp, "notified_at": None,
               "notify_error": None if configured else "no notifier configured"}
        if not warehouse.claim_quality_alert(row):
            log.info("Quality alert %s %s was raised before; not sent again", alert.day, alert.kind)
            continue
        message = alert.message(path, run_id)
        log.warning("Quality alert: %s\n%s", alert.subject, message)
        notified = False
        if configured:
            try:
                notified = notify(alert.subject, message, context, day=alert.day.isoformat(), kind=alert.kind,
                                  threshold=alert.threshold, observed=alert.observed, figures=alert.figures,
                                  report_path=path)
            except Exception as error:  # a notifier failure must not fail the load
                log.warning("The notifier failed to send the quality alert %s %s: %s: %s", alert.day,
                            alert.kind, type(error).__name__, error, exc_info=True)
                warehouse.note_quality_alert(alert.day, alert.kind,
                                             notify_error=f"{type(error).__name__}: {error}"[:500])
            else:
                if notified:
                    warehouse.note_quality_alert(alert.day, alert.kind, notified_at=datetime.now(UTC))
        raised.append({"day": alert.day.isoformat(), "kind": alert.kind, "threshold": alert.threshold,
                       "observed": alert.observed, "notified": notified})
    return raised


def evaluate(warehouse: Warehouse, days: Iterable[date], poor_share: float,
             count_gap: float) -> list[QualityAlert]:
    """The (day, kind) crossings of ``days``, from the views, whether alerted before or not.

    A day's poor share crosses when one of its media types has a poor share above ``poor_share``;
    its count gap when ``(zoom_sessions - warehouse_sessions) / zoom_sessions`` is above
    ``count_gap`` (days without Zoom's count are not judged).
    """
    wanted = sorted(set(days))
    if not wanted:
        return []
    prefix = object_prefix(warehouse.dialect, warehouse.schema)
    bounds: dict[str, Any] = {"first": wanted[0], "last": wanted[-1]}
    if warehouse.dialect == "sqlite":  # the views' days are ISO text there
        bounds = {k: v.isoformat() for k, v in bounds.items()}
    media_list = ", ".join(f"'{m}'" for m in MEDIA_TYPES)
    with warehouse.engine.connect() as conn:
        quality = conn.execute(sa.text(
            f"SELECT day, media_type, sessions, samples, poor_samples, poor_share FROM {prefix}daily_quality "
            f"WHERE day >= :first AND day <= :last AND media_type IN ({media_list}) "
            "ORDER BY day, media_type"), bounds).mappings().all()
        completeness = conn.execute(sa.text(
            "SELECT usage_date, zoom_sessions, warehouse_sessions, sessions_loaded, sessions_pending, "
            f"sessions_unavailable FROM {prefix}daily_completeness "
            "WHERE usage_date >= :first AND usage_date <= :last ORDER BY usage_date"),
            bounds).mappings().all()
    keep = set(wanted)
    by_day: dict[date, dict[str, dict[str, Any]]] = {}
    for row in quality:
        day = utc_day(row["day"])
        if day in keep and row["poor_share"] is not None:
            by_day.setdefault(day, {})[str(row["media_type"])] = {
                "poor_share": round(float(row["poor_share"]), 6),
                "poor_samples": int(row["poor_samples"] or 0), "samples": int(row["samples"] or 0),
                "sessions": int(row["sessions"] or 0)}
    alerts: list[QualityAlert] = []
    for day, media in sorted(by_day.items()):
        above = [m for m, f in media.items() if f["poor_share"] > poor_share]
        if above:
            worst = max(media[m]["poor_share"] for m in above)
            alerts.append(QualityAlert(day, POOR_SHARE, poor_share, worst,
                                       {"media_types": media, "above": above}))
    for row in completeness:
        day = utc_day(row["usage_date"])
        zoom = row["zoom_sessions"]
        if day not in keep or zoom is None or int(zoom) <= 0:
            continue
        counts = ("zoom_sessions", "warehouse_sessions", "sessions_loaded", "sessions_pending",
                  "sessions_unavailable")
        figures: dict[str, Any] = {k: int(row[k] or 0) for k in counts}
        figures["missing"] = max(0, figures["zoom_sessions"] - figures["warehouse_sessions"])
        figures["gap"] = round(figures["missing"] / figures["zoom_sessions"], 6)
        if figures["gap"] > count_gap:
            alerts.append(QualityAlert(day, COUNT_GAP, count_gap, figures["gap"], figures))
    return sorted(alerts, key=lambda a: (a.day, a.kind))


def alert_quality(
    loaded: Mapping[str, Any] | None,
    listing: Mapping[str, Any] | None,
    *,
    run_id: str | None = None,
    warehouse: Warehouse | None = None,
    context: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The quality alerts of the run's window, once a load returned ``loaded`` (see
    ``quality_alerts``): each day's poor share and gap to Zoom's count against the
    ``[zoom_qos]`` thresholds, each (day, kind) sent once through the configured notifier. Returns
    the alerts raised now. A notifier failure is a warning, never an error; a wrong notifier
    setting fails (before anything is recorded)."""
    days = window_days(listing or {})
    if not loaded or not days:
        log.info("Quality alerts: no load, or no window; nothing to check")
        return []
    with opened_warehouse(warehouse) as opened:
        raised = quality_alerts(opened, days, run_id=run_id, context=context)
    log.info("Quality alerts raised: %d", len(raised))
    return raised
