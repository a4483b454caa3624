"""What the report shows, read from the warehouse's BI views into plain Python values.

:func:`load_report_data` runs the report's queries over ``qos_samples``, ``session_quality``,
``join_quality``, ``daily_causes`` (:mod:`zoom_qos.report.causes`), ``daily_completeness``,
``run_health`` and ``qos_thresholds`` (see ``docs/warehouse.md``) and
returns a :class:`ReportData` that is the same on SQLite and PostgreSQL, so the page never sees a
back end. The queries are raw SQL over views (views are not SQLAlchemy tables), so the schema
prefix and the dialect check come from :mod:`zoom_qos.warehouse.sql`, as for the views themselves.

The period is the last ``days`` UTC days *of data present*: it ends on the day of the newest
sample in the warehouse (not today: a warehouse whose loads paused still gets a full report)
and starts no earlier than the day of the oldest sample (a young warehouse gets no empty days).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from zoom_qos.core.config import DEFAULT_WAREHOUSE_SCHEMA
from zoom_qos.core.contracts import LIVE_DAG_ID
from zoom_qos.core.statuses import LIVE
from zoom_qos.report.alerts import flagged_sessions
from zoom_qos.report.causes import period_causes, worst_joins
from zoom_qos.report.reader import Reader, int_value, num_value
from zoom_qos.transform.parsing import utc_day
from zoom_qos.warehouse.views import MEDIA_TYPES

__all__ = [
    "DEFAULT_DAYS",
    "DIMENSIONS",
    "HISTOGRAMS",
    "REQUIRED_VIEWS",
    "DayCompleteness",
    "Histogram",
    "ReportData",
    "load_report_data",
]

DEFAULT_DAYS = 30
WORST_SESSIONS = 10


@dataclass(frozen=True)
class Histogram:
    """One distribution the report draws: a ``qos_samples`` column binned in equal widths."""

    column: str  # in qos_samples
    threshold_column: str  # in qos_thresholds
    label: str
    unit: str
    width: float
    bins: int  # regular bins; one more, open, holds everything from bins * width up


HISTOGRAMS: tuple[Histogram, ...] = (
    Histogram("latency_ms", "latency_ms", "Latency", "ms", 25.0, 20),
    Histogram("avg_loss_pct", "loss_pct", "Average packet loss", "%", 0.25, 20),
)
#: (qos_samples column, label) of the breakdowns, as in ``daily_quality_breakdown``.
DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("device", "Device"),
    ("network_type", "Network type"),
    ("data_center", "Data center"),
)
REQUIRED_VIEWS = (
    "qos_samples",
    "join_quality",
    "daily_causes",
    "session_quality",
    "daily_quality",
    "daily_quality_breakdown",
    "run_health",
    "daily_completeness",
    "live_session_quality",
)


@dataclass(frozen=True)
class DayCompleteness:
    """One day of ``daily_completeness``: Zoom's count (None: not read) and what the warehouse holds."""

    day: date
    zoom_sessions: int | None
    warehouse_sessions: int = 0
    loaded: int = 0
    pending: int = 0
    unavailable: int = 0

    @property
    def differs(self) -> bool:
        """Zoom counted the day and the warehouse holds another number of sessions for it."""
        return self.zoom_sessions is not None and self.zoom_sessions != self.warehouse_sessions


@dataclass
class ReportData:
    """Everything the report shows, as plain Python values (the same on both back ends)."""

    start: date
    end: date
    has_data: bool
    requested_days: int = DEFAULT_DAYS
    totals: dict[str, int] = field(default_factory=dict)
    #: media type -> [(day, poor_share | None, samples)]
    trend: dict[str, list[tuple[date, float | None, int]]] = field(default_factory=dict)
    #: metric column -> [(low, high | None, count)]
    histograms: dict[str, list[tuple[float, float | None, int]]] = field(default_factory=dict)
    #: metric column -> its threshold when every media type has the same one, else None
    thresholds: dict[str, float | None] = field(default_factory=dict)
    worst: list[dict[str, Any]] = field(default_factory=list)
    #: poor joins of the period, worst first (``join_quality``), and each day's causes (``daily_causes``)
    worst_joins: list[dict[str, Any]] = field(default_factory=list)
    causes: list[dict[str, Any]] = field(default_factory=list)
    #: dimension -> [(value, poor share, samples)], highest share first
    breakdowns: dict[str, list[tuple[str, float, int]]] = field(default_factory=dict)
    latest_run: dict[str, Any] | None = None
    #: every day of the period, oldest first (empty when nothing was counted or held in it)
    completeness: list[DayCompleteness] = field(default_factory=list)
    #: joins of sessions in progress (``live_session_quality``), worst first; and their open alerts
    live: list[dict[str, Any]] = field(default_factory=list)
    live_alerts: list[dict[str, Any]] = field(default_factory=list)
    #: Sessions Zoom's session.alert or our live alerts flagged (alert_comparison), latest first.
    flagged: list[dict[str, Any]] = field(default_factory=list)

    @property
    def days(self) -> list[date]:
        """Every UTC day of the period, oldest first."""
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


def _engine_and_schema(source: object, schema: str | None) -> tuple[sa.Engine, str | None]:
    engine = getattr(source, "engine", source)
    if not isinstance(engine, sa.Engine):
        raise TypeError(f"Expected a Warehouse or an SQLAlchemy Engine, got {type(source).__name__}.")
    if schema is None:
        schema = getattr(source, "schema", None)
    if schema is None:
        translate = engine.get_execution_options().get("schema_translate_map") or {}
        schema = translate.get(None) or DEFAULT_WAREHOUSE_SCHEMA
    return engine, schema


def report_period(conn: sa.Connection, prefix: str, days: int = DEFAULT_DAYS,
                  today: date | None = None) -> tuple[date, date, bool]:
    """The report's first and last day and whether there is any sample: the last ``days`` days
    up to the newest sample (``today``, default the current UTC day, when there is none), not
    before the oldest one."""
    # qos_samples, not user_qos: the samples of sessions in progress are not the days' figures
    oldest, newest = conn.execute(
        sa.text(f"SELECT min(sampled_at), max(sampled_at) FROM {prefix}qos_samples")).one()
    end = utc_day(newest) if newest is not None else (today or datetime.now(UTC).date())
    start = end - timedelta(days=days - 1)
    if oldest is not None:
        start = max(start, utc_day(oldest))
    return start, end, newest is not None


def load_report_data(
    source: object, days: int = DEFAULT_DAYS, *, schema: str | None = None, today: date | None = None
) -> ReportData:
    """Read the report's figures from a ``Warehouse`` or an SQLAlchemy ``Engine``.

    On PostgreSQL ``schema`` defaults to the warehouse's, else the engine's schema translation,
    else ``zoom_qos``. ``today`` is the period's end when the warehouse holds no sample (default:
    the current UTC day). Raises ``RuntimeError`` when a view is missing (nothing was loaded yet).
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    engine, schema = _engine_and_schema(source, schema)
    reader = Reader(engine, schema)
    missing = sorted(set(REQUIRED_VIEWS) - set(sa.inspect(engine).get_view_names(schema=reader.schema)))
    if missing:
        raise RuntimeError(
            f"The warehouse has no view {', '.join(missing)}: run a load first "
            "(every load creates the schema and the BI views)."
        )
    with engine.connect() as conn:
        start, end, has_data = report_period(conn, reader.prefix, days, today)
        data = ReportData(start=start, end=end, has_data=has_data, requested_days=days)
        window = {"start": reader.day(start), "end": reader.day(end)}
        data.latest_run = _latest_run(conn, reader)
        data.completeness = _completeness(conn, reader, window, data.days)
        data.live, data.live_alerts = _live(conn, reader)
        data.flagged = flagged_sessions(conn, reader)
        if not data.has_data:
            return data
        data.totals = _totals(conn, reader, window)
        data.trend = _trend(conn, reader, window)
        data.thresholds = _thresholds(conn, reader)
        data.histograms = {h.column: _histogram(conn, reader, window, h) for h in HISTOGRAMS}
        data.worst = _worst_sessions(conn, reader, start, end)
        data.worst_joins = worst_joins(conn, reader, window)
        data.causes = period_causes(conn, reader, window)
        data.breakdowns = _breakdowns(conn, reader, window)
    return data


_RATED = ", ".join(f"'{m}'" for m in MEDIA_TYPES)


def _totals(conn: sa.Connection, r: Reader, window: Mapping[str, Any]) -> dict[str, int]:
    over = [
        f"sum(CASE WHEN q.{h.column} > t.{h.threshold_column} THEN 1 ELSE 0 END) AS over_{h.column}, "
        f"count(CASE WHEN t.{h.threshold_column} IS NOT NULL THEN q.{h.column} END) AS rated_{h.column}"
        for h in HISTOGRAMS
    ]
    row = r.rows(
        conn,
        f"""SELECT count(DISTINCT q.session_id) AS sessions, count(DISTINCT q.user_id) AS users,
            count(*) AS samples, sum(q.is_poor) AS poor, count(q.is_poor) AS rated,
            {", ".join(over)}
        FROM {{p}}qos_samples q LEFT JOIN {{p}}qos_thresholds t ON t.media_type = q.media_type
        WHERE q.day >= :start AND q.day <= :end""",
        **window,
    )[0]
    return {key: int_value(value) for key, value in row.items()}


def _trend(
    conn: sa.Connection, r: Reader, window: Mapping[str, Any]
) -> dict[str, list[tuple[date, float | None, int]]]:
    """Per day and media type: poor share (as ``daily_quality.poor_share``) and samples."""
    rows = r.rows(
        conn,
        f"""SELECT day, media_type, count(*) AS samples, sum(is_poor) AS poor, count(is_poor) AS rated
        FROM {{p}}qos_samples
        WHERE day >= :start AND day <= :end AND media_type IN ({_RATED})
        GROUP BY day, media_type ORDER BY day, media_type""",
        **window,
    )
    trend: dict[str, list[tuple[date, float | None, int]]] = {}
    for row in rows:
        rated = int_value(row["rated"])
        share = int_value(row["poor"]) / rated if rated else None
        point = (utc_day(row["day"]), share, int_value(row["samples"]))
        trend.setdefault(row["media_type"], []).append(point)
    return {media: trend[media] for media in MEDIA_TYPES if media in trend}


def _thresholds(conn: sa.Connection, r: Reader) -> dict[str, float | None]:
    rows = r.rows(conn, f"SELECT * FROM {{p}}qos_thresholds WHERE media_type IN ({_RATED})")
    result: dict[str, float | None] = {}
    for h in HISTOGRAMS:
        values = {num_value(row[h.threshold_column]) for row in rows}
        result[h.column] = values.pop() if len(values) == 1 else None
    return result


def _histogram(
    conn: sa.Connection, r: Reader, window: Mapping[str, Any], h: Histogram
) -> list[tuple[float, float | None, int]]:
    bucket = r.bucket(h.column, h.width)
    rows = r.rows(
        conn,
        f"""SELECT {bucket} AS bucket, count(*) AS n FROM {{p}}qos_samples
        WHERE day >= :start AND day <= :end AND {h.column} IS NOT NULL GROUP BY {bucket}""",
        **window,
    )
    counts = [0] * (h.bins + 1)  # the last bin holds everything from bins * width up
    for row in rows:
        counts[min(max(int(num_value(row["bucket"]) or 0), 0), h.bins)] += int_value(row["n"])
    return [(i * h.width, (i + 1) * h.width if i < h.bins else None, n) for i, n in enumerate(counts)]


def _worst_sessions(conn: sa.Connection, r: Reader, start: date, end: date) -> list[dict[str, Any]]:
    """Sessions started in the period, most poor samples first, then the worst p95 latency."""
    latency = r.greatest(*(f"{m}_p95_latency_ms" for m in MEDIA_TYPES))
    jitter = r.greatest(*(f"{m}_p95_jitter_ms" for m in MEDIA_TYPES))
    loss = r.greatest(*(f"{m}_p95_loss_pct" for m in MEDIA_TYPES))
    bounds: dict[str, datetime | str]
    if r.dialect == "postgresql":
        bounds = {
            "start": datetime.combine(start, datetime.min.time(), UTC),
            "stop": datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC),
        }
    else:  # naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff' compares as text
        bounds = {"start": start.isoformat(), "stop": (end + timedelta(days=1)).isoformat()}
    rows = r.rows(
        conn,
        f"""SELECT session_id, session_name, start_time, users, samples, poor_share, audio_mos,
            main_cause, {latency} AS p95_latency_ms, {jitter} AS p95_jitter_ms, {loss} AS p95_loss_pct
        FROM {{p}}session_quality
        WHERE start_time >= :start AND start_time < :stop AND poor_share IS NOT NULL
        ORDER BY poor_share DESC, {latency} DESC, session_id
        LIMIT {WORST_SESSIONS}""",
        **bounds,
    )
    for row in rows:
        row["audio_mos"] = num_value(row["audio_mos"])
        for key in ("p95_latency_ms", "p95_jitter_ms", "p95_loss_pct", "poor_share"):
            value = num_value(row[key])
            row[key] = None if value is None or value < 0 else value
        row["users"], row["samples"] = int_value(row["users"]), int_value(row["samples"])
    return rows


def _breakdowns(
    conn: sa.Connection, r: Reader, window: Mapping[str, Any]
) -> dict[str, list[tuple[str, float, int]]]:
    """Per device, network type and data center: poor share over the period and samples.

    The same definitions as ``daily_quality_breakdown`` ('unknown' for NULL, rated media
    types), aggregated over the whole period from ``qos_samples`` in one pass: summing the
    view's daily rows cannot give an exact period share (it has no rated-sample count), and
    on SQLite the view computes every day's percentiles before the period filter applies.
    """
    dims = [dim for dim, _ in DIMENSIONS]
    keys = ", ".join(f"COALESCE({dim}, 'unknown') AS {dim}" for dim in dims)
    rows = r.rows(
        conn,
        f"""SELECT {keys}, count(*) AS samples, sum(is_poor) AS poor, count(is_poor) AS rated
        FROM {{p}}qos_samples
        WHERE day >= :start AND day <= :end AND media_type IN ({_RATED})
        GROUP BY {", ".join(f"COALESCE({dim}, 'unknown')" for dim in dims)}""",
        **window,
    )
    sums: dict[str, dict[str, list[int]]] = {dim: {} for dim in dims}
    for row in rows:
        for dim in dims:
            acc = sums[dim].setdefault(str(row[dim]), [0, 0, 0])
            acc[0] += int_value(row["samples"])
            acc[1] += int_value(row["poor"])
            acc[2] += int_value(row["rated"])
    result: dict[str, list[tuple[str, float, int]]] = {}
    for dim in dims:
        values = [
            (value, poor / rated, samples) for value, (samples, poor, rated) in sums[dim].items() if rated
        ]
        values.sort(key=lambda v: (-v[1], -v[2], v[0]))
        result[dim] = values
    return result


def _completeness(
    conn: sa.Connection, r: Reader, window: Mapping[str, Any], days: Sequence[date]
) -> list[DayCompleteness]:
    """``daily_completeness`` for every day of the period (a day missing from it held nothing)."""
    rows = r.rows(
        conn,
        """SELECT usage_date, zoom_sessions, warehouse_sessions, sessions_loaded, sessions_pending,
            sessions_unavailable FROM {p}daily_completeness
        WHERE usage_date >= :start AND usage_date <= :end""",
        **window,
    )
    if not rows:
        return []
    by_day = {
        utc_day(row["usage_date"]): DayCompleteness(
            day=utc_day(row["usage_date"]),
            zoom_sessions=None if row["zoom_sessions"] is None else int(row["zoom_sessions"]),
            warehouse_sessions=int_value(row["warehouse_sessions"]),
            loaded=int_value(row["sessions_loaded"]),
            pending=int_value(row["sessions_pending"]),
            unavailable=int_value(row["sessions_unavailable"]),
        )
        for row in rows
    }
    return [by_day.get(day) or DayCompleteness(day=day, zoom_sessions=None) for day in days]


def _live(conn: sa.Connection, r: Reader) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Sessions in progress: each join's current poor share, and the alerts still open on them."""
    joins = r.rows(
        conn,
        """SELECT session_id, session_name, user_id, user_name, join_time, media_type, rated_samples,
        poor_share, last_sampled_at FROM {p}live_session_quality
        ORDER BY CASE WHEN poor_share IS NULL THEN 1 ELSE 0 END, poor_share DESC, session_id, user_id""",
    )
    alerts = r.rows(
        conn,
        """SELECT a.session_id, a.user_id, a.media_type, a.first_seen_at, a.poor_share, a.notified_at
        FROM {p}qos_alerts a JOIN {p}sessions s ON s.session_id = a.session_id
        WHERE a.cleared_at IS NULL AND s.qos_status = :live
        ORDER BY a.first_seen_at, a.session_id, a.user_id, a.media_type""",
        live=LIVE,
    )
    return joins, alerts


def _latest_run(conn: sa.Connection, r: Reader) -> dict[str, Any] | None:
    rows = r.rows(
        conn,
        """SELECT run_id, outcome, health, health_reason, started_at, finished_at, sessions_loaded
        FROM {p}run_health WHERE dag_id <> :live
        ORDER BY CASE WHEN started_at IS NULL THEN 1 ELSE 0 END, started_at DESC, run_id DESC LIMIT 1""",
        live=LIVE_DAG_ID,
    )
    return rows[0] if rows else None
