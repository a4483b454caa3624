"""The SQL that fills the derived tables (``derived_schema``) from stored rows, SQLite and PostgreSQL alike.

Per-session statements read the rows of the sessions in the expanding parameter ``:session_ids``;
per-day statements the days in ``:days``. All are set-based: the database computes every score,
issue and cause; nothing comes back to Python. The rules are the warehouse contract's (v3) and the
decisions of docs/quality.md, in SQL built from ``zoom_qos.warehouse.scoring``.
"""

from __future__ import annotations

from zoom_qos.warehouse.scoring import (
    CAUSES,
    MEASURES,
    MEDIA_TYPES,
    RECONNECT_SECONDS,
    SCORE_VERSION,
    cpu_condition_sql,
    dbl,
    grouped_stats_sql,
    millis_sql,
    minute_sql,
    scored_samples_sql,
    utc_day_sql,
    wifi_condition_sql,
)

__all__ = [
    "DIMENSIONS",
    "daily_causes_sql",
    "days_of_sessions_sql",
    "join_days_sql",
    "join_quality_sql",
    "quality_daily_sql",
    "session_quality_sql",
    "value_counts_sql",
]

#: The ``session_users`` attributes ``daily_quality_breakdown`` breaks down by.
DIMENSIONS: tuple[str, ...] = ("device", "network_type", "data_center")

_IN_SESSIONS = "q.session_id IN :session_ids"
_JOIN = ("session_id", "user_id", "join_time")
_JOIN_MEDIA = ", ".join((*_JOIN, "media_type"))


def _on(left: str, right: str, cols: tuple[str, ...] = _JOIN) -> str:
    return " AND ".join(f"{left}.{c} = {right}.{c}" for c in cols)


def _share(part: str, whole: str) -> str:
    return f"CASE WHEN {whole} > 0 THEN {dbl(part)} / {whole} END"


def _reaches(part: str, whole: str, limit: str = "ims") -> str:
    """``part / whole`` reaches the issue share (and ``whole`` is not 0)."""
    return f"({whole} > 0 AND {dbl(part)} / {whole} >= {limit})"


# --------------------------------------------------------------------------- the scored samples
#: The per-connection scratch table holding one chunk's scored samples: every statement below reads
#: it, so each sample is scored (and joined to its join's attributes) once per load.
SCRATCH = "zoom_qos_scored_samples"

_SCRATCH_COLUMNS = (
    ("session_id", "TEXT"), ("user_id", "TEXT"), ("join_time", "{ts}"), ("media_type", "TEXT"),
    ("direction", "TEXT"), ("day", "DATE"), ("minute", "{minute}"), ("latency_ms", "DOUBLE PRECISION"),
    ("jitter_ms", "DOUBLE PRECISION"), ("avg_loss_pct", "DOUBLE PRECISION"), ("is_poor", "INTEGER"),
    ("mos", "DOUBLE PRECISION"), ("over_latency", "INTEGER"), ("over_jitter", "INTEGER"),
    ("over_loss", "INTEGER"), ("low_fps", "INTEGER"), ("low_height", "INTEGER"),
    ("issue_min_share", "DOUBLE PRECISION"), ("device", "TEXT"), ("network_type", "TEXT"),
    ("data_center", "TEXT"),
)


def scratch_ddl(dialect: str) -> str:
    """``CREATE TEMP TABLE IF NOT EXISTS`` the scratch table (emptied at each commit on PostgreSQL;
    the caller empties it on SQLite, which has no ``ON COMMIT``)."""
    ts = "TIMESTAMPTZ" if dialect == "postgresql" else "TEXT"
    minute = ts
    cols = ", ".join(f"{name} {kind.format(ts=ts, minute=minute)}" for name, kind in _SCRATCH_COLUMNS)
    tail = " ON COMMIT DELETE ROWS" if dialect == "postgresql" else ""
    return f"CREATE TEMP TABLE IF NOT EXISTS {SCRATCH} ({cols}){tail}"


def scratch_fill_sql(dialect: str, prefix: str) -> str:
    """``INSERT INTO`` the scratch table the sessions' samples, scored (``scoring.scored_samples_sql``)."""
    scored = scored_samples_sql(dialect, prefix, _IN_SESSIONS, limits=True)
    rated = "s.is_poor IS NOT NULL"
    sent_video = f"{rated} AND s.direction = 'send' AND s.media_type = 'video'"
    values = [
        "s.session_id", "s.user_id", "s.join_time", "s.media_type", "s.direction",
        utc_day_sql(dialect, "s.sampled_at"), "s.minute", "s.latency_ms", "s.jitter_ms", "s.avg_loss_pct",
        "s.is_poor", "s.mos",
        f"CASE WHEN {rated} AND s.latency_ms > s.limit_latency_ms THEN 1 ELSE 0 END",
        f"CASE WHEN {rated} AND s.jitter_ms > s.limit_jitter_ms THEN 1 ELSE 0 END",
        f"CASE WHEN {rated} AND s.avg_loss_pct > s.limit_loss_pct THEN 1 ELSE 0 END",
        f"CASE WHEN {sent_video} AND s.frame_rate_fps < s.limit_frame_rate_fps THEN 1 ELSE 0 END",
        f"CASE WHEN {sent_video} AND s.resolution_height < s.limit_height THEN 1 ELSE 0 END",
        "s.issue_min_share", *(f"su.{d}" for d in DIMENSIONS),
    ]  # fmt: skip
    return f"""INSERT INTO {SCRATCH} ({", ".join(name for name, _ in _SCRATCH_COLUMNS)})
SELECT {", ".join(values)}
FROM ({scored}) s
LEFT JOIN {prefix}session_users su ON {_on("su", "s")}"""


# --------------------------------------------------------------------------- join_quality
def join_quality_sql(dialect: str, prefix: str) -> str:
    """``INSERT INTO quality_joins`` from the scratch table: one row per join and rated media type.

    The minute-level part (causes) reads only the poor samples: a join's minutes without a poor
    sample of a media type never count for any cause of it, nor for anyone else's.
    """
    p = prefix
    send, receive = "s.direction = 'send'", "s.direction = 'receive'"
    issues = [
        ("high_latency", _reaches("lat_n", "rated")),
        ("high_jitter", _reaches("jit_n", "rated")),
        ("high_loss", _reaches("loss_n", "rated")),
        ("low_frame_rate", _reaches("fps_n", "send_n")),
        ("low_resolution", _reaches("res_n", "send_n")),
        ("cpu_pressure", _reaches("y.cpu_n", "y.sys_n")),
        ("weak_wifi", _reaches("y.wifi_n", "y.sys_n")),
        ("reconnected", "rc.session_id IS NOT NULL"),
    ]
    issue_text = " || ".join(f"CASE WHEN {cond} THEN '{name},' ELSE '' END" for name, cond in issues)
    send_poor = _reaches("jm.send_poor", "jm.send_n")
    recv_poor = _reaches("jm.recv_poor", "jm.recv_n")
    causes = [
        ("device_cpu", "2 * COALESCE(pm.cpu_minutes, 0) > pm.poor_minutes"),
        ("weak_wifi", "2 * COALESCE(pm.wifi_minutes, 0) > pm.poor_minutes"),
        ("own_uplink", send_poor),
        ("remote_sender", f"{recv_poor} AND 2 * COALESCE(sm.minutes, 0) > rm.minutes"),
        ("session_wide", f"{recv_poor} AND 2 * COALESCE(wm.minutes, 0) > rm.minutes"),
        ("own_downlink", recv_poor),
    ]
    assert [name for name, _ in causes] == list(CAUSES[:-1])
    cause = "\n        ".join(f"WHEN {cond} THEN '{name}'" for name, cond in causes)
    keys = ", ".join(f"s.{c}" for c in (*_JOIN, "media_type"))
    return f"""INSERT INTO {p}quality_joins (session_id, user_id, join_time, media_type, day,
    send_samples, send_poor_samples, send_poor_share, receive_samples, receive_poor_samples,
    receive_poor_share, avg_mos_send, avg_mos_receive, min_mos_receive, issues, cause, cause_user_id,
    score_version)
WITH jm AS (
    SELECT {keys}, max(s.issue_min_share) AS ims,
        count(s.is_poor) AS rated,
        count(CASE WHEN {send} THEN s.is_poor END) AS send_n,
        COALESCE(sum(CASE WHEN {send} THEN s.is_poor END), 0) AS send_poor,
        count(CASE WHEN {receive} THEN s.is_poor END) AS recv_n,
        COALESCE(sum(CASE WHEN {receive} THEN s.is_poor END), 0) AS recv_poor,
        sum(s.over_latency) AS lat_n, sum(s.over_jitter) AS jit_n, sum(s.over_loss) AS loss_n,
        sum(s.low_fps) AS fps_n, sum(s.low_height) AS res_n,
        avg(CASE WHEN {send} THEN s.mos END) AS avg_mos_send,
        avg(CASE WHEN {receive} THEN s.mos END) AS avg_mos_receive,
        min(CASE WHEN {receive} THEN s.mos END) AS min_mos_receive
    FROM {SCRATCH} s WHERE s.issue_min_share IS NOT NULL GROUP BY {keys}
),
mm AS (
    SELECT {keys}, s.minute,
        max(CASE WHEN {send} THEN 1 ELSE 0 END) AS send_poor,
        max(CASE WHEN {receive} THEN 1 ELSE 0 END) AS recv_poor
    FROM {SCRATCH} s WHERE s.is_poor = 1 GROUP BY {keys}, s.minute
),
sys AS (
    SELECT q.session_id, q.user_id, q.join_time, {minute_sql(dialect, "q.sampled_at")} AS minute,
        {cpu_condition_sql("q")} AS cpu, {wifi_condition_sql("q")} AS wifi
    FROM {p}user_system_qos q WHERE {_IN_SESSIONS}
),
sysj AS (
    SELECT session_id, user_id, join_time, count(*) AS sys_n, sum(cpu) AS cpu_n, sum(wifi) AS wifi_n
    FROM sys GROUP BY session_id, user_id, join_time
),
sysm AS (
    SELECT session_id, user_id, join_time, minute, max(cpu) AS cpu, max(wifi) AS wifi
    FROM sys WHERE cpu = 1 OR wifi = 1 GROUP BY session_id, user_id, join_time, minute
),
pm AS (
    SELECT m.session_id, m.user_id, m.join_time, m.media_type, count(*) AS poor_minutes,
        sum(COALESCE(y.cpu, 0)) AS cpu_minutes, sum(COALESCE(y.wifi, 0)) AS wifi_minutes
    FROM mm m LEFT JOIN sysm y ON {_on("y", "m")} AND y.minute = m.minute
    GROUP BY m.session_id, m.user_id, m.join_time, m.media_type
),
rm AS (
    SELECT {_JOIN_MEDIA}, count(*) AS minutes FROM mm WHERE recv_poor = 1 GROUP BY {_JOIN_MEDIA}
),
heard AS (
    SELECT r.session_id, r.user_id, r.join_time, r.media_type, r.minute, o.user_id AS sender
    FROM mm r JOIN mm o ON o.session_id = r.session_id AND o.media_type = r.media_type
        AND o.minute = r.minute AND o.user_id <> r.user_id AND o.send_poor = 1
    WHERE r.recv_poor = 1
),
sm AS (
    SELECT {_JOIN_MEDIA}, count(DISTINCT minute) AS minutes FROM heard GROUP BY {_JOIN_MEDIA}
),
senders AS (
    SELECT {_JOIN_MEDIA}, sender, row_number() OVER (
        PARTITION BY {_JOIN_MEDIA} ORDER BY count(DISTINCT minute) DESC, sender) AS pick
    FROM heard GROUP BY {_JOIN_MEDIA}, sender
),
nj AS (
    SELECT session_id, media_type, count(*) AS joins FROM jm WHERE rated > 0 GROUP BY session_id, media_type
),
wide AS (
    SELECT session_id, media_type, minute, count(*) AS poor_joins
    FROM mm WHERE recv_poor = 1 GROUP BY session_id, media_type, minute
),
wm AS (
    SELECT r.session_id, r.user_id, r.join_time, r.media_type, count(*) AS minutes
    FROM mm r
    JOIN wide w ON w.session_id = r.session_id AND w.media_type = r.media_type AND w.minute = r.minute
    JOIN nj ON nj.session_id = r.session_id AND nj.media_type = r.media_type
    WHERE r.recv_poor = 1 AND 2 * w.poor_joins >= nj.joins
    GROUP BY r.session_id, r.user_id, r.join_time, r.media_type
),
rc AS (
    SELECT a.session_id, a.user_id, a.join_time FROM {p}session_users a
    WHERE a.session_id IN :session_ids AND a.leave_time IS NOT NULL AND EXISTS (
        SELECT 1 FROM {p}session_users b
        WHERE b.session_id = a.session_id AND b.user_id = a.user_id AND b.join_time > a.join_time
            AND {millis_sql(dialect, "a.leave_time", "b.join_time")} <= {RECONNECT_SECONDS * 1000})
),
scored_joins AS (
    SELECT jm.*, rtrim({issue_text}, ',') AS issues,
        CASE WHEN NOT ({send_poor} OR {recv_poor}) THEN 'none'
        {cause}
        ELSE 'unknown' END AS cause
    FROM jm
    LEFT JOIN sysj y ON {_on("y", "jm")}
    LEFT JOIN rc ON {_on("rc", "jm")}
    LEFT JOIN pm ON {_on("pm", "jm", (*_JOIN, "media_type"))}
    LEFT JOIN rm ON {_on("rm", "jm", (*_JOIN, "media_type"))}
    LEFT JOIN sm ON {_on("sm", "jm", (*_JOIN, "media_type"))}
    LEFT JOIN wm ON {_on("wm", "jm", (*_JOIN, "media_type"))}
)
SELECT j.session_id, j.user_id, j.join_time, j.media_type, {utc_day_sql(dialect, "j.join_time")},
    j.send_n, j.send_poor, {_share("j.send_poor", "j.send_n")},
    j.recv_n, j.recv_poor, {_share("j.recv_poor", "j.recv_n")},
    j.avg_mos_send, j.avg_mos_receive, j.min_mos_receive, j.issues, j.cause,
    CASE WHEN j.cause = 'remote_sender' THEN w.sender END, {SCORE_VERSION}
FROM scored_joins j
LEFT JOIN senders w ON {_on("w", "j", (*_JOIN, "media_type"))} AND w.pick = 1"""


def join_days_sql(dialect: str, prefix: str) -> str:
    """``INSERT INTO quality_join_days`` from the scratch table: counts per join, media type and day."""
    keys = ", ".join(("session_id", "user_id", "join_time", "media_type", "day", *DIMENSIONS))
    return f"""INSERT INTO {prefix}quality_join_days ({keys}, samples, rated_samples, poor_samples)
SELECT {keys}, count(*), count(is_poor), COALESCE(sum(is_poor), 0)
FROM {SCRATCH} GROUP BY {keys}"""


def value_counts_sql(dialect: str, prefix: str, sign: int) -> str:
    """Add (``sign`` 1) or take away (-1: before they are replaced) the scratch table's samples in
    ``quality_value_counts``."""
    p = prefix
    dims = ", ".join(DIMENSIONS)
    per_metric = "\n    UNION ALL\n    ".join(
        f"SELECT day, media_type, {dims}, '{name}' AS metric, {col} AS value "
        f"FROM {SCRATCH} WHERE {col} IS NOT NULL"
        for name, col in MEASURES  # (metric name in quality_value_counts, column)
    )
    expanded = "\n    UNION ALL\n    ".join(
        ["SELECT day, media_type, '' AS dimension, '' AS dimension_value, metric, value, n FROM g"]
        + [
            f"SELECT day, media_type, '{d}', COALESCE({d}, 'unknown'), metric, value, n FROM g"
            for d in DIMENSIONS
        ]
    )
    return f"""INSERT INTO {p}quality_value_counts AS vc (day, media_type, dimension, dimension_value, metric,
    value, samples)
WITH g AS (
    SELECT day, media_type, {dims}, metric, value, count(*) AS n FROM (
    {per_metric}
    ) v GROUP BY day, media_type, {dims}, metric, value
)
SELECT day, media_type, dimension, dimension_value, metric, value, {int(sign)} * sum(n) FROM (
    {expanded}
) e
WHERE true
GROUP BY day, media_type, dimension, dimension_value, metric, value
ON CONFLICT (day, media_type, dimension, dimension_value, metric, value)
DO UPDATE SET samples = vc.samples + excluded.samples"""


# --------------------------------------------------------------------------- per session
def session_quality_sql(dialect: str, prefix: str) -> str:
    """``INSERT INTO quality_sessions``: one row per session, from the scratch table and the sessions'
    ``quality_joins`` rows (written first)."""
    p = prefix
    stats = grouped_stats_sql(dialect, SCRATCH, ["session_id", "media_type"])
    pivot, media_cols = [], []
    for media in MEDIA_TYPES:
        for short, _ in MEASURES:
            for agg in ("avg", "p95"):
                pivot.append(
                    f"max(CASE WHEN media_type = '{media}' THEN {agg}_{short} END) AS {media}_{agg}_{short}"
                )
                media_cols.append(f"{media}_{agg}_{short}")
        pivot.append(f"max(CASE WHEN media_type = '{media}' THEN poor_share END) AS {media}_poor_share")
        media_cols.append(f"{media}_poor_share")
    millis = millis_sql(dialect, "join_time", "leave_time")
    order = " ".join(f"WHEN '{c}' THEN {i}" for i, c in enumerate(CAUSES))
    return f"""INSERT INTO {p}quality_sessions (session_id, users, joins, minutes, samples, poor_share,
    {", ".join(media_cols)}, audio_mos, poor_joins, main_cause)
SELECT s.session_id, COALESCE(u.users, 0), COALESCE(u.joins, 0), u.minutes, COALESCE(a.samples, 0),
    a.poor_share, {", ".join(f"m.{c}" for c in media_cols)}, a.audio_mos,
    COALESCE(pj.poor_joins, 0), mc.cause
FROM {p}sessions s
LEFT JOIN (
    SELECT session_id, count(DISTINCT user_id) AS users, count(*) AS joins,
        {dbl(f"sum({millis})")} / 60000.0 AS minutes
    FROM {p}session_users WHERE session_id IN :session_ids GROUP BY session_id
) u ON u.session_id = s.session_id
LEFT JOIN (
    SELECT session_id, count(*) AS samples, avg({dbl("is_poor")}) AS poor_share,
        avg(CASE WHEN media_type = 'audio' AND direction = 'receive' THEN mos END) AS audio_mos
    FROM {SCRATCH} x GROUP BY session_id
) a ON a.session_id = s.session_id
LEFT JOIN (
    SELECT session_id, {", ".join(pivot)}
    FROM ({stats}) g GROUP BY session_id
) m ON m.session_id = s.session_id
LEFT JOIN (
    SELECT session_id, count(*) AS poor_joins FROM (
        SELECT DISTINCT session_id, user_id, join_time FROM {p}quality_joins
        WHERE session_id IN :session_ids AND cause <> 'none'
    ) d GROUP BY session_id
) pj ON pj.session_id = s.session_id
LEFT JOIN (
    SELECT session_id, cause, row_number() OVER (
        PARTITION BY session_id ORDER BY count(*) DESC, CASE cause {order} END) AS pick
    FROM {p}quality_joins WHERE session_id IN :session_ids AND cause <> 'none'
    GROUP BY session_id, cause
) mc ON mc.session_id = s.session_id AND mc.pick = 1
WHERE s.session_id IN :session_ids"""


def days_of_sessions_sql(prefix: str) -> str:
    """The days whose daily rows the sessions' derived rows feed (samples' days and joins' days)."""
    return (
        f"SELECT day FROM {prefix}quality_join_days WHERE session_id IN :session_ids "
        f"UNION SELECT day FROM {prefix}quality_joins WHERE session_id IN :session_ids"
    )


# --------------------------------------------------------------------------- per day
def quality_daily_sql(dialect: str, prefix: str) -> str:
    """``INSERT INTO quality_daily`` the rows of ``:days`` (their old rows deleted first)."""
    p = prefix
    cols = "session_id, user_id, samples, rated_samples, poor_samples"
    unpivot = "\n        UNION ALL\n        ".join(
        [f"SELECT day, media_type, '' AS dimension, '' AS dimension_value, {cols} FROM jd"]
        + [f"SELECT day, media_type, '{d}', COALESCE({d}, 'unknown'), {cols} FROM jd" for d in DIMENSIONS]
    )
    keys = "day, media_type, dimension, dimension_value"
    on = " AND ".join(f"h.{k} = c.{k}" for k in keys.split(", "))
    metric_cols, metric_pivot = [], []
    for short, _ in MEASURES:
        metric_cols += [f"avg_{short}", f"p95_{short}"]
        metric_pivot += [
            f"max(CASE WHEN metric = '{short}' THEN avg_value END) AS avg_{short}",
            f"max(CASE WHEN metric = '{short}' THEN p95 END) AS p95_{short}",
        ]
    window = f"PARTITION BY {keys}, metric"
    return f"""INSERT INTO {p}quality_daily ({keys}, sessions, users, samples, poor_samples, poor_share,
    {", ".join(metric_cols)})
WITH jd AS (SELECT * FROM {p}quality_join_days WHERE day IN :days),
c AS (
    SELECT {keys}, count(DISTINCT session_id) AS sessions, count(DISTINCT user_id) AS users,
        sum(samples) AS samples,
        CASE WHEN sum(rated_samples) > 0 THEN sum(poor_samples) END AS poor_samples,
        {_share("sum(poor_samples)", "sum(rated_samples)")} AS poor_share
    FROM (
        {unpivot}
    ) u GROUP BY {keys}
),
h AS (
    SELECT {keys}, {", ".join(metric_pivot)}
    FROM (
        SELECT {keys}, metric, sum(value * samples) / sum(samples) AS avg_value,
            min(CASE WHEN {dbl("cum")} / total >= 0.95 THEN value END) AS p95
        FROM (
            SELECT v.*,
                sum(samples) OVER ({window} ORDER BY value ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                    AS cum,
                sum(samples) OVER ({window}) AS total
            FROM {p}quality_value_counts v WHERE day IN :days AND samples > 0
        ) ranked GROUP BY {keys}, metric
    ) m GROUP BY {keys}
)
SELECT {", ".join(f"c.{k}" for k in keys.split(", "))}, c.sessions, c.users, c.samples, c.poor_samples,
    c.poor_share, {", ".join(f"h.{c}" for c in metric_cols)}
FROM c LEFT JOIN h ON {on}"""


def daily_causes_sql(prefix: str) -> str:
    """``INSERT INTO quality_daily_causes`` the rows of ``:days`` (their old rows deleted first)."""
    return f"""INSERT INTO {prefix}quality_daily_causes (day, media_type, cause, joins)
SELECT day, media_type, cause, count(*) FROM {prefix}quality_joins WHERE day IN :days
GROUP BY day, media_type, cause"""
