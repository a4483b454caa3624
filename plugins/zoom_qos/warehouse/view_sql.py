"""The SQL of the BI views in ``zoom_qos.warehouse.views``, for SQLite and PostgreSQL alike.

Kept apart from the views' names, comments and column docs so each view's SELECT reads in one
place, next to the snippets the views share (milliseconds, UTC day, media type, grouped stats
with a nearest-rank p95): written once, they cannot drift apart between views or back ends.
The definitions these implement are in ``views``' module docstring. Every builder takes
``(dialect, prefix)`` as ``View.sql`` does. The text they return is checksummed into the
warehouse (``zoom_qos.warehouse.migrations.view_checksum``): any change, even of whitespace,
recreates the views.
"""

from __future__ import annotations

from collections.abc import Sequence

from zoom_qos.core.config import DEFAULT_LIVE_WINDOW_MINUTES
from zoom_qos.core.statuses import LIVE
from zoom_qos.warehouse.sql import check_dialect

__all__ = [
    "MEASURES",
    "MEDIA_TYPES",
    "METRICS",
    "daily_breakdown_sql",
    "daily_completeness_sql",
    "daily_quality_sql",
    "live_quality_sql",
    "qos_samples_sql",
    "run_health_sql",
    "session_quality_sql",
]

#: Media types rated against ``qos_thresholds`` (``other`` streams are never rated).
MEDIA_TYPES: tuple[str, ...] = ("audio", "video", "screen_share")

#: (column in user_qos, column in qos_thresholds, unit label) of the rated metrics.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("latency_ms", "latency_ms", "ms"),
    ("jitter_ms", "jitter_ms", "ms"),
    ("avg_loss_pct", "loss_pct", "%"),
)

# Short names used in aggregate column names: avg_latency_ms, p95_loss_pct, ...
MEASURES: tuple[tuple[str, str], ...] = (
    ("latency_ms", "latency_ms"),
    ("jitter_ms", "jitter_ms"),
    ("loss_pct", "avg_loss_pct"),
)

_DIMENSIONS: tuple[str, ...] = ("device", "network_type", "data_center")


def _dbl(expr: str) -> str:
    # "DOUBLE PRECISION" is a real type on PostgreSQL and REAL affinity on SQLite.
    return f"CAST({expr} AS DOUBLE PRECISION)"


def _millis(dialect: str, start: str, end: str) -> str:
    """Whole milliseconds from ``start`` to ``end`` (NULL if either is NULL), as a number."""
    if dialect == "postgresql":
        return f"round(extract(epoch from ({end} - {start})) * 1000)"
    return f"round((julianday({end}) - julianday({start})) * 86400000.0)"


def _utc_day(dialect: str, ts: str) -> str:
    if dialect == "postgresql":
        return f"CAST(({ts} AT TIME ZONE 'UTC') AS date)"
    return f"date({ts})"  # SQLite stores naive UTC text


# --------------------------------------------------------------------------- aggregates
def _stat_columns(alias_prefix: str = "") -> list[str]:
    names = ["samples", "poor_samples", "poor_share"]
    for short, _ in MEASURES:
        names += [f"avg_{short}", f"p95_{short}"]
    return [alias_prefix + n for n in names]


def _grouped_stats(dialect: str, source: str, keys: Sequence[str]) -> str:
    """SELECT keys, samples, poor_samples, poor_share, avg_/p95_ per measure FROM source.

    ``source`` is a parenthesised subquery (or view name) with the key columns, ``is_poor``
    and the metric columns. p95 is nearest-rank over non-NULL values on both back ends.
    """
    key_list = ", ".join(keys)
    common = [
        "count(*) AS samples",
        "sum(is_poor) AS poor_samples",
        f"avg({_dbl('is_poor')}) AS poor_share",
    ]
    if dialect == "postgresql":
        measures = []
        for short, col in MEASURES:
            measures += [
                f"avg({col}) AS avg_{short}",
                f"percentile_disc(0.95) WITHIN GROUP (ORDER BY {col}) AS p95_{short}",
            ]
        return f"SELECT {key_list}, {', '.join(common + measures)} FROM {source} src GROUP BY {key_list}"
    # SQLite: cume_dist per group over the non-NULL values (NULLs get their own partition).
    windows = ", ".join(
        f"cume_dist() OVER (PARTITION BY {key_list}, ({col} IS NULL) ORDER BY {col}) AS cd_{short}"
        for short, col in MEASURES
    )
    measures = []
    for short, col in MEASURES:
        measures += [
            f"avg({col}) AS avg_{short}",
            f"min(CASE WHEN {col} IS NOT NULL AND cd_{short} >= 0.95 THEN {col} END) AS p95_{short}",
        ]
    return (
        f"SELECT {key_list}, {', '.join(common + measures)} "
        f"FROM (SELECT src.*, {windows} FROM {source} src) ranked GROUP BY {key_list}"
    )


# --------------------------------------------------------------------------- qos_samples
def _media_type(col: str) -> str:
    return (
        f"CASE WHEN substr({col}, 1, 5) = 'audio' THEN 'audio' "
        f"WHEN substr({col}, 1, 5) = 'video' THEN 'video' "
        f"WHEN substr({col}, 1, 3) = 'as_' THEN 'screen_share' "
        "ELSE 'other' END"
    )


def _is_poor(sample: str, threshold: str) -> str:
    """The poor flag of a ``user_qos`` row ``sample`` against its ``qos_thresholds`` row ``threshold``:
    1 poor, 0 not, NULL not rated. The one definition of "rated" and "poor" (qos_samples, live)."""
    no_metric = " AND ".join(f"{sample}.{col} IS NULL" for col, _, _ in METRICS)
    over = " OR ".join(f"{sample}.{col} > {threshold}.{tcol}" for col, tcol, _ in METRICS)
    return (
        f"CASE WHEN {threshold}.media_type IS NULL OR ({no_metric}) THEN NULL\n"
        f"         WHEN {over} THEN 1 ELSE 0 END"
    )


def _not_live(prefix: str, session_id: str) -> str:
    """The rows of sessions that are not ``live`` (rows without a ``sessions`` row included)."""
    return (
        f"NOT EXISTS (SELECT 1 FROM {prefix}sessions ls "
        f"WHERE ls.session_id = {session_id} AND ls.qos_status = '{LIVE}')"
    )


def qos_samples_sql(dialect: str, prefix: str) -> str:
    check_dialect(dialect)
    return f"""SELECT b.session_id, b.user_id, b.join_time, b.sampled_at, b.stream, b.media_type,
    {_utc_day(dialect, "b.sampled_at")} AS day,
    b.bitrate_kbps, b.latency_ms, b.jitter_ms, b.avg_loss_pct, b.max_loss_pct,
    b.resolution_width, b.resolution_height, b.frame_rate_fps,
    {_is_poor("b", "t")} AS is_poor,
    su.device, su.network_type, su.data_center
FROM (SELECT q.*, {_media_type("q.stream")} AS media_type FROM {prefix}user_qos q
      WHERE {_not_live(prefix, "q.session_id")}) b
LEFT JOIN {prefix}qos_thresholds t ON t.media_type = b.media_type
LEFT JOIN {prefix}session_users su
    ON su.session_id = b.session_id AND su.user_id = b.user_id AND su.join_time = b.join_time"""


# --------------------------------------------------------------------------- session_quality
def session_quality_sql(dialect: str, prefix: str) -> str:
    check_dialect(dialect)
    millis = _millis(dialect, "join_time", "leave_time")
    stats = _grouped_stats(dialect, f"{prefix}qos_samples", ["session_id", "media_type"])
    pivot: list[str] = []
    for media in MEDIA_TYPES:
        for short, _ in MEASURES:
            for agg in ("avg", "p95"):
                pivot.append(
                    f"max(CASE WHEN media_type = '{media}' THEN {agg}_{short} END) AS {media}_{agg}_{short}"
                )
        pivot.append(f"max(CASE WHEN media_type = '{media}' THEN poor_share END) AS {media}_poor_share")
    media_cols = ", ".join(
        c
        for media in MEDIA_TYPES
        for c in [f"m.{media}_{agg}_{short}" for short, _ in MEASURES for agg in ("avg", "p95")]
        + [f"m.{media}_poor_share"]
    )
    return f"""SELECT s.session_id, s.session_name, s.start_time, s.end_time, s.duration_seconds,
    s.user_count,
    COALESCE(u.users, 0) AS users, COALESCE(u.joins, 0) AS joins, u.minutes,
    COALESCE(a.samples, 0) AS samples, a.poor_share,
    {media_cols}
FROM {prefix}sessions s
LEFT JOIN (
    SELECT session_id, count(DISTINCT user_id) AS users, count(*) AS joins,
        {_dbl(f"sum({millis})")} / 60000.0 AS minutes
    FROM {prefix}session_users GROUP BY session_id
) u ON u.session_id = s.session_id
LEFT JOIN (
    SELECT session_id, count(*) AS samples, avg({_dbl("is_poor")}) AS poor_share
    FROM {prefix}qos_samples GROUP BY session_id
) a ON a.session_id = s.session_id
LEFT JOIN (
    SELECT session_id, {", ".join(pivot)}
    FROM ({stats}) g GROUP BY session_id
) m ON m.session_id = s.session_id
WHERE s.qos_status <> '{LIVE}'"""


# --------------------------------------------------------------------------- daily views
def _daily_sql_for(dialect: str, source: str, keys: Sequence[str]) -> str:
    stats = _grouped_stats(dialect, source, keys)
    key_list = ", ".join(keys)
    on = " AND ".join(f"g.{k} = c.{k}" for k in keys)
    stat_cols = ", ".join(f"g.{c}" for c in _stat_columns())
    return f"""SELECT {", ".join(f"g.{k}" for k in keys)}, c.sessions, c.users, {stat_cols}
FROM ({stats}) g
JOIN (
    SELECT {key_list}, count(DISTINCT session_id) AS sessions, count(DISTINCT user_id) AS users
    FROM {source} src GROUP BY {key_list}
) c ON {on}"""


def daily_quality_sql(dialect: str, prefix: str) -> str:
    check_dialect(dialect)
    return _daily_sql_for(dialect, f"{prefix}qos_samples", ["day", "media_type"])


def daily_breakdown_sql(dialect: str, prefix: str) -> str:
    check_dialect(dialect)
    metric_cols = ", ".join(col for _, col in MEASURES)
    unpivot = " UNION ALL ".join(
        f"SELECT day, media_type, '{dim}' AS dimension, COALESCE({dim}, 'unknown') AS dimension_value, "
        f"session_id, user_id, is_poor, {metric_cols} FROM {prefix}qos_samples"
        for dim in _DIMENSIONS
    )
    return _daily_sql_for(dialect, f"({unpivot})", ["day", "media_type", "dimension", "dimension_value"])


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
    millis = _millis(dialect, "started_at", "finished_at")

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
    {_dbl(millis)} / 1000.0 AS duration_seconds,
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
    day = _utc_day(dialect, "start_time")
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
    age = _millis(dialect, "r.sampled_at", "w.last_sampled_at")
    extra = (
        ",\n    sum(r.is_poor) AS poor_samples, su.device, su.network_type, su.data_center" if details else ""
    )
    extra_keys = ", su.device, su.network_type, su.data_center" if details else ""
    rated = ", ".join(f"'{m}'" for m in MEDIA_TYPES)
    metric_cols = ", ".join(f"q.{col}" for col, _, _ in METRICS)
    return f"""SELECT w.session_id, w.session_name, w.user_id, su.user_name, w.join_time, r.media_type,
    count(r.is_poor) AS rated_samples, avg({_dbl("r.is_poor")}) AS poor_share,
    w.last_sampled_at{extra}
FROM (
    SELECT q.session_id, s.session_name, q.user_id, q.join_time, max(q.sampled_at) AS last_sampled_at
    FROM {prefix}user_qos q {live}{bound}
    GROUP BY q.session_id, s.session_name, q.user_id, q.join_time
) w
JOIN (
    SELECT c.session_id, c.user_id, c.join_time, c.sampled_at, c.media_type, {_is_poor("c", "t")} AS is_poor
    FROM (
        SELECT q.session_id, q.user_id, q.join_time, q.sampled_at, {metric_cols},
            {_media_type("q.stream")} AS media_type
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
