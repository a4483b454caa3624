"""A static, self-contained HTML report of call quality over the last days of data.

:func:`build_report` reads the BI views (``daily_quality``, ``qos_samples``,
``session_quality``, ``daily_quality_breakdown``, ``run_health``, ``daily_completeness``; see
``docs/warehouse.md``) and writes ONE HTML file: inline CSS, charts as inline SVG drawn here, no script and no
external reference (a Content-Security-Policy forbids loading anything). Every chart has a
title, a description, a text summary and its numbers in a table, for screen readers and for
anyone who wants the figures.

The period is the last ``days`` UTC days *of data present*: it ends on the day of the newest
sample in the warehouse (not today: a warehouse whose loads paused still gets a full report)
and starts no earlier than the day of the oldest sample (a young warehouse gets no empty days).
Per day of the period, a completeness table compares Zoom's own count of sessions
(``daily_usage``) with the sessions the warehouse holds and flags the days where they differ, so
a reader sees when figures rest on fewer sessions than took place.
Works on SQLite and PostgreSQL: raw SQL over views is qualified with the warehouse schema
(``"zoom_qos".``) on PostgreSQL, as :mod:`zoom_qos.warehouse.views` does.
"""

from __future__ import annotations

import html
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from zoom_qos.config import DEFAULT_WAREHOUSE_SCHEMA, WAREHOUSE_CONN_ID, data_dir
from zoom_qos.warehouse.views import MEDIA_TYPES

__all__ = [
    "REPORT_DIR_ENV",
    "DayCompleteness",
    "ReportData",
    "build_report",
    "default_report_dir",
    "load_report_data",
    "render_configured_report",
    "render_html",
]

log = logging.getLogger(__name__)

REPORT_DIR_ENV = "ZOOM_QOS_REPORT_DIR"
DEFAULT_DAYS = 30
WORST_SESSIONS = 10
MAX_BARS = 12
#: (metric column, threshold column, label, unit, bin width, number of regular bins).
HISTOGRAMS: tuple[tuple[str, str, str, str, float, int], ...] = (
    ("latency_ms", "latency_ms", "Latency", "ms", 25.0, 20),
    ("avg_loss_pct", "loss_pct", "Average packet loss", "%", 0.25, 20),
)
DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("device", "Device"),
    ("network_type", "Network type"),
    ("data_center", "Data center"),
)
MEDIA_LABELS = {"audio": "Audio", "video": "Video", "screen_share": "Screen share"}
# Okabe–Ito colours (distinguishable with colour-vision deficiencies); each series also has
# its own marker shape and dash pattern, so colour is never the only cue.
MEDIA_STYLE = {
    "audio": ("#0072B2", "circle", ""),
    "video": ("#E69F00", "square", "6 3"),
    "screen_share": ("#009E73", "triangle", "2 3"),
}
BAR_COLOUR = "#0072B2"
OVER_COLOUR = "#D55E00"
REQUIRED_VIEWS = (
    "qos_samples",
    "session_quality",
    "daily_quality",
    "daily_quality_breakdown",
    "run_health",
    "daily_completeness",
)


# --------------------------------------------------------------------------- configuration
def default_report_dir() -> Path:
    """``ZOOM_QOS_REPORT_DIR``, else ``reports/`` in the data folder (``data/reports``)."""
    return Path(os.environ.get(REPORT_DIR_ENV) or data_dir() / "reports")


def render_configured_report(output_dir: str | Path | None = None, days: int = DEFAULT_DAYS) -> Path:
    """Report on the configured warehouse (``zoom_qos_warehouse`` connection, else SQLite)."""
    from zoom_qos.warehouse.loader import Warehouse  # the loader pulls in Alembic: only when rendering

    warehouse = Warehouse.from_airflow(WAREHOUSE_CONN_ID)
    try:
        path = build_report(warehouse, output_dir or default_report_dir(), days=days)
    finally:
        warehouse.dispose()
    log.info("QoS report written to %s", path)
    return path


# --------------------------------------------------------------------------- reading
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
        return self.zoom_sessions is not None and self.zoom_sessions != self.warehouse_sessions

    @property
    def sentence(self) -> str:
        """What the day's row says, in words (the figures of the row, for every reader)."""
        held = f"the warehouse holds {self.warehouse_sessions:,}"
        if self.warehouse_sessions:
            held += f", {self.loaded:,} of them with QoS"
        without = ((self.pending, "pending"), (self.unavailable, "unavailable"))
        rest = [f"{n:,} {label}" for n, label in without if n]
        if rest:
            held += f" ({', '.join(rest)})"
        if self.zoom_sessions is None:
            return f"Zoom's count of this day was not read; {held}."
        noun = "session" if self.zoom_sessions == 1 else "sessions"
        return f"Zoom counted {self.zoom_sessions:,} {noun} on this day, {held}."


@dataclass
class ReportData:
    """Everything the report shows, as plain Python values (the same on both back ends)."""

    start: date
    end: date
    has_data: bool
    requested_days: int = DEFAULT_DAYS
    totals: dict[str, Any] = field(default_factory=dict)
    #: media type -> [(day, poor_share | None, samples)]
    trend: dict[str, list[tuple[date, float | None, int]]] = field(default_factory=dict)
    #: metric column -> [(low, high | None, count)]
    histograms: dict[str, list[tuple[float, float | None, int]]] = field(default_factory=dict)
    #: metric column -> its threshold when every media type has the same one, else None
    thresholds: dict[str, float | None] = field(default_factory=dict)
    worst: list[dict[str, Any]] = field(default_factory=list)
    #: dimension -> [(value, poor share, samples)], highest share first
    breakdowns: dict[str, list[tuple[str, float, int]]] = field(default_factory=dict)
    latest_run: dict[str, Any] | None = None
    #: every day of the period, oldest first (empty when nothing was counted or held in it)
    completeness: list[DayCompleteness] = field(default_factory=list)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


def _num(value: Any) -> float | None:
    if value is None:
        return None
    return float(value) if isinstance(value, Decimal | int | float) else float(str(value))


def _int(value: Any) -> int:
    return int(value or 0)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return (value if value.tzinfo is None else value.astimezone(UTC)).date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _as_text_time(value: Any) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM`` UTC (SQLite returns text, PostgreSQL datetimes)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value).replace("T", " ")[:16]


class _Reader:
    """Raw SQL over the views, with the schema prefix and date parameters of the dialect."""

    def __init__(self, engine: sa.Engine, schema: str | None) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"Unsupported warehouse database {self.dialect!r}; use sqlite or postgresql.")
        self.schema = schema if self.dialect == "postgresql" else None
        quote = engine.dialect.identifier_preparer.quote_schema
        self.prefix = f"{quote(self.schema)}." if self.schema else ""

    def day(self, value: date) -> Any:
        # qos_samples.day is a date on PostgreSQL and 'YYYY-MM-DD' text on SQLite.
        return value if self.dialect == "postgresql" else value.isoformat()

    def rows(self, conn: sa.Connection, sql: str, **params: Any) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in conn.execute(sa.text(sql.replace("{p}", self.prefix)), params)]

    def greatest(self, *columns: str) -> str:
        """Largest non-NULL of the columns (-1 if all are NULL) on both back ends."""
        name = "greatest" if self.dialect == "postgresql" else "max"
        return f"{name}({', '.join(f'COALESCE({c}, -1)' for c in columns)})"

    def bucket(self, column: str, width: float) -> str:
        # Values are non-negative (negative ones are data-quality findings and land in bin 0);
        # CAST truncates on SQLite but rounds on PostgreSQL, hence floor() there.
        if self.dialect == "postgresql":
            return f"floor({column} / {width!r})"
        return f"CAST({column} / {width!r} AS INTEGER)"


def _engine_and_schema(source: Any, schema: str | None) -> tuple[sa.Engine, str | None]:
    engine = getattr(source, "engine", source)
    if not isinstance(engine, sa.Engine):
        raise TypeError(f"Expected a Warehouse or an SQLAlchemy Engine, got {type(source).__name__}.")
    if schema is None:
        schema = getattr(source, "schema", None)
    if schema is None:
        translate = engine.get_execution_options().get("schema_translate_map") or {}
        schema = translate.get(None) or DEFAULT_WAREHOUSE_SCHEMA
    return engine, schema


def load_report_data(
    source: Any, days: int = DEFAULT_DAYS, *, schema: str | None = None, today: date | None = None
) -> ReportData:
    """Read the report's figures from a ``Warehouse`` or an ``Engine`` (see :func:`build_report`)."""
    if days < 1:
        raise ValueError("days must be at least 1")
    engine, schema = _engine_and_schema(source, schema)
    reader = _Reader(engine, schema)
    inspector = sa.inspect(engine)
    missing = sorted(set(REQUIRED_VIEWS) - set(inspector.get_view_names(schema=reader.schema)))
    if missing:
        raise RuntimeError(
            f"The warehouse has no view {', '.join(missing)}: run a load first "
            "(every load creates the schema and the BI views)."
        )
    with engine.connect() as conn:
        oldest, newest = conn.execute(
            sa.text(f"SELECT min(sampled_at), max(sampled_at) FROM {reader.prefix}user_qos")
        ).one()
        end = _as_date(newest) if newest is not None else (today or datetime.now(UTC).date())
        start = end - timedelta(days=days - 1)
        if oldest is not None:
            start = max(start, _as_date(oldest))
        data = ReportData(start=start, end=end, has_data=newest is not None, requested_days=days)
        window = {"start": reader.day(start), "end": reader.day(end)}
        data.latest_run = _latest_run(conn, reader)
        data.completeness = _completeness(conn, reader, window, data.days)
        if not data.has_data:
            return data
        data.totals = _totals(conn, reader, window)
        data.trend = _trend(conn, reader, window)
        data.thresholds = _thresholds(conn, reader)
        data.histograms = {
            column: _histogram(conn, reader, window, column, width, bins)
            for column, _, _, _, width, bins in HISTOGRAMS
        }
        data.worst = _worst_sessions(conn, reader, start, end)
        data.breakdowns = _breakdowns(conn, reader, window)
    return data


_RATED = ", ".join(f"'{m}'" for m in MEDIA_TYPES)


def _totals(conn: sa.Connection, r: _Reader, window: Mapping[str, Any]) -> dict[str, Any]:
    over = {
        column: f"sum(CASE WHEN q.{column} > t.{tcol} THEN 1 ELSE 0 END) AS over_{column}, "
        f"count(CASE WHEN t.{tcol} IS NOT NULL THEN q.{column} END) AS rated_{column}"
        for column, tcol, *_ in HISTOGRAMS
    }
    row = r.rows(
        conn,
        f"""SELECT count(DISTINCT q.session_id) AS sessions, count(DISTINCT q.user_id) AS users,
            count(*) AS samples, sum(q.is_poor) AS poor, count(q.is_poor) AS rated,
            {", ".join(over.values())}
        FROM {{p}}qos_samples q LEFT JOIN {{p}}qos_thresholds t ON t.media_type = q.media_type
        WHERE q.day >= :start AND q.day <= :end""",
        **window,
    )[0]
    return {key: _int(value) for key, value in row.items()}


def _trend(conn: sa.Connection, r: _Reader, window: Mapping[str, Any]) -> dict[str, list]:
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
        rated = _int(row["rated"])
        share = _int(row["poor"]) / rated if rated else None
        trend.setdefault(row["media_type"], []).append((_as_date(row["day"]), share, _int(row["samples"])))
    return {media: trend[media] for media in MEDIA_TYPES if media in trend}


def _thresholds(conn: sa.Connection, r: _Reader) -> dict[str, float | None]:
    rows = r.rows(conn, f"SELECT * FROM {{p}}qos_thresholds WHERE media_type IN ({_RATED})")
    result: dict[str, float | None] = {}
    for column, tcol, *_ in HISTOGRAMS:
        values = {_num(row[tcol]) for row in rows}
        result[column] = values.pop() if len(values) == 1 else None
    return result


def _histogram(
    conn: sa.Connection, r: _Reader, window: Mapping[str, Any], column: str, width: float, bins: int
) -> list[tuple[float, float | None, int]]:
    rows = r.rows(
        conn,
        f"""SELECT {r.bucket(column, width)} AS bucket, count(*) AS n FROM {{p}}qos_samples
        WHERE day >= :start AND day <= :end AND {column} IS NOT NULL GROUP BY {r.bucket(column, width)}""",
        **window,
    )
    counts = [0] * (bins + 1)  # the last bin holds everything from bins * width up
    for row in rows:
        counts[min(max(int(_num(row["bucket"]) or 0), 0), bins)] += _int(row["n"])
    return [(i * width, (i + 1) * width if i < bins else None, n) for i, n in enumerate(counts)]


def _worst_sessions(conn: sa.Connection, r: _Reader, start: date, end: date) -> list[dict[str, Any]]:
    """Sessions started in the period, most poor samples first, then the worst p95 latency."""
    latency = r.greatest(*(f"{m}_p95_latency_ms" for m in MEDIA_TYPES))
    jitter = r.greatest(*(f"{m}_p95_jitter_ms" for m in MEDIA_TYPES))
    loss = r.greatest(*(f"{m}_p95_loss_pct" for m in MEDIA_TYPES))
    if r.dialect == "postgresql":
        bounds = {
            "start": datetime.combine(start, datetime.min.time(), UTC),
            "stop": datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC),
        }
    else:  # naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff' compares as text
        bounds = {"start": start.isoformat(), "stop": (end + timedelta(days=1)).isoformat()}
    rows = r.rows(
        conn,
        f"""SELECT session_id, session_name, start_time, users, samples, poor_share,
            {latency} AS p95_latency_ms, {jitter} AS p95_jitter_ms, {loss} AS p95_loss_pct
        FROM {{p}}session_quality
        WHERE start_time >= :start AND start_time < :stop AND poor_share IS NOT NULL
        ORDER BY poor_share DESC, {latency} DESC, session_id
        LIMIT {WORST_SESSIONS}""",
        **bounds,
    )
    for row in rows:
        for key in ("p95_latency_ms", "p95_jitter_ms", "p95_loss_pct", "poor_share"):
            value = _num(row[key])
            row[key] = None if value is None or value < 0 else value
        row["users"], row["samples"] = _int(row["users"]), _int(row["samples"])
    return rows


def _breakdowns(conn: sa.Connection, r: _Reader, window: Mapping[str, Any]) -> dict[str, list]:
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
            acc[0] += _int(row["samples"])
            acc[1] += _int(row["poor"])
            acc[2] += _int(row["rated"])
    result: dict[str, list[tuple[str, float, int]]] = {}
    for dim in dims:
        values = [
            (value, poor / rated, samples) for value, (samples, poor, rated) in sums[dim].items() if rated
        ]
        values.sort(key=lambda v: (-v[1], -v[2], v[0]))
        result[dim] = values
    return result


def _completeness(
    conn: sa.Connection, r: _Reader, window: Mapping[str, Any], days: Sequence[date]
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
        _as_date(row["usage_date"]): DayCompleteness(
            day=_as_date(row["usage_date"]),
            zoom_sessions=None if row["zoom_sessions"] is None else int(row["zoom_sessions"]),
            warehouse_sessions=_int(row["warehouse_sessions"]),
            loaded=_int(row["sessions_loaded"]),
            pending=_int(row["sessions_pending"]),
            unavailable=_int(row["sessions_unavailable"]),
        )
        for row in rows
    }
    return [by_day.get(day) or DayCompleteness(day=day, zoom_sessions=None) for day in days]


def _latest_run(conn: sa.Connection, r: _Reader) -> dict[str, Any] | None:
    rows = r.rows(
        conn,
        """SELECT run_id, outcome, health, started_at, finished_at, sessions_loaded FROM {p}run_health
        ORDER BY CASE WHEN started_at IS NULL THEN 1 ELSE 0 END, started_at DESC, run_id DESC LIMIT 1""",
    )
    return rows[0] if rows else None


# --------------------------------------------------------------------------- formatting
def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def num(value: float | None, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "–"
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".strip() if unit != "%" else f"{text}%"


def _nice_ceiling(value: float) -> float:
    """Smallest 1/2/2.5/5 × 10^k at or above ``value`` (an axis maximum)."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * exp >= value - 1e-12:
            return step * exp
    return 10 * exp


def _with_unit(value: float, unit: str) -> str:
    return f"{value:g}%" if unit == "%" else f"{value:g} {unit}"


def _bin_label(low: float, high: float | None, unit: str) -> str:
    return f"≥ {_with_unit(low, unit)}" if high is None else f"{low:g}–{_with_unit(high, unit)}"


# --------------------------------------------------------------------------- SVG charts
W = 760  # viewBox width of every chart


def _svg_open(chart_id: str, height: int, title: str, desc: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {W} {height}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc">'
        f'<title id="{chart_id}-title">{esc(title)}</title><desc id="{chart_id}-desc">{esc(desc)}</desc>'
    )


def _marker(shape: str, x: float, y: float, colour: str, tip: str) -> str:
    tip_el = f"<title>{esc(tip)}</title>"
    if shape == "square":
        return (
            f'<rect class="marker" x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" width="7" height="7" '
            f'fill="{colour}">{tip_el}</rect>'
        )
    if shape == "triangle":
        points = f"{x:.1f},{y - 4.5:.1f} {x - 4.5:.1f},{y + 3.5:.1f} {x + 4.5:.1f},{y + 3.5:.1f}"
        return f'<polygon class="marker" points="{points}" fill="{colour}">{tip_el}</polygon>'
    return f'<circle class="marker" cx="{x:.1f}" cy="{y:.1f}" r="3.8" fill="{colour}">{tip_el}</circle>'


def line_chart(
    chart_id: str,
    title: str,
    desc: str,
    days: Sequence[date],
    series: Mapping[str, Sequence[tuple[date, float | None, int]]],
) -> str:
    """Poor share per day, one line per media type; a day without data breaks the line."""
    height, left, right, top, bottom = 300, 56, 150, 16, 44
    plot_w, plot_h = W - left - right, height - top - bottom
    values = [share for points in series.values() for _, share, _ in points if share is not None]
    y_max = min(1.0, _nice_ceiling(max(values, default=0.0) * 1.05)) or 1.0
    index = {day: i for i, day in enumerate(days)}
    step = plot_w / max(len(days) - 1, 1)

    def x_of(day: date) -> float:
        return left + (index[day] * step if len(days) > 1 else plot_w / 2)

    def y_of(share: float) -> float:
        return top + plot_h - share / y_max * plot_h

    out = [_svg_open(chart_id, height, title, desc)]
    for i in range(5):  # horizontal grid and y labels
        value = y_max * i / 4
        y = y_of(value)
        out.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{pct(value, 0)}</text>'
        )
    label_every = max(1, math.ceil(len(days) / 8))
    for i, day in enumerate(days):
        if i % label_every == 0 or i == len(days) - 1 and len(days) < 8:
            out.append(
                f'<text class="tick" x="{x_of(day):.1f}" y="{top + plot_h + 18}" '
                f'text-anchor="middle">{esc(day.strftime("%m-%d"))}</text>'
            )
    out.append(
        f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>'
    )
    out.append(
        f'<text class="axis-label" x="{left + plot_w / 2:.1f}" y="{height - 4}" '
        'text-anchor="middle">UTC day</text>'
    )
    for n, (media, points) in enumerate(series.items()):
        colour, shape, dash = MEDIA_STYLE.get(media, ("#555555", "circle", ""))
        label = MEDIA_LABELS.get(media, media)
        segments: list[list[tuple[float, float]]] = [[]]
        previous: date | None = None
        for day, share, _ in points:
            if share is None or day not in index:
                segments.append([])
                continue
            if previous is not None and (day - previous).days > 1:
                segments.append([])
            segments[-1].append((x_of(day), y_of(share)))
            previous = day
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<g class="series" data-media="{esc(media)}">')
        for segment in segments:
            if len(segment) > 1:
                path = " ".join(
                    f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(segment)
                )
                out.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}/>')
        for day, share, samples in points:
            if share is not None and day in index:
                tip = f"{label}, {day.isoformat()}: {pct(share)} poor of {samples:,} samples"
                out.append(_marker(shape, x_of(day), y_of(share), colour, tip))
        out.append("</g>")
        ly = top + 10 + n * 22  # legend
        lx = left + plot_w + 16
        out.append(
            f'<line x1="{lx}" x2="{lx + 26}" y1="{ly}" y2="{ly}" stroke="{colour}" '
            f'stroke-width="2"{dash_attr}/>'
        )
        out.append(_marker(shape, lx + 13, ly, colour, label))
        out.append(f'<text class="legend" x="{lx + 32}" y="{ly + 4}">{esc(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def histogram(
    chart_id: str,
    title: str,
    desc: str,
    bins: Sequence[tuple[float, float | None, int]],
    unit: str,
    threshold: float | None,
) -> str:
    """Vertical bars per bin; bins above the poor-quality limit are drawn in a second colour."""
    height, left, right, top, bottom = 280, 64, 16, 24, 48
    plot_w, plot_h = W - left - right, height - top - bottom
    y_max = _nice_ceiling(max((n for _, _, n in bins), default=0) or 1)
    bar_w = plot_w / max(len(bins), 1)
    out = [_svg_open(chart_id, height, title, desc)]
    for i in range(5):
        value = y_max * i / 4
        y = top + plot_h - value / y_max * plot_h
        out.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{num(value)}</text>')
    label_every = max(1, math.ceil(len(bins) / 10))
    for i, (low, high, count) in enumerate(bins):
        x = left + i * bar_w
        bar_h = count / y_max * plot_h
        over = threshold is not None and low >= threshold
        colour = OVER_COLOUR if over else BAR_COLOUR
        tip = f"{_bin_label(low, high, unit)}: {count:,} samples"
        out.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{top + plot_h - bar_h:.1f}" width="{bar_w - 2:.1f}" '
            f'height="{bar_h:.1f}" fill="{colour}"><title>{esc(tip)}</title></rect>'
        )
        if i % label_every == 0 or high is None:
            text = f"≥{low:g}" if high is None else f"{low:g}"
            out.append(
                f'<text class="tick" x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                f"{esc(text)}</text>"
            )
    out.append(
        f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>'
    )
    if threshold is not None and bins:
        width = bins[0][1] - bins[0][0] if bins[0][1] is not None else 1.0
        tx = left + min(threshold / width, len(bins)) * bar_w
        out.append(f'<line class="limit" x1="{tx:.1f}" x2="{tx:.1f}" y1="{top - 8}" y2="{top + plot_h}"/>')
        out.append(
            f'<text class="limit-label" x="{tx + 4:.1f}" y="{top - 10 + 10}">'
            f"{esc('poor above ' + _with_unit(threshold, unit))}</text>"
        )
    if bins and bins[0][1] is not None:
        axis = f"{unit} (bins of {bins[0][1] - bins[0][0]:g} {unit})"
        out.append(
            f'<text class="axis-label" x="{left + plot_w / 2:.1f}" y="{height - 6}" '
            f'text-anchor="middle">{esc(axis)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def bar_chart(chart_id: str, title: str, desc: str, rows: Sequence[tuple[str, float, int]]) -> str:
    """Horizontal bars: poor share per dimension value, with the share and sample count."""
    row_h, left, right, top = 26, 190, 190, 8
    height = top * 2 + row_h * max(len(rows), 1) + 20
    plot_w = W - left - right
    x_max = min(1.0, _nice_ceiling(max((s for _, s, _ in rows), default=0.0) * 1.05)) or 1.0
    out = [_svg_open(chart_id, height, title, desc)]
    for i in range(5):
        x = left + plot_w * i / 4
        out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - 20}"/>')
        out.append(
            f'<text class="tick" x="{x:.1f}" y="{height - 6}" text-anchor="middle">'
            f"{pct(x_max * i / 4, 0)}</text>"
        )
    for i, (value, share, samples) in enumerate(rows):
        y = top + i * row_h
        shown = value if len(value) <= 26 else value[:25] + "…"
        bar = share / x_max * plot_w
        tip = f"{value}: {pct(share)} poor of {samples:,} samples"
        out.append(
            f'<text class="cat" x="{left - 8}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end">'
            f"<title>{esc(value)}</title>{esc(shown)}</text>"
        )
        out.append(
            f'<rect class="bar" x="{left}" y="{y + 4}" width="{max(bar, 1):.1f}" height="{row_h - 8}" '
            f'fill="{BAR_COLOUR}"><title>{esc(tip)}</title></rect>'
        )
        out.append(
            f'<text class="value" x="{left + bar + 6:.1f}" y="{y + row_h / 2 + 4:.1f}">'
            f"{esc(f'{pct(share)} · {samples:,} samples')}</text>"
        )
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------- HTML
#: Nothing may be loaded: no script, no network, no file; only the inline styles.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1f24;
  background: #f5f6f8; margin: 0; }
main { max-width: 980px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 0 0 6px; }
h3 { font-size: 1rem; margin: 16px 0 4px; }
.meta { color: #4a5360; margin: 0 0 16px; }
section { background: #fff; border: 1px solid #dde1e6; border-radius: 8px; padding: 16px 18px;
  margin: 16px 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; }
.card { background: #fff; border: 1px solid #dde1e6; border-radius: 8px; padding: 10px 14px; }
.card b { display: block; font-size: 1.35rem; }
.card span { color: #4a5360; font-size: .85rem; }
figure { margin: 8px 0 0; }
svg.chart { width: 100%; height: auto; display: block; }
svg .grid { stroke: #e3e6ea; stroke-width: 1; }
svg .axis { stroke: #6b7480; stroke-width: 1; }
svg .tick, svg .legend, svg .cat, svg .value, svg .axis-label, svg .limit-label {
  font-size: 12px; fill: #3a424d; }
svg .limit { stroke: #b3261e; stroke-width: 1.5; stroke-dasharray: 5 3; }
svg .limit-label { fill: #b3261e; }
.summary { margin: 6px 0 0; }
details { margin-top: 6px; }
summary { cursor: pointer; color: #1f5fa8; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; margin-top: 6px; }
th, td { border-bottom: 1px solid #e3e6ea; padding: 4px 8px; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: .85em; }
table.worst td:nth-child(3) { font-family: ui-monospace, monospace; font-size: .8rem; word-break: break-all; }
table.worst td:nth-child(4) { white-space: nowrap; }
.empty { color: #4a5360; font-style: italic; }
table.completeness tr.differs td { background: #fdf1e9; }
table.completeness tr.differs td:last-child { font-weight: 600; color: #a4400b; }
"""


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(
        f'<th scope="col"{" class=n" if i in numeric else ""}>{esc(h)}</th>' for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if i in numeric else ''}>{esc(c)}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(chart_id: str, heading: str, svg: str, summary: str, table: str) -> str:
    return (
        f'<figure id="{chart_id}" class="chart-figure"><h3 id="{chart_id}-heading">{esc(heading)}</h3>{svg}'
        f'<figcaption class="summary">{esc(summary)}</figcaption>'
        f"<details><summary>Figures of this chart</summary>{table}</details></figure>"
    )


def _trend_section(data: ReportData) -> str:
    if not data.trend:
        return '<p class="empty">No rated samples in the period.</p>'
    parts = []
    for media, points in data.trend.items():
        rated = [(day, share) for day, share, _ in points if share is not None]
        label = MEDIA_LABELS.get(media, media)
        if not rated:
            parts.append(f"{label}: no rated samples.")
            continue
        low = min(rated, key=lambda p: (p[1], p[0]))
        high = max(rated, key=lambda p: (p[1], p[0]))
        parts.append(
            f"{label}: poor share between {pct(low[1])} ({low[0].isoformat()}) and {pct(high[1])} "
            f"({high[0].isoformat()}) over {len(rated)} days; "
            f"{pct(rated[-1][1])} on {rated[-1][0].isoformat()}."
        )
    title = "Daily share of poor-quality samples per media type"
    desc = (
        "Line chart, one line per media type; x axis: UTC day, y axis: share of rated samples that were poor."
    )
    svg = line_chart("trend", title, desc, data.days, data.trend)
    table = _table(
        ["day", "media type", "poor share", "samples"],
        [
            (d.isoformat(), MEDIA_LABELS.get(m, m), pct(s), f"{n:,}")
            for m, pts in data.trend.items()
            for d, s, n in pts
        ],
        {2, 3},
    )
    return _figure("trend", title, svg, " ".join(parts), table)


def _histogram_sections(data: ReportData) -> str:
    out = []
    for column, _, label, unit, _, _ in HISTOGRAMS:
        bins = data.histograms.get(column, [])
        total = sum(n for _, _, n in bins)
        chart_id = f"hist-{column.replace('_', '-')}"
        title = f"{label} distribution ({unit})"
        if not total:
            out.append(
                f'<h3>{esc(title)}</h3><p class="empty">No {esc(label.lower())} values in the period.</p>'
            )
            continue
        peak = max(bins, key=lambda b: b[2])
        rated, over = data.totals.get(f"rated_{column}", 0), data.totals.get(f"over_{column}", 0)
        threshold = data.thresholds.get(column)
        limit_text = (
            f"the limit of {_with_unit(threshold, unit)}"
            if threshold is not None
            else "the limit of its media type (limits differ per media type)"
        )
        summary = (
            f"{label} is known for {total:,} samples; the most common range is "
            f"{_bin_label(peak[0], peak[1], unit)} ({peak[2]:,} samples). "
            f"{pct(over / rated if rated else None)} of the rated samples are above {limit_text}."
        )
        desc = (
            f"Histogram of {label.lower()} over all samples of the period; bars at or above the "
            "poor-quality limit are orange."
        )
        svg = histogram(chart_id, title, desc, bins, unit, threshold)
        table = _table(
            ["range", "samples"], [(_bin_label(lo, hi, unit), f"{n:,}") for lo, hi, n in bins], {1}
        )
        out.append(_figure(chart_id, title, svg, summary, table))
    return "".join(out)


def _worst_section(data: ReportData) -> str:
    if not data.worst:
        return '<p class="empty">No session with rated samples started in the period.</p>'
    headers = [
        "#",
        "session",
        "session id",
        "start (UTC)",
        "users",
        "samples",
        "poor share",
        "p95 latency",
        "p95 jitter",
        "p95 loss",
    ]
    rows = [
        (
            i,
            w["session_name"] or "",
            w["session_id"],
            _as_text_time(w["start_time"]),
            w["users"],
            f"{w['samples']:,}",
            pct(w["poor_share"]),
            num(w["p95_latency_ms"], "ms"),
            num(w["p95_jitter_ms"], "ms"),
            num(w["p95_loss_pct"], "%", 1),
        )
        for i, w in enumerate(data.worst, start=1)
    ]
    worst = data.worst[0]
    summary = (
        f"The {len(data.worst)} sessions started in the period with the highest share of poor samples "
        f"(ties: highest p95 latency of any media type). "
        f"Worst: “{worst['session_name'] or worst['session_id']}” with {pct(worst['poor_share'])} "
        "poor samples. p95 figures are the worst of audio, video and screen share."
    )
    return (
        f'<div id="worst-sessions"><p class="summary">{esc(summary)}</p>'
        + _table(headers, rows, {0, 4, 5, 6, 7, 8, 9}).replace("<table>", '<table class="worst">', 1)
        + "</div>"
    )


def _breakdown_sections(data: ReportData) -> str:
    out = []
    for dim, label in DIMENSIONS:
        values = data.breakdowns.get(dim, [])
        chart_id = f"breakdown-{dim.replace('_', '-')}"
        title = f"Poor share by {label.lower()}"
        if not values:
            out.append(f'<h3>{esc(title)}</h3><p class="empty">No samples with a {esc(label.lower())}.</p>')
            continue
        shown = values[:MAX_BARS]
        rest = len(values) - len(shown)
        high, low = values[0], values[-1]
        summary = (
            f"{len(values)} values. Highest poor share: {high[0]} ({pct(high[1])} of {high[2]:,} samples); "
            f"lowest: {low[0]} ({pct(low[1])} of {low[2]:,} samples)."
            + (f" The chart shows the {len(shown)} highest; {rest} more are in the table." if rest else "")
        )
        desc = (
            f"Horizontal bar chart: share of audio, video and screen-share samples rated poor, per "
            f"{label.lower()}, highest first."
        )
        svg = bar_chart(chart_id, title, desc, shown)
        table = _table(
            [label.lower(), "poor share", "samples"], [(v, pct(s), f"{n:,}") for v, s, n in values], {1, 2}
        )
        out.append(_figure(chart_id, title, svg, summary, table))
    return "".join(out)


def _differing(data: ReportData) -> list[DayCompleteness]:
    return [d for d in data.completeness if d.differs]


def _completeness_check(day: DayCompleteness) -> str:
    if day.zoom_sessions is None:
        return "not compared"
    gap = day.warehouse_sessions - day.zoom_sessions
    if not gap:
        return "matches"
    return f"differs: {abs(gap):,} {'fewer' if gap < 0 else 'more'} in the warehouse"


def _completeness_section(data: ReportData) -> str:
    """Per day: Zoom's count against the warehouse's sessions; differing days flagged in words."""
    counted = [d for d in data.completeness if d.zoom_sessions is not None]
    differing = _differing(data)
    held = sum(d.warehouse_sessions for d in data.completeness)
    loaded = sum(d.loaded for d in data.completeness)
    pending = sum(d.pending for d in data.completeness)
    unavailable = sum(d.unavailable for d in data.completeness)
    if not counted:
        parts = ["Zoom's daily count was not read for any day of the period."]
    elif differing:
        listed = "; ".join(
            f"{d.day.isoformat()} (Zoom {d.zoom_sessions:,}, warehouse {d.warehouse_sessions:,})"
            for d in differing
        )
        parts = [f"Zoom's count differs from the warehouse on {len(differing)} of the {len(counted)} "
                 f"day(s) Zoom counted: {listed}."]
    else:
        parts = [f"On each of the {len(counted)} day(s) Zoom counted, the warehouse holds as many "
                 "sessions as Zoom counted."]
    if counted and len(counted) < len(data.completeness):
        parts.append(f"Zoom's count was not read for {len(data.completeness) - len(counted)} day(s).")
    parts.append(f"The warehouse holds {held:,} session(s) of the period, {loaded:,} with QoS")
    if pending or unavailable:
        parts[-1] += (f"; {pending:,} pending (asked for again by every run) and {unavailable:,} "
                      "unavailable (Zoom will not serve their QoS)")
    parts[-1] += "."
    flagged = ' class="differs"'
    rows = "".join(
        f"<tr{flagged if d.differs else ''}><td>{esc(d.day.isoformat())}</td>"
        f"<td>{esc(d.sentence)}</td><td>{esc(_completeness_check(d))}</td></tr>"
        for d in data.completeness
    )
    table = (
        '<table class="completeness"><thead><tr><th scope="col">day</th>'
        '<th scope="col">Zoom and the warehouse</th><th scope="col">check</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )
    return f'<div id="completeness-days"><p class="summary">{esc(" ".join(parts))}</p>{table}</div>'


def render_html(data: ReportData, generated_at: datetime | None = None) -> str:
    """The whole report as one HTML document (no external reference, no script)."""
    generated_at = (generated_at or datetime.now(UTC)).astimezone(UTC)
    period = f"{data.start.isoformat()} to {data.end.isoformat()}"
    title = f"Zoom Video SDK call quality, {period}"
    totals = data.totals
    counted = any(d.zoom_sessions is not None for d in data.completeness)
    cards = [
        ("sessions with samples", f"{totals.get('sessions', 0):,}"),
        ("users", f"{totals.get('users', 0):,}"),
        ("QoS samples", f"{totals.get('samples', 0):,}"),
        ("poor share (rated samples)", pct(totals["poor"] / totals["rated"]) if totals.get("rated") else "–"),
        ("days Zoom's count differs", f"{len(_differing(data)):,}" if counted else "–"),
    ]
    run = data.latest_run
    run_text = (
        f"Latest pipeline run: {run['run_id']} — {run['health'] or run['outcome']}, "
        f"{_int(run['sessions_loaded']):,} sessions loaded, "
        f"finished {_as_text_time(run['finished_at']) or '–'} UTC."
        if run
        else "No pipeline run recorded yet."
    )
    cards_html = "".join(f'<div class="card"><b>{esc(v)}</b><span>{esc(k)}</span></div>' for k, v in cards)
    if data.has_data:
        body = f"""
<section aria-labelledby="overview-h"><h2 id="overview-h">Overview</h2>
<div class="cards">{cards_html}</div>
<p class="summary">{esc(run_text)}</p></section>
<section id="trend-section" aria-labelledby="trend-h"><h2 id="trend-h">Daily trend</h2>
{_trend_section(data)}</section>
<section id="distributions" aria-labelledby="dist-h"><h2 id="dist-h">Latency and loss distributions</h2>
{_histogram_sections(data)}</section>
<section id="worst" aria-labelledby="worst-h"><h2 id="worst-h">Worst sessions of the period</h2>
{_worst_section(data)}</section>
<section id="breakdowns" aria-labelledby="breakdown-h"><h2 id="breakdown-h">Breakdowns</h2>
{_breakdown_sections(data)}</section>"""
    else:
        body = (
            f'<section><p class="empty">The warehouse holds no QoS samples yet.</p>'
            f'<p class="summary">{esc(run_text)}</p></section>'
        )
    if data.completeness:  # last: it must not push the charts down the page
        body += f"""
<section id="completeness" aria-labelledby="completeness-h">
<h2 id="completeness-h">Completeness: Zoom's count and the warehouse</h2>
{_completeness_section(data)}</section>"""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title><style>{CSS}</style></head>
<body><main>
<h1>{esc(title)}</h1>
<p class="meta">The {esc(len(data.days))} UTC day(s) up to the newest sample in the warehouse
(at most {esc(data.requested_days)}).
A sample is poor when its latency, jitter or packet loss exceeds the limits in
<code>qos_thresholds</code>. Generated
{esc(generated_at.strftime("%Y-%m-%d %H:%M"))} UTC.</p>
{body}
</main></body></html>
"""


def build_report(
    engine_or_warehouse: Any,
    output_dir: str | Path,
    days: int = DEFAULT_DAYS,
    *,
    schema: str | None = None,
    now: datetime | None = None,
) -> Path:
    """Write the report of the last ``days`` days of data to ``output_dir``; returns its path.

    ``engine_or_warehouse`` is a :class:`~zoom_qos.load.Warehouse` or an SQLAlchemy engine
    (on PostgreSQL ``schema`` defaults to the engine's schema translation, else ``zoom_qos``).
    The file is ``zoom_qos_report_<first day>_<last day>.html``, replaced atomically, so a
    reader never sees half a report and a re-render of the same period overwrites it.
    """
    now = now or datetime.now(UTC)
    data = load_report_data(engine_or_warehouse, days, schema=schema, today=now.astimezone(UTC).date())
    document = render_html(data, generated_at=now)
    folder = Path(output_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"zoom_qos_report_{data.start.isoformat()}_{data.end.isoformat()}.html"
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(document)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path.resolve()
