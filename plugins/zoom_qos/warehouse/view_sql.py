"""The SQL of the BI views in ``zoom_qos.warehouse.views``, for SQLite and PostgreSQL alike.

Kept apart from the views' names, comments and column docs so each view's SELECT reads in one
place. How a sample is read (media type, direction, poor, MOS) is ``zoom_qos.warehouse.scoring``'s,
shared with the derived tables; the quality views read those tables (``derived_schema``), which the
load keeps, so a dashboard never aggregates raw samples.
The definitions these implement are in ``views``' module docstring. Every builder takes
``(dialect, prefix)`` as ``View.sql`` does. The text they return is checksummed into the
warehouse (``zoom_qos.warehouse.migrations.view_checksum``): any change, even of whitespace,
recreates the views.
"""

from __future__ import annotations

from collections.abc import Sequence

from zoom_qos.core.config import DEFAULT_LIVE_WINDOW_MINUTES
from zoom_qos.core.statuses import LIVE
from zoom_qos.warehouse.scoring import (
    MEASURES,
    MEDIA_TYPES,
    METRICS,
    dbl,
    is_poor_sql,
    media_type_sql,
    millis_sql,
    scored_samples_sql,
    utc_day_sql,
)
from zoom_qos.warehouse.sql import check_dialect

__all__ = [
    "MEASURES",
    "MEDIA_TYPES",
    "METRICS",
    "daily_breakdown_sql",
    "daily_causes_sql",
    "daily_completeness_sql",
    "daily_quality_sql",
    "grade_agreement_sql",
    "join_quality_sql",
    "alert_comparison_sql",
    "live_quality_sql",
    "qos_samples_sql",
    "run_health_sql",
    "session_quality_sql",
]


def _not_live(prefix: str, session_id: str) -> str:
    """The rows of sessions that are not ``live`` (rows without a ``sessions`` row included)."""
    return (
        f"NOT EXISTS (SELECT 1 FROM {prefix}sessions ls "
        f"WHERE ls.session_id = {session_id} AND ls.qos_status = '{LIVE}')"
    )


# --------------------------------------------------------------------------- qos_samples
def qos_samples_sql(dialect: str, prefix: str) -> str:
    check_dialect(dialect)
    scored = scored_samples_sql(dialect, prefix, _not_live(prefix, "q.session_id"))
    return f"""SELECT b.session_id, b.user_id, b.join_time, b.sampled_at, b.stream, b.media_type,
    {utc_day_sql(dialect, "b.sampled_at")} AS day,
    b.bitrate_kbps, b.latency_ms, b.jitter_ms, b.avg_loss_pct, b.max_loss_pct,
    b.resolution_width, b.resolution_height, b.frame_rate_fps,
    b.is_poor,
    su.device, su.network_type, su.data_center,
    b.direction, b.r_factor, b.mos
FROM ({scored}) b
LEFT JOIN {prefix}session_users su
    ON su.session_id = b.session_id AND su.user_id = b.user_id AND su.join_time = b.join_time"""


# --------------------------------------------------------------------------- derived views
def _stat_columns() -> list[str]:
    names = ["samples", "poor_samples", "poor_share"]
    for short, _ in MEASURES:
        names += [f"avg_{short}", f"p95_{short}"]
    return names


def session_quality_sql(dialect: str, prefix: str) -> str:
    check_dialect(dialect)
    media_cols = ", ".join(
        f"d.{media}_{what}"
        for media in MEDIA_TYPES
        for what in [f"{agg}_{short}" for short, _ in MEASURES for agg in ("avg", "p95")] + ["poor_share"]
    )
    return f"""SELECT s.session_id, s.session_name, s.start_time, s.end_time, s.duration_seconds,
    s.user_count,
    COALESCE(d.users, 0) AS users, COALESCE(d.joins, 0) AS joins, d.minutes,
    COALESCE(d.samples, 0) AS samples, d.poor_share,
    {media_cols},
    d.audio_mos, COALESCE(d.poor_joins, 0) AS poor_joins, d.main_cause
FROM {prefix}sessions s
LEFT JOIN {prefix}quality_sessions d ON d.session_id = s.session_id
WHERE s.qos_status <> '{LIVE}'"""


def _daily_sql_for(prefix: str, keys: Sequence[str], whole_day: bool) -> str:
    stats = ", ".join(_stat_columns())
    where = "dimension = ''" if whole_day else "dimension <> ''"
    return f"""SELECT {", ".join(keys)}, sessions, users, {stats}
FROM {prefix}quality_daily
WHERE {where}"""


def daily_quality_sql(dialect: str, prefix: str) -> str:
    check_dialect(dialect)
    return _daily_sql_for(prefix, ["day", "media_type"], whole_day=True)


def daily_breakdown_sql(dialect: str, prefix: str) -> str:
    check_dialect(dialect)
    return _daily_sql_for(prefix, ["day", "media_type", "dimension", "dimension_value"], whole_day=False)


def join_quality_sql(dialect: str, prefix: str) -> str:
    check_dialect(dialect)
    return f"""SELECT j.session_id, j.user_id, j.join_time, j.media_type,
    j.send_samples, j.send_poor_share, j.receive_samples, j.receive_poor_share,
    j.avg_mos_send, j.avg_mos_receive, j.min_mos_receive,
    j.issues, j.cause, j.cause_user_id, j.score_version,
    j.day, j.send_poor_samples, j.receive_poor_samples,
    su.user_name, su.device, su.network_type, su.data_center, su.location, su.client, su.os
FROM {prefix}quality_joins j
LEFT JOIN {prefix}session_users su
    ON su.session_id = j.session_id AND su.user_id = j.user_id AND su.join_time = j.join_time"""


def daily_causes_sql(dialect: str, prefix: str) -> str:
    check_dialect(dialect)
    return f"SELECT day, media_type, cause, joins FROM {prefix}quality_daily_causes"


def grade_agreement_sql(dialect: str, prefix: str) -> str:
    check_dialect(dialect)
    grade = (
        "CASE j.media_type WHEN 'audio' THEN su.audio_quality WHEN 'video' THEN su.video_quality "
        "ELSE su.screen_share_quality END"
    )
    return f"""SELECT j.media_type, {grade} AS zoom_grade, count(*) AS joins,
    sum(CASE WHEN j.cause <> 'none' THEN 1 ELSE 0 END) AS poor_joins
FROM {prefix}quality_joins j
JOIN {prefix}session_users su
    ON su.session_id = j.session_id AND su.user_id = j.user_id AND su.join_time = j.join_time
WHERE {grade} IS NOT NULL AND {grade} <> ''
GROUP BY j.media_type, {grade}"""


# --------------------------------------------------------------------------- run_health
#: What makes a run degraded: a count above 0, and how ``health_reason`` says it (one, many).
_DEGRADED_BY = (
    ("unparsed_values", "value could not be parsed", "values could not be parsed"),
    ("dq_hard_violations", "row violates a hard data-quality check",
     "rows violate hard data-quality checks"),
    ("token_restarts", "list restarted after a page token expired",
     "lists restarted after a page token expired"),
    ("sessions_skipped", "session was skipped", "sessions were skipped"),
)


def _thousands(dialect: str, col: str) -> str:
    """An integer as text with thousands separators (1,074), the same on both back ends."""
    if dialect == "postgresql":
        return f"trim(to_char({col}, 'FM999,999,999,999,990'))"
    return f"printf('%,d', {col})"


def run_health_sql(dialect: str, prefix: str) -> str:
    check_dialect(dialect)
    millis = millis_sql(dialect, "started_at", "finished_at")

    def pos(col: str) -> str:
        return f"COALESCE({col}, 0) > 0"

    degraded = " OR ".join(pos(c) for c, _, _ in _DEGRADED_BY)
    # Each count above 0 says itself in words ("1,074 values could not be parsed"), joined by "; ".
    pieces = " || ".join(
        f"CASE WHEN {pos(c)} THEN {_thousands(dialect, c)} || "
        f"CASE WHEN {c} = 1 THEN ' {one}; ' ELSE ' {many}; ' END ELSE '' END"
        for c, one, many in _DEGRADED_BY
    )
    reason = f"NULLIF(rtrim({pieces}, '; '), '')"
    return f"""SELECT run_id, dag_id, window_start, window_end, outcome, started_at, finished_at,
    {dbl(millis)} / 1000.0 AS duration_seconds,
    sessions_listed, sessions_loaded, sessions_skipped, users_loaded, qos_rows, system_rows,
    api_requests, retries, rate_limit_waits, rate_limit_wait_seconds, token_restarts,
    unparsed_values, dq_hard_violations,
    CASE WHEN outcome = 'failed' THEN 'failed'
         WHEN outcome = 'running' THEN 'running'
         WHEN {degraded} THEN 'degraded'
         WHEN outcome = 'skipped' THEN 'skipped'
         WHEN outcome = 'paused' THEN 'paused'
         ELSE 'healthy' END AS health,
    {reason} AS health_reason,
    error
FROM {prefix}pipeline_runs"""


# --------------------------------------------------------------------------- daily_completeness
def daily_completeness_sql(dialect: str, prefix: str) -> str:
    check_dialect(dialect)
    day = utc_day_sql(dialect, "start_time")
    status_counts = ", ".join(
        f"sum(CASE WHEN qos_status = '{status}' THEN 1 ELSE 0 END) AS {status}"
        for status in ("loaded", "pending", "unavailable")
    )
    # Days from both sides (UNION, not FULL JOIN: SQLite has it only since 3.39).
    return f"""SELECT d.usage_date, u.sessions AS zoom_sessions,
    COALESCE(w.sessions, 0) AS warehouse_sessions,
    COALESCE(w.loaded, 0) AS sessions_loaded,
    COALESCE(w.pending, 0) AS sessions_pending,
    COALESCE(w.unavailable, 0) AS sessions_unavailable
FROM (
    SELECT usage_date FROM {prefix}daily_usage
    UNION
    SELECT {day} FROM {prefix}sessions WHERE qos_status <> 'live'
) d
LEFT JOIN {prefix}daily_usage u ON u.usage_date = d.usage_date
LEFT JOIN (
    SELECT {day} AS usage_date, count(*) AS sessions, {status_counts}
    FROM {prefix}sessions WHERE qos_status <> 'live' GROUP BY {day}
) w ON w.usage_date = d.usage_date"""


# --------------------------------------------------------------------------- live_session_quality
#: The window of the view ``live_session_quality`` (minutes), baked into it when it is created;
#: :func:`zoom_qos.warehouse.live.live_quality` takes any other: the ``live_window_minutes`` default.
LIVE_WINDOW_MINUTES = int(DEFAULT_LIVE_WINDOW_MINUTES)


def live_quality_sql(
    dialect: str, prefix: str, window_minutes: int | None = LIVE_WINDOW_MINUTES, *, details: bool = False,
    until: bool = False, sessions: bool = False,
) -> str:
    """Per join of a ``live`` session and rated media type, its samples of the last
    ``window_minutes`` before the join's latest sample: rated samples and poor share.

    The window is ``latest - window < sampled_at <= latest``, ``latest`` being the join's latest
    ``user_qos`` sample of any stream (``last_sampled_at``), computed in whole milliseconds on both
    back ends. ``window_minutes`` None takes it from the bind parameter ``:window_ms``; ``until``
    adds ``sampled_at <= :until`` (the state as of then), ``sessions`` ``session_id IN
    :session_ids`` (an expanding parameter); ``details`` adds ``poor_samples``,
    ``device``, ``network_type`` and ``data_center`` (the alerts' figures).
    """
    check_dialect(dialect)
    window = ":window_ms" if window_minutes is None else str(int(window_minutes) * 60_000)
    conditions = ["q.sampled_at <= :until"] * until + ["q.session_id IN :session_ids"] * sessions
    bound = "".join(f"\n    {'AND' if i else 'WHERE'} {c}" for i, c in enumerate(conditions))
    live = f"JOIN {prefix}sessions s ON s.session_id = q.session_id AND s.qos_status = '{LIVE}'"
    age = millis_sql(dialect, "r.sampled_at", "w.last_sampled_at")
    extra = (
        ",\n    sum(r.is_poor) AS poor_samples, su.device, su.network_type, su.data_center" if details else ""
    )
    extra_keys = ", su.device, su.network_type, su.data_center" if details else ""
    rated = ", ".join(f"'{m}'" for m in MEDIA_TYPES)
    metric_cols = ", ".join(f"q.{col}" for col, _, _ in METRICS)
    return f"""SELECT w.session_id, w.session_name, w.user_id, su.user_name, w.join_time, r.media_type,
    count(r.is_poor) AS rated_samples, avg({dbl("r.is_poor")}) AS poor_share,
    w.last_sampled_at{extra}
FROM (
    SELECT q.session_id, s.session_name, q.user_id, q.join_time, max(q.sampled_at) AS last_sampled_at
    FROM {prefix}user_qos q {live}{bound}
    GROUP BY q.session_id, s.session_name, q.user_id, q.join_time
) w
JOIN (
    SELECT c.session_id, c.user_id, c.join_time, c.sampled_at, c.media_type,
        {is_poor_sql("c", "t")} AS is_poor
    FROM (
        SELECT q.session_id, q.user_id, q.join_time, q.sampled_at, {metric_cols},
            {media_type_sql("q.stream")} AS media_type
        FROM {prefix}user_qos q {live}{bound}
    ) c
    LEFT JOIN {prefix}qos_thresholds t ON t.media_type = c.media_type
    WHERE c.media_type IN ({rated})
) r ON r.session_id = w.session_id AND r.user_id = w.user_id AND r.join_time = w.join_time
    AND {age} >= 0 AND {age} < {window}
LEFT JOIN {prefix}session_users su
    ON su.session_id = w.session_id AND su.user_id = w.user_id AND su.join_time = w.join_time
GROUP BY w.session_id, w.session_name, w.user_id, su.user_name, w.join_time, r.media_type,
    w.last_sampled_at{extra_keys}"""


def alert_comparison_sql(dialect: str, prefix: str) -> str:
    check_dialect(dialect)
    return f"""SELECT k.session_id, s.session_name,
    CASE WHEN z.alerts IS NULL THEN 0 ELSE 1 END AS flagged_by_zoom,
    CASE WHEN o.alerts IS NULL THEN 0 ELSE 1 END AS flagged_by_us,
    COALESCE(z.alerts, 0) AS zoom_alerts, z.first_at AS zoom_first_alert_at,
    (SELECT a.issues FROM {prefix}zoom_session_alerts a WHERE a.session_id = k.session_id
     ORDER BY a.event_ts DESC LIMIT 1) AS zoom_last_issues,
    COALESCE(o.alerts, 0) AS our_alerts, o.first_at AS our_first_alert_at
FROM (SELECT session_id FROM {prefix}zoom_session_alerts
      UNION SELECT session_id FROM {prefix}qos_alerts) k
LEFT JOIN (SELECT session_id, COUNT(*) AS alerts, MIN(event_ts) AS first_at
           FROM {prefix}zoom_session_alerts GROUP BY session_id) z ON z.session_id = k.session_id
LEFT JOIN (SELECT session_id, COUNT(*) AS alerts, MIN(first_seen_at) AS first_at
           FROM {prefix}qos_alerts GROUP BY session_id) o ON o.session_id = k.session_id
LEFT JOIN {prefix}sessions s ON s.session_id = k.session_id"""
