"""BI views over the warehouse tables, with the same meaning on SQLite and PostgreSQL.

Views are *repeatable* schema objects: ``Warehouse.ensure_schema()`` recreates them whenever
their definition changes (checksum of the SQL), after the versioned table migrations ran.
``VIEWS`` is in dependency order (a view only reads tables and the views before it).

Shared definitions (documented in ``docs/warehouse.md``):

* **media type** of a ``user_qos.stream``: ``audio*`` → ``audio``, ``video*`` → ``video``,
  ``as_*`` → ``screen_share``, anything else → ``other`` (case-sensitive, as Zoom names them).
* **poor sample**: ``latency_ms``, ``jitter_ms`` or ``avg_loss_pct`` above the threshold of its
  media type in ``qos_thresholds`` (joined at query time, so an ``UPDATE qos_thresholds``
  changes every view at once). A sample with none of the three metrics, or of a media type
  without a threshold row (``other``), is not rated: ``is_poor`` is NULL and it counts in
  neither side of a poor share.
* **p95**: nearest-rank 95th percentile of the non-NULL values, i.e. the smallest value whose
  cumulative share is >= 0.95: ``percentile_disc(0.95)`` on PostgreSQL and the equivalent
  ``cume_dist()`` window on SQLite, so both back ends return the very same sample value.
* Durations are computed at millisecond precision on both back ends.
* **Completeness** (``daily_completeness``): a session counts on the UTC day of its
  ``start_time``; ``live`` sessions (provisional rows of a session in progress) are not counted.
  The same definition is the ``zoom_daily_count`` data-quality check (``zoom_qos.warehouse.quality``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "MEDIA_TYPES",
    "METRICS",
    "VIEWS",
    "View",
    "view_by_name",
]


@dataclass(frozen=True)
class View:
    """One view: ``sql(dialect, prefix)`` returns its SELECT statement.

    ``dialect`` is ``"sqlite"`` or ``"postgresql"``; ``prefix`` is what goes before every table
    name (``'"zoom_qos".'`` on PostgreSQL, ``''`` on SQLite), because raw SQL is not rewritten
    by SQLAlchemy's schema translation.
    """

    name: str
    comment: str
    sql: Callable[[str, str], str]
    columns: dict[str, str] = field(default_factory=dict)


#: Media types rated against ``qos_thresholds`` (``other`` streams are never rated).
MEDIA_TYPES: tuple[str, ...] = ("audio", "video", "screen_share")

#: (column in user_qos, column in qos_thresholds, unit label) of the rated metrics.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("latency_ms", "latency_ms", "ms"),
    ("jitter_ms", "jitter_ms", "ms"),
    ("avg_loss_pct", "loss_pct", "%"),
)

# Short names used in aggregate column names: avg_latency_ms, p95_loss_pct, ...
_MEASURES: tuple[tuple[str, str], ...] = (
    ("latency_ms", "latency_ms"),
    ("jitter_ms", "jitter_ms"),
    ("loss_pct", "avg_loss_pct"),
)

_DIMENSIONS: tuple[str, ...] = ("device", "network_type", "data_center")


def _check_dialect(dialect: str) -> None:
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"Unsupported dialect {dialect!r}; use sqlite or postgresql.")


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
    for short, _ in _MEASURES:
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
        for short, col in _MEASURES:
            measures += [
                f"avg({col}) AS avg_{short}",
                f"percentile_disc(0.95) WITHIN GROUP (ORDER BY {col}) AS p95_{short}",
            ]
        return f"SELECT {key_list}, {', '.join(common + measures)} FROM {source} src GROUP BY {key_list}"
    # SQLite: cume_dist per group over the non-NULL values (NULLs get their own partition).
    windows = ", ".join(
        f"cume_dist() OVER (PARTITION BY {key_list}, ({col} IS NULL) ORDER BY {col}) AS cd_{short}"
        for short, col in _MEASURES
    )
    measures = []
    for short, col in _MEASURES:
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


def _qos_samples_sql(dialect: str, prefix: str) -> str:
    _check_dialect(dialect)
    no_metric = " AND ".join(f"b.{col} IS NULL" for col, _, _ in METRICS)
    over = " OR ".join(f"b.{col} > t.{tcol}" for col, tcol, _ in METRICS)
    return f"""SELECT b.session_id, b.user_id, b.join_time, b.sampled_at, b.stream, b.media_type,
    {_utc_day(dialect, "b.sampled_at")} AS day,
    b.bitrate_kbps, b.latency_ms, b.jitter_ms, b.avg_loss_pct, b.max_loss_pct,
    b.resolution_width, b.resolution_height, b.frame_rate_fps,
    CASE WHEN t.media_type IS NULL OR ({no_metric}) THEN NULL
         WHEN {over} THEN 1 ELSE 0 END AS is_poor,
    su.device, su.network_type, su.data_center
FROM (SELECT q.*, {_media_type("q.stream")} AS media_type FROM {prefix}user_qos q) b
LEFT JOIN {prefix}qos_thresholds t ON t.media_type = b.media_type
LEFT JOIN {prefix}session_users su
    ON su.session_id = b.session_id AND su.user_id = b.user_id AND su.join_time = b.join_time"""


_QOS_SAMPLES_COLUMNS: dict[str, str] = {
    "session_id": "Zoom session id (user_qos.session_id).",
    "user_id": "Zoom user id (user_qos.user_id).",
    "join_time": "The join's join_time (UTC).",
    "sampled_at": "The sample's time (UTC).",
    "stream": "Zoom block name, e.g. audio_input, video_output, as_input.",
    "media_type": "audio, video, screen_share or other, derived from stream.",
    "day": "UTC calendar date of sampled_at.",
    "bitrate_kbps": "Bitrate in kilobits per second.",
    "latency_ms": "Latency in milliseconds.",
    "jitter_ms": "Jitter in milliseconds.",
    "avg_loss_pct": "Average packet loss in percent.",
    "max_loss_pct": "Maximum packet loss in percent.",
    "resolution_width": "Resolution width in pixels.",
    "resolution_height": "Resolution height in pixels.",
    "frame_rate_fps": "Frame rate in frames per second.",
    "is_poor": (
        "1 if latency, jitter or average loss exceeds the media type's qos_thresholds row, 0 if not; "
        "NULL if not rated (no metric, or no threshold row, e.g. media_type other)."
    ),
    "device": "session_users.device of the join (NULL if unknown).",
    "network_type": "session_users.network_type of the join (NULL if unknown).",
    "data_center": "session_users.data_center of the join (NULL if unknown).",
}


# --------------------------------------------------------------------------- session_quality
def _session_quality_sql(dialect: str, prefix: str) -> str:
    _check_dialect(dialect)
    millis = _millis(dialect, "join_time", "leave_time")
    stats = _grouped_stats(dialect, f"{prefix}qos_samples", ["session_id", "media_type"])
    pivot: list[str] = []
    for media in MEDIA_TYPES:
        for short, _ in _MEASURES:
            for agg in ("avg", "p95"):
                pivot.append(
                    f"max(CASE WHEN media_type = '{media}' THEN {agg}_{short} END) AS {media}_{agg}_{short}"
                )
        pivot.append(f"max(CASE WHEN media_type = '{media}' THEN poor_share END) AS {media}_poor_share")
    media_cols = ", ".join(
        c
        for media in MEDIA_TYPES
        for c in [f"m.{media}_{agg}_{short}" for short, _ in _MEASURES for agg in ("avg", "p95")]
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
) m ON m.session_id = s.session_id"""


def _session_quality_columns() -> dict[str, str]:
    cols = {
        "session_id": "Zoom session id (sessions.session_id).",
        "session_name": "Zoom session_name.",
        "start_time": "Session start (UTC).",
        "end_time": "Session end (UTC); NULL if unknown.",
        "duration_seconds": "Session duration in seconds (sessions.duration_seconds).",
        "user_count": "Zoom's user_count for the session.",
        "users": "Distinct user_id values in session_users for the session.",
        "joins": "session_users rows (joins; a rejoin counts again).",
        "minutes": (
            "Sum over joins with both join_time and leave_time of (leave_time - join_time), in minutes; "
            "NULL if no join has both."
        ),
        "samples": "user_qos rows of the session (every stream, rated or not); 0 if none.",
        "poor_share": "Poor samples / rated samples over all media types (0..1); NULL if none rated.",
    }
    names = {"audio": "audio", "video": "video", "screen_share": "screen-share"}
    for media in MEDIA_TYPES:
        label = names[media]
        for short, col in _MEASURES:
            unit = "percent" if short == "loss_pct" else "milliseconds"
            what = {"latency_ms": "latency", "jitter_ms": "jitter", "loss_pct": "average packet loss"}[short]
            cols[f"{media}_avg_{short}"] = f"Mean {what} of {label} samples, in {unit} (user_qos.{col})."
            cols[f"{media}_p95_{short}"] = (
                f"Nearest-rank 95th percentile {what} of {label} samples, in {unit}."
            )
        cols[f"{media}_poor_share"] = f"Poor {label} samples / rated {label} samples (0..1)."
    return cols


# --------------------------------------------------------------------------- daily views
_STAT_DOCS: dict[str, str] = {
    "sessions": "Distinct sessions with samples in the group.",
    "users": "Distinct user_id values with samples in the group.",
    "samples": "user_qos rows in the group.",
    "poor_samples": "Samples rated poor (NULL if no sample in the group is rated).",
    "poor_share": "poor_samples / rated samples (0..1); NULL if none rated.",
    "avg_latency_ms": "Mean latency in milliseconds.",
    "p95_latency_ms": "Nearest-rank 95th percentile latency in milliseconds.",
    "avg_jitter_ms": "Mean jitter in milliseconds.",
    "p95_jitter_ms": "Nearest-rank 95th percentile jitter in milliseconds.",
    "avg_loss_pct": "Mean average packet loss in percent.",
    "p95_loss_pct": "Nearest-rank 95th percentile of average packet loss in percent.",
}


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


def _daily_quality_sql(dialect: str, prefix: str) -> str:
    _check_dialect(dialect)
    return _daily_sql_for(dialect, f"{prefix}qos_samples", ["day", "media_type"])


def _daily_breakdown_sql(dialect: str, prefix: str) -> str:
    _check_dialect(dialect)
    metric_cols = ", ".join(col for _, col in _MEASURES)
    unpivot = " UNION ALL ".join(
        f"SELECT day, media_type, '{dim}' AS dimension, COALESCE({dim}, 'unknown') AS dimension_value, "
        f"session_id, user_id, is_poor, {metric_cols} FROM {prefix}qos_samples"
        for dim in _DIMENSIONS
    )
    return _daily_sql_for(dialect, f"({unpivot})", ["day", "media_type", "dimension", "dimension_value"])


_DAILY_COLUMNS: dict[str, str] = {
    "day": "UTC calendar date of the samples.",
    "media_type": "audio, video, screen_share or other.",
    **_STAT_DOCS,
}

_BREAKDOWN_COLUMNS: dict[str, str] = {
    "day": "UTC calendar date of the samples.",
    "media_type": "audio, video, screen_share or other.",
    "dimension": "Which session_users attribute the row breaks down by: device, network_type or data_center.",
    "dimension_value": "The attribute's value; 'unknown' where it is NULL.",
    **_STAT_DOCS,
}


# --------------------------------------------------------------------------- run_health
def _run_health_sql(dialect: str, prefix: str) -> str:
    _check_dialect(dialect)
    millis = _millis(dialect, "started_at", "finished_at")

    def pos(col: str) -> str:
        return f"COALESCE({col}, 0) > 0"

    degraded = " OR ".join(
        pos(c) for c in ("unparsed_values", "dq_hard_violations", "token_restarts", "sessions_skipped")
    )
    return f"""SELECT run_id, dag_id, window_start, window_end, outcome, started_at, finished_at,
    {_dbl(millis)} / 1000.0 AS duration_seconds,
    sessions_listed, sessions_loaded, sessions_skipped, users_loaded, qos_rows, system_rows,
    api_requests, retries, rate_limit_waits, rate_limit_wait_seconds, token_restarts,
    unparsed_values, dq_hard_violations,
    CASE WHEN outcome = 'failed' THEN 'failed'
         WHEN outcome = 'running' THEN 'running'
         WHEN {degraded} THEN 'degraded'
         WHEN outcome = 'skipped' THEN 'skipped'
         ELSE 'healthy' END AS health,
    error
FROM {prefix}pipeline_runs"""


_RUN_HEALTH_COLUMNS: dict[str, str] = {
    "run_id": "Airflow run id (pipeline_runs.run_id).",
    "dag_id": "Airflow DAG id that ran.",
    "window_start": "First day of the session window loaded.",
    "window_end": "Last day of the session window loaded.",
    "outcome": "success, failed, skipped or running, as recorded by the run.",
    "started_at": "Run start (UTC).",
    "finished_at": "Run end (UTC); NULL while running.",
    "duration_seconds": "finished_at - started_at in seconds (millisecond precision); NULL while running.",
    "sessions_listed": "Sessions returned by the session list.",
    "sessions_loaded": "Sessions written to the warehouse.",
    "sessions_skipped": "Sessions not written (unkeyable, still live, or errors).",
    "users_loaded": "session_users rows written.",
    "qos_rows": "user_qos rows written.",
    "system_rows": "user_system_qos rows written.",
    "api_requests": "HTTP requests made to Zoom.",
    "retries": "Requests retried after an error.",
    "rate_limit_waits": "Times the run waited for a Zoom rate limit (HTTP 429).",
    "rate_limit_wait_seconds": "Total seconds spent waiting for rate limits.",
    "token_restarts": "List crawls restarted because a next_page_token expired.",
    "unparsed_values": "Values loaded as NULL because they could not be parsed.",
    "dq_hard_violations": "Rows found by hard data-quality checks (see pipeline_runs.dq_findings).",
    "health": (
        "failed if outcome is failed; running while running; degraded if unparsed_values, "
        "dq_hard_violations, token_restarts or sessions_skipped is above 0; else skipped "
        "(outcome skipped) or healthy."
    ),
    "error": "Error summary when the run failed.",
}


# --------------------------------------------------------------------------- daily_completeness
def _daily_completeness_sql(dialect: str, prefix: str) -> str:
    _check_dialect(dialect)
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


_DAILY_COMPLETENESS_COLUMNS: dict[str, str] = {
    "usage_date": "UTC day: every day with a daily_usage row or a (not live) session starting on it.",
    "zoom_sessions": (
        "Sessions Zoom counted on the day (daily_usage.sessions); NULL if its count was not read."
    ),
    "warehouse_sessions": (
        "Sessions in the warehouse whose start_time falls on the day (UTC), live ones excluded; 0 if none."
    ),
    "sessions_loaded": "Of warehouse_sessions, those with qos_status loaded (their QoS is in the warehouse).",
    "sessions_pending": "Of warehouse_sessions, those with qos_status pending (QoS asked again every run).",
    "sessions_unavailable": (
        "Of warehouse_sessions, those with qos_status unavailable (Zoom will not serve it)."
    ),
}


VIEWS: list[View] = [
    View(
        name="qos_samples",
        comment=(
            "user_qos samples with their media type, UTC day, poor flag (against qos_thresholds) "
            "and the join's device, network type and data center. Helper for the other views."
        ),
        sql=_qos_samples_sql,
        columns=_QOS_SAMPLES_COLUMNS,
    ),
    View(
        name="session_quality",
        comment=(
            "One row per session: joins, users, minutes, samples and, per media type, average and "
            "p95 latency/jitter/loss and poor share. Sessions without samples have NULL metrics."
        ),
        sql=_session_quality_sql,
        columns=_session_quality_columns(),
    ),
    View(
        name="daily_quality",
        comment="One row per UTC day and media type: sessions, users, samples, poor share, avg/p95 metrics.",
        sql=_daily_quality_sql,
        columns=_DAILY_COLUMNS,
    ),
    View(
        name="daily_quality_breakdown",
        comment=(
            "daily_quality broken down by device, network_type and data_center: one row per day, "
            "media type, dimension and dimension value. Filter on dimension to pick a breakdown."
        ),
        sql=_daily_breakdown_sql,
        columns=_BREAKDOWN_COLUMNS,
    ),
    View(
        name="run_health",
        comment="One row per pipeline run: what it loaded, what it cost, and a health label.",
        sql=_run_health_sql,
        columns=_RUN_HEALTH_COLUMNS,
    ),
    View(
        name="daily_completeness",
        comment=(
            "One row per UTC day: the sessions Zoom counted (daily_usage) against the sessions the "
            "warehouse holds that started on the day, and how many of those have their QoS loaded, "
            "pending or unavailable. Live sessions are not counted."
        ),
        sql=_daily_completeness_sql,
        columns=_DAILY_COMPLETENESS_COLUMNS,
    ),
]


def view_by_name(name: str) -> View:
    """The :class:`View` called ``name`` (KeyError if there is none)."""
    for view in VIEWS:
        if view.name == name:
            return view
    raise KeyError(name)
