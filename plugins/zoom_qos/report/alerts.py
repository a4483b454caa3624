"""The report's comparison of Zoom's own alerts (``session.alert``) with our live alerts: the sessions
either side flagged most recently (the view ``alert_comparison``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from zoom_qos.report.reader import Reader, int_value

__all__ = ["FLAGGED_SESSIONS", "flagged_sessions"]

#: Sessions listed in the report's alerts table.
FLAGGED_SESSIONS = 30


def flagged_sessions(conn: sa.Connection, r: Reader) -> list[dict[str, Any]]:
    """The sessions flagged by Zoom or by us, latest first alert first."""
    z, o = "zoom_first_alert_at", "our_first_alert_at"
    latest = f"CASE WHEN {z} IS NULL THEN {o} WHEN {o} IS NULL OR {z} > {o} THEN {z} ELSE {o} END"
    rows = r.rows(
        conn,
        f"""SELECT session_id, session_name, flagged_by_zoom, flagged_by_us, zoom_alerts,
            zoom_first_alert_at, zoom_last_issues, our_alerts, our_first_alert_at
        FROM {{p}}alert_comparison
        ORDER BY {latest} DESC, session_id LIMIT {FLAGGED_SESSIONS}""",
    )
    for row in rows:
        for key in ("flagged_by_zoom", "flagged_by_us", "zoom_alerts", "our_alerts"):
            row[key] = int_value(row[key])
    return rows
