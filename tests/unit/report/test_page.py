"""The HTML page (zoom_qos.report.page and its Jinja2 templates): every chart section, the worst
sessions in order, escaped text, and nothing that loads from elsewhere."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from markupsafe import escape

from tests.unit.report.reportworld import (
    CHART_IDS,
    EVIL_DEVICE,
    EVIL_NAME,
    FETCHED,
    LAST_DAY,
    WORST_ORDER,
    add_completeness,
    cards,
    completeness_rows,
    load,
    structure,
)
from zoom_qos.report import ReportData, build_report, load_report_data, render_html
from zoom_qos.report.data import DayCompleteness
from zoom_qos.warehouse import schema as s
from zoom_qos.warehouse.store import Warehouse

TEMPLATES = resources.files("zoom_qos.report") / "templates"


# --------------------------------------------------------------------------- content
def test_every_chart_section_is_there_with_title_description_and_summary(html_text: str) -> None:
    parsed = structure(html_text)
    assert parsed.errors == [] and parsed.stack == []
    for chart_id in CHART_IDS:
        assert {chart_id, f"{chart_id}-title", f"{chart_id}-desc", f"{chart_id}-heading"} <= parsed.ids
        figure = re.search(rf'<figure id="{chart_id}".*?</figure>', html_text, re.S)
        assert figure, chart_id
        block = figure.group(0)
        assert f'aria-labelledby="{chart_id}-title {chart_id}-desc"' in block
        assert 'role="img"' in block
        assert re.search(r'<figcaption class="summary">[^<]{20,}</figcaption>', block), chart_id
        assert "<table>" in block  # the chart's figures, as text
    assert parsed.tags["svg"] == len(CHART_IDS)
    assert "worst-sessions" in parsed.ids
    # the line chart has one line per media type present (audio only here), the others bars
    trend = re.search(r'<figure id="trend".*?</figure>', html_text, re.S).group(0)
    assert 'data-media="audio"' in trend and "<path" in trend
    assert html_text.count('class="bar"') > 10
    assert cards(html_text) == {"sessions with samples": "4", "users": "5", "QoS samples": "18",
                                "poor share (rated samples)": "44.4%", "days Zoom's count differs": "–"}


def test_worst_sessions_are_listed_worst_first_and_only_from_the_period(html_text: str) -> None:
    table = re.search(r'<table class="worst">.*?</table>', html_text, re.S).group(0)
    positions = [table.find(f"<td>{sid}</td>") for sid in WORST_ORDER]
    assert all(p > 0 for p in positions), positions
    assert positions == sorted(positions)
    assert "s-old" not in html_text and "Old and bad" not in html_text
    first_row = table.split("<tr>")[2]
    assert "100.0%" in first_row and "320 ms" in first_row
    # the tie at 50% poor is broken by the p95 latency: 300 ms before 200 ms
    assert ">300 ms<" in table.split("<tr>")[3] and ">200 ms<" in table.split("<tr>")[4]


def test_text_from_the_warehouse_is_escaped(html_text: str) -> None:
    assert "<script" not in html_text.lower()
    assert "<b>Evil" not in html_text
    assert str(escape(EVIL_NAME)) in html_text and str(escape(EVIL_DEVICE)) in html_text
    text = "".join(structure(html_text).text)  # and a reader sees the names as they are
    assert EVIL_NAME in text and EVIL_DEVICE in text


def test_the_report_is_self_contained(html_text: str) -> None:
    lowered = html_text.lower()
    assert "http://" not in lowered and "https://" not in lowered
    assert not re.search(r"\b(src|href|xlink:href)\s*=", lowered)
    assert "@import" not in lowered and "url(" not in lowered
    # and a CSP forbids loading anything anyway
    assert ('<meta http-equiv="Content-Security-Policy" '
            "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">") in html_text


def test_the_templates_are_package_data_and_the_css_is_inline(html_text: str) -> None:
    """Loaded through the package (PackageLoader), so an installed wheel finds them too."""
    assert {"report.html", "macros.html", "report.css"} <= {p.name for p in TEMPLATES.iterdir()}
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    style = re.search(r"<style>(.*?)</style>", html_text, re.S).group(1)
    assert style.strip() == css.strip() and "svg.chart" in style


def test_one_day_of_data_renders(warehouse: Warehouse) -> None:
    one_day = render_html(load_report_data(warehouse, days=1))
    assert "s-bad" in one_day and "s-good" not in one_day and structure(one_day).errors == []
    assert "The 1 UTC day(s) up to the newest sample in the warehouse\n(at most 1)." in one_day


def test_an_empty_warehouse_gives_a_report_that_says_so(tmp_path: Path) -> None:
    wh = Warehouse(f"sqlite:///{tmp_path / 'empty.db'}")
    wh.ensure_schema()
    try:
        path = build_report(wh, tmp_path, now=datetime(2025, 5, 2, 8, tzinfo=UTC))
    finally:
        wh.dispose()
    text = path.read_text(encoding="utf-8")
    assert path.name == "zoom_qos_report_2025-04-03_2025-05-02.html"
    assert "holds no QoS samples yet" in text and structure(text).errors == []
    assert "No pipeline run recorded yet." in text and "Generated\n2025-05-02 08:00 UTC." in text
    assert 'id="completeness"' not in text  # without counts or sessions there is nothing to compare


def test_rendering_without_rated_samples_does_not_fail() -> None:
    data = ReportData(start=date(2025, 1, 1), end=date(2025, 1, 30), has_data=True,
                      totals={"sessions": 1, "samples": 0, "poor": 0, "rated": 0})
    text = render_html(data)
    assert "No rated samples in the period" in text and structure(text).errors == []
    assert "No latency values in the period." in text and "No samples with a device." in text
    assert "No session with rated samples started in the period." in text
    assert cards(text)["poor share (rated samples)"] == "–"


def test_the_latest_run_is_said_in_words() -> None:
    data = ReportData(start=date(2025, 1, 1), end=date(2025, 1, 1), has_data=False, latest_run={
        "run_id": "scheduled__<x>", "outcome": "success", "health": None, "sessions_loaded": 1234,
        "finished_at": datetime(2025, 1, 1, 3, 4, 5, tzinfo=UTC)})
    text = render_html(data)
    assert ("Latest pipeline run: scheduled__&lt;x&gt; — success, 1,234 sessions loaded, "
            "finished 2025-01-01 03:04 UTC.") in text


def test_a_degraded_latest_run_says_why() -> None:
    data = ReportData(start=date(2025, 1, 1), end=date(2025, 1, 1), has_data=False, latest_run={
        "run_id": "r1", "outcome": "success", "health": "degraded",
        "health_reason": "1,074 values could not be parsed", "sessions_loaded": 3,
        "finished_at": datetime(2025, 1, 1, 3, 4, 5, tzinfo=UTC)})
    assert ("Latest pipeline run: r1 — degraded (1,074 values could not be parsed), 3 sessions "
            "loaded") in render_html(data)


# --------------------------------------------------------------------------- completeness
def test_completeness_says_per_day_what_zoom_counted_and_what_the_warehouse_holds(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    add_completeness(warehouse)
    text = build_report(warehouse, tmp_path, days=30).read_text(encoding="utf-8")
    parsed = structure(text)
    assert parsed.errors == [] and parsed.stack == [] and "completeness" in parsed.ids
    assert text.index('id="breakdowns"') < text.index('id="completeness"')  # last: charts stay on top
    rows = completeness_rows(text)
    assert len(rows) == 30 and sorted(rows)[0] == (LAST_DAY - timedelta(days=29)).isoformat()
    day = {n: (LAST_DAY - timedelta(days=n)).isoformat() for n in range(6)}
    assert rows[day[0]] == (
        "", "Zoom counted 1 session on this day, the warehouse holds 1, 1 of them with QoS.", "matches")
    assert rows[day[1]] == (
        "differs",
        "Zoom counted 3 sessions on this day, the warehouse holds 2, 1 of them with QoS (1 pending).",
        "differs: 1 fewer in the warehouse",
    )
    assert rows[day[2]] == (
        "", "Zoom's count of this day was not read; the warehouse holds 2, 2 of them with QoS.",
        "not compared")
    assert rows[day[5]][1:] == ("Zoom counted 0 sessions on this day, the warehouse holds 0.", "matches")
    assert rows[day[4]][1:] == (
        "Zoom's count of this day was not read; the warehouse holds 0.", "not compared")
    assert [d for d, (cls, _, _) in rows.items() if cls] == [day[1]]
    summary = re.search(r'<div id="completeness-days"><p class="summary">(.*?)</p>', text).group(1)
    assert f"differs from the warehouse on 1 of the 3 day(s) Zoom counted: {day[1]} (Zoom 3, warehouse 2)." \
        in summary
    assert "1 pending (asked for again by every run) and 0 unavailable" in summary
    assert cards(text)["days Zoom's count differs"] == "1"


def test_more_sessions_in_the_warehouse_than_zoom_counted_are_flagged_too() -> None:
    day = date(2025, 1, 1)
    data = ReportData(start=day, end=day, has_data=False, completeness=[
        DayCompleteness(day, zoom_sessions=1, warehouse_sessions=3, loaded=1, pending=1, unavailable=1)])
    rows = completeness_rows(render_html(data))
    assert rows[day.isoformat()] == (
        "differs",
        "Zoom counted 1 session on this day, the warehouse holds 3, 1 of them with QoS "
        "(1 pending, 1 unavailable).",
        "differs: 2 more in the warehouse",
    )


def test_sessions_without_zoom_counts_say_so(tmp_path: Path) -> None:
    wh = Warehouse(f"sqlite:///{tmp_path / 'one.db'}")
    wh.ensure_schema()
    try:
        load(wh, "s-good")
        data = load_report_data(wh, days=3)
    finally:
        wh.dispose()
    text = render_html(data)
    assert "Zoom&#39;s daily count was not read for any day of the period." in text
    assert cards(text)["days Zoom's count differs"] == "–"
    assert completeness_rows(text)[data.end.isoformat()][2] == "not compared"


def test_a_warehouse_of_pending_sessions_reports_them(tmp_path: Path) -> None:
    """No sample yet (every QoS still pending), but Zoom's count and the pending sessions show."""
    wh = Warehouse(f"sqlite:///{tmp_path / 'pending.db'}")
    wh.ensure_schema()
    day = date(2025, 5, 1)
    try:
        with wh.engine.begin() as conn:
            conn.execute(sa.insert(s.sessions), [
                {"session_id": f"p{n}", "start_time": datetime(2025, 5, 1, 9 + n, tzinfo=UTC),
                 "qos_status": "pending", "loaded_at": FETCHED} for n in range(2)])
            conn.execute(sa.insert(s.daily_usage), [
                {"usage_date": day, "sessions": 2, "users": 4, "session_minutes": 90, "fetched_at": FETCHED}])
        text = build_report(wh, tmp_path, now=datetime(2025, 5, 2, 8, tzinfo=UTC)).read_text(encoding="utf-8")
    finally:
        wh.dispose()
    assert "holds no QoS samples yet" in text and structure(text).errors == []
    assert completeness_rows(text)[day.isoformat()] == (
        "", "Zoom counted 2 sessions on this day, the warehouse holds 2, 0 of them with QoS (2 pending).",
        "matches")
