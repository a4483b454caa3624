"""The SVG charts (zoom_qos.report.charts): pure functions of numbers, escaped, accessible."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from markupsafe import Markup

from tests.unit.report.reportworld import structure
from zoom_qos.report.charts import BAR_COLOUR, OVER_COLOUR, bar_chart, histogram, line_chart, nice_ceiling

DAY = date(2025, 3, 1)


@pytest.mark.parametrize(("value", "ceiling"), [
    (0, 1.0), (-3, 1.0), (0.07, 0.1), (0.11, 0.2), (0.21, 0.25), (0.3, 0.5), (1.0, 1.0), (7, 10), (130, 200),
])
def test_nice_ceiling_is_a_round_number_at_or_above(value: float, ceiling: float) -> None:
    assert nice_ceiling(value) == pytest.approx(ceiling)


def test_every_chart_is_an_accessible_image_and_markup() -> None:
    charts = {
        "c1": line_chart("c1", "T1", "D1", [DAY], {"audio": [(DAY, 0.5, 10)]}),
        "c2": histogram("c2", "T2", "D2", [(0.0, 25.0, 3), (25.0, None, 1)], "ms", 25.0),
        "c3": bar_chart("c3", "T3", "D3", [("Mac", 0.25, 8)]),
    }
    for chart_id, svg in charts.items():
        assert isinstance(svg, Markup)  # the page's template inserts it as it is
        assert svg.startswith('<svg class="chart" viewBox="0 0 760 ')
        assert f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc"' in svg
        assert f'<title id="{chart_id}-title">' in svg and f'<desc id="{chart_id}-desc">' in svg
        parsed = structure(svg)
        assert parsed.errors == [] and parsed.stack == []


def test_text_in_a_chart_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    svg = bar_chart("b", evil, evil, [(evil, 0.5, 2)])
    assert "<script" not in svg and "&lt;script&gt;" in svg


def test_a_day_without_data_breaks_the_line() -> None:
    days = [DAY + timedelta(days=i) for i in range(5)]
    points = [(days[0], 0.1, 5), (days[1], 0.2, 5), (days[2], None, 5), (days[3], 0.1, 5), (days[4], 0.3, 5)]
    svg = line_chart("t", "T", "D", days, {"audio": points, "video": [(days[0], 0.2, 1)]})
    audio = re.search(r'<g class="series" data-media="audio">.*?</g>', svg).group(0)
    assert audio.count("<path") == 2 and audio.count("<circle") == 4  # two segments, four markers
    video = re.search(r'<g class="series" data-media="video">.*?</g>', svg).group(0)
    assert "<path" not in video and video.count("<rect") == 1  # one point: a square marker, no line
    assert 'stroke-dasharray="6 3"' in svg  # video's dashes: colour is not the only cue
    assert "Audio, 2025-03-02: 20.0% poor of 5 samples" in svg


def test_histogram_bars_at_or_above_the_limit_are_the_second_colour() -> None:
    bins = [(0.0, 25.0, 10), (25.0, 50.0, 4), (50.0, None, 2)]
    svg = histogram("h", "T", "D", bins, "ms", 25.0)
    fills = re.findall(r'<rect class="bar"[^>]*fill="(#[0-9A-F]+)"', svg)
    assert fills == [BAR_COLOUR, OVER_COLOUR, OVER_COLOUR]
    assert 'class="limit"' in svg and "poor above 25 ms" in svg and "≥50" in svg
    assert 'class="limit"' not in histogram("h", "T", "D", bins, "ms", None)  # limits differ per media


def test_long_categories_are_cut_on_the_axis_but_whole_in_the_tooltip() -> None:
    name = "A data center with a very long name indeed"
    svg = bar_chart("b", "T", "D", [(name, 1.0, 3), ("short", 0.0, 1)])
    assert f"<title>{name}</title>{name[:25]}…</text>" in svg
    assert "100.0% · 3 samples" in svg and svg.count('class="bar"') == 2
