"""The report's answers to "which calls went bad, for whom, and why": the worst joins of the period
with their cause and issues, and the causes of each day (``join_quality``, ``daily_causes``; the
rules are in docs/quality.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from zoom_qos.report.reader import Reader, int_value, num_value
from zoom_qos.warehouse.scoring import CAUSES

__all__ = ["WORST_JOINS", "period_causes", "worst_joins"]

#: Joins listed in the report's "worst joins" table.
WORST_JOINS = 20


def worst_joins(conn: sa.Connection, r: Reader, window: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The poor joins (cause other than ``none``) of the period's days, worst poor share first."""
    share = r.greatest("j.send_poor_share", "j.receive_poor_share")
    rows = r.rows(
        conn,
        f"""SELECT j.session_id, s.session_name, j.user_id, j.user_name, j.join_time, j.media_type,
            j.cause, j.cause_user_id, j.issues, j.send_poor_share, j.receive_poor_share,
            j.avg_mos_receive, {share} AS worst_share,
            (SELECT max(c.user_name) FROM {{p}}session_users c
             WHERE c.session_id = j.session_id AND c.user_id = j.cause_user_id) AS cause_user_name
        FROM {{p}}join_quality j LEFT JOIN {{p}}sessions s ON s.session_id = j.session_id
        WHERE j.day >= :start AND j.day <= :end AND j.cause <> 'none'
        ORDER BY {share} DESC, j.session_id, j.user_id, j.join_time, j.media_type
        LIMIT {WORST_JOINS}""",
        **window,
    )
    for row in rows:
        for key in ("send_poor_share", "receive_poor_share", "avg_mos_receive", "worst_share"):
            row[key] = num_value(row[key])
    return rows


def period_causes(conn: sa.Connection, r: Reader, window: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per day and media type, the poor joins of each cause (``daily_causes`` without ``none``), in
    day, media type and cause order."""
    order = " ".join(f"WHEN '{cause}' THEN {i}" for i, cause in enumerate(CAUSES))
    rows = r.rows(
        conn,
        f"""SELECT day, media_type, cause, joins FROM {{p}}daily_causes
        WHERE day >= :start AND day <= :end AND cause <> 'none'
        ORDER BY day, media_type, CASE cause {order} ELSE {len(CAUSES)} END""",
        **window,
    )
    for row in rows:
        row["joins"] = int_value(row["joins"])
    return rows
