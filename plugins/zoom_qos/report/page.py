"""The report's HTML page: what each section says, rendered by the Jinja2 template ``report.html``.

The page is ONE self-contained file: inline CSS (``templates/report.css``), charts as inline SVG
(:mod:`zoom_qos.report.charts`), no script and no external reference (the template's
Content-Security-Policy forbids loading anything). Every chart has a title, a description, a text
summary and its numbers in a table, for screen readers and for anyone who wants the figures.

Python decides what is said (the prose of each summary, the rows of each table, see
:class:`Chart`); the template decides where it goes and escapes it (autoescape is on: every text
from the warehouse, session names included, is data, never markup). The templates are package
data loaded through :class:`jinja2.PackageLoader`, so the page renders from a source checkout and
from an installed wheel alike.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import jinja2
from markupsafe import Markup

from zoom_qos.report.charts import MEDIA_LABELS, bar_chart, histogram, line_chart
from zoom_qos.report.data import DIMENSIONS, HISTOGRAMS, DayCompleteness, ReportData
from zoom_qos.report.format import MISSING, bin_label, num, pct, text_time, with_unit
from zoom_qos.warehouse.live import LIVE_WINDOW_MINUTES
from zoom_qos.warehouse.scoring import CAUSES

__all__ = ["MAX_BARS", "TEMPLATE", "Chart", "Table", "render_html"]

TEMPLATE = "report.html"
MAX_BARS = 12  # bars per breakdown chart; the table lists every value


@dataclass(frozen=True)
class Table:
    """A table of figures, as text; the columns in ``numeric`` are right-aligned."""

    headers: Sequence[str]
    rows: Sequence[Sequence[object]]
    numeric: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Chart:
    """A chart's figure (id, heading, SVG, summary, table), or, with ``empty``, why there is none."""

    id: str
    heading: str | None
    svg: Markup = Markup("")
    summary: str = ""
    table: Table = field(default_factory=lambda: Table((), ()))
    empty: str | None = None


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("zoom_qos.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the render, not the reader
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_html(data: ReportData, generated_at: datetime | None = None) -> str:
    """The whole report as one HTML document (no external reference, no script)."""
    generated_at = (generated_at or datetime.now(UTC)).astimezone(UTC)
    counted = any(d.zoom_sessions is not None for d in data.completeness)
    totals = data.totals
    rated = totals.get("rated", 0)
    cards = [
        ("sessions with samples", f"{totals.get('sessions', 0):,}"),
        ("users", f"{totals.get('users', 0):,}"),
        ("QoS samples", f"{totals.get('samples', 0):,}"),
        ("poor share (rated samples)", pct(totals.get("poor", 0) / rated) if rated else MISSING),
        ("days Zoom's count differs", f"{len(_differing(data)):,}" if counted else MISSING),
    ]
    return _environment().get_template(TEMPLATE).render(
        title=f"Zoom Video SDK call quality, {data.start.isoformat()} to {data.end.isoformat()}",
        days=len(data.days),
        requested_days=data.requested_days,
        generated_at=generated_at.strftime("%Y-%m-%d %H:%M"),
        has_data=data.has_data,
        cards=cards,
        run_text=_run_text(data),
        trend=_trend_chart(data),
        histograms=_histogram_charts(data),
        worst=_worst_table(data),
        worst_summary=_worst_summary(data),
        worst_joins=_worst_joins_table(data),
        worst_joins_summary=_worst_joins_summary(data),
        causes=_causes_table(data),
        causes_summary=_causes_summary(data),
        breakdowns=_breakdown_charts(data),
        completeness=[(d, _day_sentence(d), _day_check(d)) for d in data.completeness],
        completeness_summary=_completeness_summary(data),
        live=_live_table(data),
        live_summary=_live_summary(data),
        flagged=_flagged_table(data),
    )


def _live_table(data: ReportData) -> Table:
    """The joins of sessions in progress, worst first, with an open alert marked."""
    alerted = {(a["session_id"], a["user_id"], a["media_type"]) for a in data.live_alerts}
    headers = ["session", "user", "joined (UTC)", "media", "rated samples", "poor share", "latest sample",
               "alert"]
    rows = [
        (
            j["session_name"] or j["session_id"],
            j["user_name"] or j["user_id"],
            text_time(j["join_time"]),
            str(j["media_type"]).replace("_", " "),
            f"{j['rated_samples']:,}",
            pct(j["poor_share"]) if j["poor_share"] is not None else MISSING,
            text_time(j["last_sampled_at"]),
            "open" if (j["session_id"], j["user_id"], j["media_type"]) in alerted else "",
        )
        for j in data.live
    ]
    return Table(headers, rows, frozenset({4, 5}))


def _flagged_table(data: ReportData) -> Table:
    """Sessions flagged by Zoom's own alerts (session.alert) beside those our live alerts flagged."""
    headers = ["session", "Zoom alerted", "Zoom's issues (latest)", "first Zoom alert", "we alerted",
               "our first alert"]
    rows = [
        (
            f["session_name"] or f["session_id"],
            f"{f['zoom_alerts']:,}" if f["flagged_by_zoom"] else "no",
            f["zoom_last_issues"] or "",
            text_time(f["zoom_first_alert_at"]),
            f"{f['our_alerts']:,}" if f["flagged_by_us"] else "no",
            text_time(f["our_first_alert_at"]),
        )
        for f in data.flagged
    ]
    return Table(headers, rows)


def _live_summary(data: ReportData) -> str:
    sessions = {j["session_id"] for j in data.live}
    return (f"{len(sessions):,} session(s) in progress at the last live poll, {len(data.live):,} join and "
            f"media row(s); {len(data.live_alerts):,} alert(s) open. Poor share over each join's last "
            f"{LIVE_WINDOW_MINUTES} minutes of samples (the view live_session_quality); these samples "
            "are not in the daily figures.")


def _run_text(data: ReportData) -> str:
    run = data.latest_run
    if not run:
        return "No pipeline run recorded yet."
    health = run["health"] or run["outcome"]
    if run.get("health_reason"):  # a degraded run says why
        health = f"{health} ({run['health_reason']})"
    return (
        f"Latest pipeline run: {run['run_id']} — {health}, "
        f"{int(run['sessions_loaded'] or 0):,} sessions loaded, "
        f"finished {text_time(run['finished_at']) or MISSING} UTC."
    )


def _trend_chart(data: ReportData) -> Chart:
    if not data.trend:
        return Chart("trend", None, empty="No rated samples in the period.")
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
    rows = [
        (d.isoformat(), MEDIA_LABELS.get(m, m), pct(s), f"{n:,}")
        for m, pts in data.trend.items()
        for d, s, n in pts
    ]
    return Chart(
        "trend",
        title,
        line_chart("trend", title, desc, data.days, data.trend),
        " ".join(parts),
        Table(["day", "media type", "poor share", "samples"], rows, frozenset({2, 3})),
    )


def _histogram_charts(data: ReportData) -> list[Chart]:
    charts = []
    for h in HISTOGRAMS:
        bins = data.histograms.get(h.column, [])
        total = sum(n for _, _, n in bins)
        chart_id = f"hist-{h.column.replace('_', '-')}"
        title = f"{h.label} distribution ({h.unit})"
        if not total:
            charts.append(Chart(chart_id, title, empty=f"No {h.label.lower()} values in the period."))
            continue
        peak = max(bins, key=lambda b: b[2])
        rated, over = data.totals.get(f"rated_{h.column}", 0), data.totals.get(f"over_{h.column}", 0)
        threshold = data.thresholds.get(h.column)
        limit_text = (
            f"the limit of {with_unit(threshold, h.unit)}"
            if threshold is not None
            else "the limit of its media type (limits differ per media type)"
        )
        summary = (
            f"{h.label} is known for {total:,} samples; the most common range is "
            f"{bin_label(peak[0], peak[1], h.unit)} ({peak[2]:,} samples). "
            f"{pct(over / rated if rated else None)} of the rated samples are above {limit_text}."
        )
        desc = (
            f"Histogram of {h.label.lower()} over all samples of the period; bars at or above the "
            "poor-quality limit are orange."
        )
        rows = [(bin_label(lo, hi, h.unit), f"{n:,}") for lo, hi, n in bins]
        charts.append(Chart(
            chart_id,
            title,
            histogram(chart_id, title, desc, bins, h.unit, threshold),
            summary,
            Table(["range", "samples"], rows, frozenset({1})),
        ))
    return charts


def _worst_table(data: ReportData) -> Table:
    headers = ["#", "session", "session id", "start (UTC)", "users", "samples", "poor share",
               "p95 latency", "p95 jitter", "p95 loss", "audio MOS", "main cause"]
    rows = [
        (
            i,
            w["session_name"] or "",
            w["session_id"],
            text_time(w["start_time"]),
            w["users"],
            f"{w['samples']:,}",
            pct(w["poor_share"]),
            num(w["p95_latency_ms"], "ms"),
            num(w["p95_jitter_ms"], "ms"),
            num(w["p95_loss_pct"], "%", 1),
            num(w["audio_mos"], "", 2),
            (w["main_cause"] or "").replace("_", " "),
        )
        for i, w in enumerate(data.worst, start=1)
    ]
    return Table(headers, rows, frozenset({0, 4, 5, 6, 7, 8, 9, 10}))


def _worst_joins_table(data: ReportData) -> Table:
    headers = ["#", "session", "user", "joined (UTC)", "media", "cause", "heard from", "issues",
               "send poor", "receive poor", "MOS heard"]
    rows = [
        (
            i,
            j["session_name"] or j["session_id"],
            j["user_name"] or j["user_id"],
            text_time(j["join_time"]),
            MEDIA_LABELS.get(j["media_type"], j["media_type"]),
            j["cause"].replace("_", " "),
            (j["cause_user_name"] or j["cause_user_id"]) if j["cause_user_id"] else "",
            j["issues"].replace(",", ", ").replace("_", " "),
            pct(j["send_poor_share"]),
            pct(j["receive_poor_share"]),
            num(j["avg_mos_receive"], "", 2),
        )
        for i, j in enumerate(data.worst_joins, start=1)
    ]
    return Table(headers, rows, frozenset({0, 8, 9, 10}))


def _worst_joins_summary(data: ReportData) -> str:
    if not data.worst_joins:
        return ""
    causes: dict[str, int] = {}
    for j in data.worst_joins:
        causes[j["cause"]] = causes.get(j["cause"], 0) + 1
    top = max(causes, key=lambda c: causes[c])
    return (
        f"The {len(data.worst_joins)} joins of the period with the highest poor share on either side, "
        f"with the cause our rules found (docs/quality.md) and the issues raised; most often: "
        f"{top.replace('_', ' ')} ({causes[top]} of them). “heard from” names the participant whose "
        "poor uplink a remote_sender join heard; “MOS heard” is the mean audio MOS received (1 to 4.5)."
    )


def _causes_table(data: ReportData) -> Table:
    """One row per day and media type, a column per cause found in the period."""
    present = [c for c in CAUSES if any(row["cause"] == c for row in data.causes)]
    cells: dict[tuple[object, str], dict[str, int]] = {}
    for row in data.causes:
        cells.setdefault((row["day"], row["media_type"]), {})[row["cause"]] = row["joins"]
    rows = [
        (str(day), MEDIA_LABELS.get(media, media), *(f"{counts.get(c, 0):,}" for c in present))
        for (day, media), counts in cells.items()
    ]
    return Table(["day", "media", *(c.replace("_", " ") for c in present)], rows,
                 frozenset(range(2, 2 + len(present))))


def _causes_summary(data: ReportData) -> str:
    if not data.causes:
        return ""
    totals: dict[str, int] = {}
    for row in data.causes:
        totals[row["cause"]] = totals.get(row["cause"], 0) + row["joins"]
    parts = ", ".join(f"{c.replace('_', ' ')} {totals[c]:,}" for c in CAUSES if c in totals)
    return (f"Poor joins of the period by cause (a join poor in audio and video counts in each): {parts}. "
            "Days are the UTC days the joins started.")


def _worst_summary(data: ReportData) -> str:
    if not data.worst:
        return ""
    worst = data.worst[0]
    return (
        f"The {len(data.worst)} sessions started in the period with the highest share of poor samples "
        f"(ties: highest p95 latency of any media type). "
        f"Worst: “{worst['session_name'] or worst['session_id']}” with {pct(worst['poor_share'])} "
        "poor samples. p95 figures are the worst of audio, video and screen share."
    )


def _breakdown_charts(data: ReportData) -> list[Chart]:
    charts = []
    for dim, label in DIMENSIONS:
        values = data.breakdowns.get(dim, [])
        chart_id = f"breakdown-{dim.replace('_', '-')}"
        title = f"Poor share by {label.lower()}"
        if not values:
            charts.append(Chart(chart_id, title, empty=f"No samples with a {label.lower()}."))
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
        rows = [(v, pct(s), f"{n:,}") for v, s, n in values]
        charts.append(Chart(
            chart_id,
            title,
            bar_chart(chart_id, title, desc, shown),
            summary,
            Table([label.lower(), "poor share", "samples"], rows, frozenset({1, 2})),
        ))
    return charts


def _differing(data: ReportData) -> list[DayCompleteness]:
    return [d for d in data.completeness if d.differs]


def _day_sentence(day: DayCompleteness) -> str:
    """What the day's completeness row says, in words (its figures, for every reader)."""
    held = f"the warehouse holds {day.warehouse_sessions:,}"
    if day.warehouse_sessions:
        held += f", {day.loaded:,} of them with QoS"
    without = ((day.pending, "pending"), (day.unavailable, "unavailable"))
    rest = [f"{n:,} {label}" for n, label in without if n]
    if rest:
        held += f" ({', '.join(rest)})"
    if day.zoom_sessions is None:
        return f"Zoom's count of this day was not read; {held}."
    noun = "session" if day.zoom_sessions == 1 else "sessions"
    return f"Zoom counted {day.zoom_sessions:,} {noun} on this day, {held}."


def _day_check(day: DayCompleteness) -> str:
    if day.zoom_sessions is None:
        return "not compared"
    gap = day.warehouse_sessions - day.zoom_sessions
    if not gap:
        return "matches"
    return f"differs: {abs(gap):,} {'fewer' if gap < 0 else 'more'} in the warehouse"


def _completeness_summary(data: ReportData) -> str:
    """Zoom's count against the warehouse's sessions over the period; differing days named."""
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
    stock = f"The warehouse holds {held:,} session(s) of the period, {loaded:,} with QoS"
    if pending or unavailable:
        stock += (f"; {pending:,} pending (asked for again by every run) and {unavailable:,} "
                  "unavailable (Zoom will not serve their QoS)")
    parts.append(stock + ".")
    return " ".join(parts)
