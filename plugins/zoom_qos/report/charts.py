"""The report's charts as inline SVG: pure functions of numbers and labels, returning markup.

Inline SVG, not an image or a charting library: the page must load nothing (its
Content-Security-Policy forbids it) and still work from a file opened offline. Every chart is
``role="img"`` with a ``<title>`` and ``<desc>`` it is labelled by, and every mark has a tooltip
``<title>`` with its figure. Colours are Okabe–Ito (distinguishable with colour-vision
deficiencies); each line also has its own marker shape and dash pattern, so colour is never the
only cue. Text is escaped here (the result is :class:`~markupsafe.Markup`, which the page's
template inserts as it is).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date

from markupsafe import Markup, escape

from zoom_qos.report.format import bin_label, num, pct, with_unit

__all__ = [
    "BAR_COLOUR",
    "MEDIA_LABELS",
    "MEDIA_STYLE",
    "OVER_COLOUR",
    "WIDTH",
    "bar_chart",
    "histogram",
    "line_chart",
    "nice_ceiling",
]

WIDTH = 760  # viewBox width of every chart; the page scales it to the column
MEDIA_LABELS = {"audio": "Audio", "video": "Video", "screen_share": "Screen share"}
#: media type -> (colour, marker shape, stroke-dasharray)
MEDIA_STYLE = {
    "audio": ("#0072B2", "circle", ""),
    "video": ("#E69F00", "square", "6 3"),
    "screen_share": ("#009E73", "triangle", "2 3"),
}
BAR_COLOUR = "#0072B2"
OVER_COLOUR = "#D55E00"  # histogram bins at or above the poor-quality limit

#: (day, poor share or None when no sample was rated, samples)
TrendPoint = tuple[date, float | None, int]
#: (low edge, high edge or None for the open last bin, count)
Bin = tuple[float, float | None, int]
#: (category, poor share, samples)
Bar = tuple[str, float, int]


def nice_ceiling(value: float) -> float:
    """Smallest 1/2/2.5/5 × 10^k at or above ``value``: an axis maximum a reader can divide."""
    if value <= 0:
        return 1.0
    exp = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * exp >= value - 1e-12:
            return step * exp
    return 10 * exp


def _svg_open(chart_id: str, height: int, title: str, desc: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>'
    )


def _marker(shape: str, x: float, y: float, colour: str, tip: str) -> str:
    tip_el = f"<title>{escape(tip)}</title>"
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
    chart_id: str, title: str, desc: str, days: Sequence[date], series: Mapping[str, Sequence[TrendPoint]]
) -> Markup:
    """Poor share per day, one line per media type; a day without data breaks the line.

    ``days`` is the x axis (every day of the period, so gaps show as gaps); points on a day not in
    it are left out.
    """
    height, left, right, top, bottom = 300, 56, 150, 16, 44
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    values = [share for points in series.values() for _, share, _ in points if share is not None]
    y_max = min(1.0, nice_ceiling(max(values, default=0.0) * 1.05)) or 1.0
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
                f'text-anchor="middle">{escape(day.strftime("%m-%d"))}</text>'
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
        out.append(f'<g class="series" data-media="{escape(media)}">')
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
        out.append(f'<text class="legend" x="{lx + 32}" y="{ly + 4}">{escape(label)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def histogram(
    chart_id: str, title: str, desc: str, bins: Sequence[Bin], unit: str, threshold: float | None
) -> Markup:
    """Vertical bars per bin; bins at or above the poor-quality limit are drawn in a second colour.

    The bins are of equal width (the first one's), the last one open; ``threshold`` (None when the
    limit differs per media type) also draws a dashed limit line.
    """
    height, left, right, top, bottom = 280, 64, 16, 24, 48
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    y_max = nice_ceiling(max((n for _, _, n in bins), default=0) or 1)
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
        tip = f"{bin_label(low, high, unit)}: {count:,} samples"
        out.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{top + plot_h - bar_h:.1f}" width="{bar_w - 2:.1f}" '
            f'height="{bar_h:.1f}" fill="{colour}"><title>{escape(tip)}</title></rect>'
        )
        if i % label_every == 0 or high is None:
            text = f"≥{low:g}" if high is None else f"{low:g}"
            out.append(
                f'<text class="tick" x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                f"{escape(text)}</text>"
            )
    out.append(
        f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>'
    )
    if threshold is not None and bins:
        first_high = bins[0][1]
        width = first_high - bins[0][0] if first_high is not None else 1.0
        tx = left + min(threshold / width, len(bins)) * bar_w
        out.append(f'<line class="limit" x1="{tx:.1f}" x2="{tx:.1f}" y1="{top - 8}" y2="{top + plot_h}"/>')
        out.append(
            f'<text class="limit-label" x="{tx + 4:.1f}" y="{top}">'
            f"{escape('poor above ' + with_unit(threshold, unit))}</text>"
        )
    if bins and bins[0][1] is not None:
        axis = f"{unit} (bins of {bins[0][1] - bins[0][0]:g} {unit})"
        out.append(
            f'<text class="axis-label" x="{left + plot_w / 2:.1f}" y="{height - 6}" '
            f'text-anchor="middle">{escape(axis)}</text>'
        )
    out.append("</svg>")
    return Markup("".join(out))


def bar_chart(chart_id: str, title: str, desc: str, rows: Sequence[Bar]) -> Markup:
    """Horizontal bars: poor share per category, labelled with the share and sample count.

    Long category names are cut to 26 characters on the axis (the full name is the tooltip).
    """
    row_h, left, right, top = 26, 190, 190, 8
    height = top * 2 + row_h * max(len(rows), 1) + 20
    plot_w = WIDTH - left - right
    x_max = min(1.0, nice_ceiling(max((s for _, s, _ in rows), default=0.0) * 1.05)) or 1.0
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
            f"<title>{escape(value)}</title>{escape(shown)}</text>"
        )
        out.append(
            f'<rect class="bar" x="{left}" y="{y + 4}" width="{max(bar, 1):.1f}" height="{row_h - 8}" '
            f'fill="{BAR_COLOUR}"><title>{escape(tip)}</title></rect>'
        )
        out.append(
            f'<text class="value" x="{left + bar + 6:.1f}" y="{y + row_h / 2 + 4:.1f}">'
            f"{escape(f'{pct(share)} · {samples:,} samples')}</text>"
        )
    out.append("</svg>")
    return Markup("".join(out))
