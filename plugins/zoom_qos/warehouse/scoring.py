"""How one QoS sample is read, as SQL for SQLite and PostgreSQL alike: its media type, its
direction, whether it is rated and poor, its audio score, and the system conditions.

Every view and every derived table builds on these snippets, so a sample means the same thing
in ``qos_samples``, in the live view and in ``join_quality`` (docs/quality.md explains them for a
support lead; docs/warehouse.md lists the columns). The rules are the warehouse contract's, v3
("call quality, scored and explained"); where it is silent the decisions are written here once
and in docs/quality.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from zoom_qos.warehouse.sql import Dialect

__all__ = [
    "CAUSES",
    "CPU_PRESSURE_LEVELS",
    "ISSUES",
    "MEASURES",
    "MEDIA_TYPES",
    "METRICS",
    "RECONNECT_SECONDS",
    "SCORE_VERSION",
    "ZOOM_CPU_LIMIT_PCT",
    "SYSTEM_CPU_LIMIT_PCT",
    "WIFI_RSSI_LIMIT_DBM",
    "cpu_condition_sql",
    "dbl",
    "direction_sql",
    "grouped_stats_sql",
    "is_poor_sql",
    "media_type_sql",
    "millis_sql",
    "minute_sql",
    "mos_sql",
    "r_factor_sql",
    "scored_samples_sql",
    "utc_day_sql",
    "wifi_condition_sql",
]

#: Media types rated against ``qos_thresholds`` (``other`` streams are never rated).
MEDIA_TYPES: tuple[str, ...] = ("audio", "video", "screen_share")

#: (column in user_qos, column in qos_thresholds, unit label) of the rated metrics.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("latency_ms", "latency_ms", "ms"),
    ("jitter_ms", "jitter_ms", "ms"),
    ("avg_loss_pct", "loss_pct", "%"),
)

#: Short names used in aggregate column names (avg_latency_ms, p95_loss_pct, ...) and their column.
MEASURES: tuple[tuple[str, str], ...] = (
    ("latency_ms", "latency_ms"),
    ("jitter_ms", "jitter_ms"),
    ("loss_pct", "avg_loss_pct"),
)

#: The version of the rules below; ``join_quality.score_version``.
SCORE_VERSION = 1
#: The issues, in the order ``join_quality.issues`` lists them.
ISSUES: tuple[str, ...] = (
    "high_latency", "high_jitter", "high_loss", "low_frame_rate", "low_resolution",
    "cpu_pressure", "weak_wifi", "reconnected",
)  # fmt: skip
#: The causes, in the order they are tried (the first that holds wins); ``none`` when not poor.
CAUSES: tuple[str, ...] = (
    "device_cpu", "weak_wifi", "own_uplink", "remote_sender", "session_wide", "own_downlink", "unknown",
)  # fmt: skip
#: ``cpu_pressure``: Zoom's own CPU use at or above this (percent) ...
ZOOM_CPU_LIMIT_PCT = 90
#: ... or the whole system's at or above this ...
SYSTEM_CPU_LIMIT_PCT = 95
#: ... or one of these ``cpu_pressure_level`` values.
CPU_PRESSURE_LEVELS: tuple[str, ...] = ("serious", "critical")
#: ``weak_wifi``: average RSSI below this (dBm).
WIFI_RSSI_LIMIT_DBM = -70
#: ``reconnected``: the same user joined again at most this long after the join's leave_time.
RECONNECT_SECONDS = 120


def dbl(expr: str) -> str:
    """``expr`` as a double ("DOUBLE PRECISION" is a real type on PostgreSQL, REAL affinity on SQLite)."""
    return f"CAST({expr} AS DOUBLE PRECISION)"


def millis_sql(dialect: Dialect | str, start: str, end: str) -> str:
    """Whole milliseconds from ``start`` to ``end`` (NULL if either is NULL), as a number."""
    if dialect == "postgresql":
        return f"round(extract(epoch from ({end} - {start})) * 1000)"
    return f"round((julianday({end}) - julianday({start})) * 86400000.0)"


def utc_day_sql(dialect: Dialect | str, ts: str) -> str:
    """The UTC calendar date of a timestamp."""
    if dialect == "postgresql":
        return f"CAST(({ts} AT TIME ZONE 'UTC') AS date)"
    return f"date({ts})"  # SQLite stores naive UTC text


def minute_sql(dialect: Dialect | str, ts: str) -> str:
    """The minute a timestamp falls in ("the same minutes" of the cause rules), comparable for equality."""
    if dialect == "postgresql":
        return f"date_trunc('minute', {ts})"
    return f"strftime('%Y-%m-%d %H:%M', {ts})"


def media_type_sql(stream: str) -> str:
    """``audio*`` → audio, ``video*`` → video, ``as_*`` → screen_share, anything else → other."""
    return (
        f"CASE WHEN substr({stream}, 1, 5) = 'audio' THEN 'audio' "
        f"WHEN substr({stream}, 1, 5) = 'video' THEN 'video' "
        f"WHEN substr({stream}, 1, 3) = 'as_' THEN 'screen_share' "
        "ELSE 'other' END"
    )


def direction_sql(stream: str) -> str:
    """``send`` for what the user sends (``*_input``, ``*_device_to_rwg``), ``receive`` for what it
    receives (``*_output``, ``*_device_from_rwg``), NULL for any other stream."""
    return (
        f"CASE WHEN {stream} LIKE '%!_input' ESCAPE '!' OR {stream} LIKE '%!_device!_to!_rwg' ESCAPE '!' "
        "THEN 'send' "
        f"WHEN {stream} LIKE '%!_output' ESCAPE '!' OR {stream} LIKE '%!_device!_from!_rwg' ESCAPE '!' "
        "THEN 'receive' END"
    )


def is_poor_sql(sample: str, threshold: str) -> str:
    """The poor flag of a ``user_qos`` row ``sample`` against its ``qos_thresholds`` row ``threshold``:
    1 poor, 0 not, NULL not rated (no threshold row for its media type, or none of the metrics)."""
    no_metric = " AND ".join(f"{sample}.{col} IS NULL" for col, _, _ in METRICS)
    over = " OR ".join(f"{sample}.{col} > {threshold}.{tcol}" for col, tcol, _ in METRICS)
    return (
        f"CASE WHEN {threshold}.media_type IS NULL OR ({no_metric}) THEN NULL\n"
        f"         WHEN {over} THEN 1 ELSE 0 END"
    )


def _clamp(dialect: Dialect | str, expr: str, low: float, high: float) -> str:
    """``expr`` kept within [low, high] (``expr`` is never NULL where this is used)."""
    if dialect == "postgresql":
        return f"GREATEST({low}, LEAST({high}, {expr}))"
    return f"max({low}, min({high}, {expr}))"  # SQLite's multi-argument scalar max/min


def _r_raw(sample: str) -> str:
    """The E-model's R before clamping: effective latency d = latency + 2 × jitter + 10."""
    d = f"({sample}.latency_ms + 2 * {sample}.jitter_ms + 10)"
    return (
        f"(93.2 - CASE WHEN {d} < 160 THEN {d} / 40.0 ELSE ({d} - 120) / 10.0 END"
        f" - 2.5 * {sample}.avg_loss_pct)"
    )


def _scored(sample: str, media_type: str, value: str) -> str:
    """``value`` for an audio sample with latency, jitter and average loss, else NULL."""
    known = " AND ".join(f"{sample}.{col} IS NOT NULL" for col, _, _ in METRICS)
    return f"CASE WHEN {media_type} = 'audio' AND {known} THEN {value} END"


def r_factor_sql(dialect: Dialect | str, sample: str, media_type: str) -> str:
    """The sample's R factor (simplified ITU-T G.107 E-model, score version 1), clamped to [0, 100];
    NULL unless an audio sample with latency, jitter and average loss."""
    return _scored(sample, media_type, _clamp(dialect, _r_raw(sample), 0.0, 100.0))


def mos_sql(dialect: Dialect | str, sample: str, media_type: str) -> str:
    """The sample's MOS = 1 + 0.035 R + 0.000007 R (R − 60)(100 − R), clamped to [1, 4.5]; NULL
    where :func:`r_factor_sql` is. Built from the sample's columns, not from a column holding R:
    PostgreSQL would inline R's expression at each of its four uses anyway."""
    r = _clamp(dialect, _r_raw(sample), 0.0, 100.0)
    return _scored(sample, media_type, _clamp(dialect, f"(1 + 0.035 * {r} + 0.000007 * {r} * ({r} - 60) * "
                                                       f"(100 - {r}))", 1.0, 4.5))


def cpu_condition_sql(system: str) -> str:
    """1 when a ``user_system_qos`` row shows the device's CPU starved, else 0."""
    levels = ", ".join(f"'{level}'" for level in CPU_PRESSURE_LEVELS)
    return (
        f"CASE WHEN {system}.zoom_max_cpu_pct >= {ZOOM_CPU_LIMIT_PCT} "
        f"OR {system}.system_max_cpu_pct >= {SYSTEM_CPU_LIMIT_PCT} "
        f"OR lower({system}.cpu_pressure_level) IN ({levels}) THEN 1 ELSE 0 END"
    )


def wifi_condition_sql(system: str) -> str:
    """1 when a ``user_system_qos`` row shows a weak Wi-Fi signal, else 0."""
    return f"CASE WHEN {system}.wifi_avg_rssi < {WIFI_RSSI_LIMIT_DBM} THEN 1 ELSE 0 END"


def scored_samples_sql(dialect: Dialect | str, prefix: str, where: str, *, limits: bool = False) -> str:
    """``user_qos`` rows matching ``where`` (on alias ``q``), each with its media type, direction,
    poor flag (``is_poor``), ``r_factor`` and ``mos``; ``limits`` adds the thresholds of its media
    type (``limit_*``, NULL for ``other``) and its ``minute``. The one definition of a scored sample
    (``qos_samples``, the derived tables)."""
    media = media_type_sql("q.stream")
    extra = ""
    if limits:
        extra = (
            ",\n    t.latency_ms AS limit_latency_ms, t.jitter_ms AS limit_jitter_ms,"
            " t.loss_pct AS limit_loss_pct,"
            "\n    t.min_frame_rate_fps AS limit_frame_rate_fps, t.min_resolution_height AS limit_height,"
            f"\n    t.issue_min_share, {minute_sql(dialect, 'b.sampled_at')} AS minute"
        )
    return f"""SELECT b.session_id, b.user_id, b.join_time, b.sampled_at, b.stream, b.media_type, b.direction,
    b.bitrate_kbps, b.latency_ms, b.jitter_ms, b.avg_loss_pct, b.max_loss_pct,
    b.resolution_width, b.resolution_height, b.frame_rate_fps,
    {is_poor_sql("b", "t")} AS is_poor, b.r_factor, b.mos{extra}
FROM (SELECT q.*, {media} AS media_type, {direction_sql("q.stream")} AS direction,
          {r_factor_sql(dialect, "q", media)} AS r_factor, {mos_sql(dialect, "q", media)} AS mos
      FROM {prefix}user_qos q WHERE {where}) b
LEFT JOIN {prefix}qos_thresholds t ON t.media_type = b.media_type"""


def grouped_stats_sql(dialect: Dialect | str, source: str, keys: Sequence[str]) -> str:
    """SELECT keys, samples, poor_samples, poor_share, avg_/p95_ per measure FROM source.

    ``source`` is a parenthesised subquery (or a table name) with the key columns, ``is_poor``
    and the metric columns. p95 is nearest-rank over the non-NULL values, the same on both back
    ends: ``percentile_disc(0.95)`` on PostgreSQL, the first value whose ``cume_dist()`` reaches
    0.95 on SQLite.
    """
    key_list = ", ".join(keys)
    common = [
        "count(*) AS samples",
        "sum(is_poor) AS poor_samples",
        f"avg({dbl('is_poor')}) AS poor_share",
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
