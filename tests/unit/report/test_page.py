"""The QoS report (zoom_qos.report.page), its CLI and the asset wiring of the two DAGs.

A small warehouse (SQLite, and PostgreSQL where it runs) with sessions whose poor shares are
known: the report must show every chart section, the worst sessions in order, the figures of
the BI views, escaped text, and nothing that loads from elsewhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from zoom_qos.report.page import build_report, load_report_data, render_html
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.warehouse import schema as s
from zoom_qos.warehouse.loader import Warehouse

LAST_DAY = date(2025, 3, 20)
EVIL_NAME = '<script>alert("x")</script> & "Co"'
EVIL_DEVICE = "<b>Evil</b> device"
CHART_IDS = (
    "trend",
    "hist-latency-ms",
    "hist-avg-loss-pct",
    "breakdown-device",
    "breakdown-network-type",
    "breakdown-data-center",
)


def at(day: date, hour: int, minute: int = 0) -> str:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def zoom_session(sid: str, name: str, day: date, users: int = 1) -> dict[str, Any]:
    return {"id": sid, "session_name": name, "start_time": at(day, 10), "end_time": at(day, 11),
            "duration": "01:00:00", "user_count": users}


def zoom_user(uid: str, day: date, latencies: list[int], device: str = "Mac", network: str = "Wifi",
              data_center: str = "EU (Frankfurt)", loss: str = "0.1%") -> dict[str, Any]:
    """One join with one audio sample per latency (over 150 ms is poor; jitter and loss are fine)."""
    samples = [
        {"date_time": at(day, 10, minute + 1),
         "audio_input": {"bitrate": "40 kbps", "latency": f"{latency} ms", "jitter": "5 ms",
                         "avg_loss": loss, "max_loss": "1%"}}
        for minute, latency in enumerate(latencies)
    ]
    return {"id": uid, "name": "Ada", "join_time": at(day, 10), "leave_time": at(day, 10, 59),
            "device": device, "network_type": network, "data_center": data_center, "user_qos": samples}


# session id -> (session, users); poor shares 1.0, 0.5 (p95 300 ms), 0.5 (p95 200 ms), 0.0
SESSIONS = {
    "s-bad": (zoom_session("s-bad", EVIL_NAME, LAST_DAY), [
        zoom_user("u1", LAST_DAY, [300, 320, 310, 305], device=EVIL_DEVICE, network="Cellular",
                  loss="3.5%")]),
    "s-mid-high": (zoom_session("s-mid-high", "Mid high", LAST_DAY - timedelta(days=1)), [
        zoom_user("u2", LAST_DAY - timedelta(days=1), [100, 300, 120, 300])]),
    "s-mid-low": (zoom_session("s-mid-low", "Mid low", LAST_DAY - timedelta(days=2)), [
        zoom_user("u3", LAST_DAY - timedelta(days=2), [100, 200, 110, 200], device="Windows",
                  network="Wired")]),
    "s-good": (zoom_session("s-good", "All good", LAST_DAY - timedelta(days=2), users=2), [
        zoom_user("u4", LAST_DAY - timedelta(days=2), [40, 50, 60, 70], device="Windows", network="Wired"),
        zoom_user("u5", LAST_DAY - timedelta(days=2), [45, 55], data_center="US (NY)")]),
    # 40 days before the newest data: outside a 30-day report
    "s-old": (zoom_session("s-old", "Old and bad", LAST_DAY - timedelta(days=40)), [
        zoom_user("u6", LAST_DAY - timedelta(days=40), [900, 900, 900])]),
}
WORST_ORDER = ["s-bad", "s-mid-high", "s-mid-low", "s-good"]


@pytest.fixture()
def warehouse(warehouse_url: URL) -> Iterator[Warehouse]:
    wh = Warehouse(warehouse_url)
    wh.ensure_schema()
    for session, users in SESSIONS.values():
        assert wh.load_session(session, users, ParseIssues()).loaded
    yield wh
    wh.dispose()


@pytest.fixture()
def html_text(warehouse: Warehouse, tmp_path: Path) -> str:
    path = build_report(warehouse, tmp_path / "reports", days=30)
    assert path.parent == (tmp_path / "reports").resolve()
    assert path.name == f"zoom_qos_report_{LAST_DAY - timedelta(days=29)}_{LAST_DAY}.html"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # one file, no leftovers
    return path.read_text(encoding="utf-8")


class _Structure(HTMLParser):
    """Tags, ids and attributes seen, and whether every element closes."""

    VOID = {"meta", "br", "img", "hr", "input", "link", "line", "rect", "circle", "path", "polygon"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.ids: set[str] = set()
        self.tags: dict[str, int] = {}
        self.attrs: list[tuple[str, str | None]] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs += attrs
        self.ids.update(v for k, v in attrs if k == "id" and v)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs += attrs

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def structure(text: str) -> _Structure:
    parser = _Structure()
    parser.feed(text)
    parser.close()
    return parser


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
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;Co&quot;" in html_text
    assert "&lt;b&gt;Evil&lt;/b&gt; device" in html_text


def test_the_report_is_self_contained(html_text: str) -> None:
    lowered = html_text.lower()
    assert "http://" not in lowered and "https://" not in lowered
    assert not re.search(r"\b(src|href|xlink:href)\s*=", lowered)
    assert "@import" not in lowered and "url(" not in lowered
    assert "default-src 'none'" in html_text  # and a CSP forbids loading anything anyway


def test_figures_match_the_bi_views(warehouse: Warehouse) -> None:
    data = load_report_data(warehouse, days=30)
    assert (data.start, data.end) == (LAST_DAY - timedelta(days=29), LAST_DAY)
    prefix = f'"{warehouse.schema}".' if warehouse.schema else ""
    with warehouse.engine.connect() as conn:
        daily = conn.execute(sa.text(
            f"SELECT day, media_type, samples, poor_share FROM {prefix}daily_quality")).mappings().all()
        breakdown = conn.execute(sa.text(
            f"SELECT dimension, dimension_value, sum(samples) AS samples, sum(poor_samples) AS poor "
            f"FROM {prefix}daily_quality_breakdown WHERE day >= :start "
            "GROUP BY dimension, dimension_value"),
            {"start": data.start if warehouse.dialect == "postgresql" else data.start.isoformat()},
        ).mappings().all()
    in_period = {(str(r["day"])[:10], r["media_type"]): (float(r["poor_share"]), int(r["samples"]))
                 for r in daily if str(r["day"])[:10] >= data.start.isoformat()}
    shown = {(d.isoformat(), media): (share, samples)
             for media, points in data.trend.items() for d, share, samples in points}
    assert shown.keys() == in_period.keys()
    for key, (share, samples) in in_period.items():
        assert shown[key] == (pytest.approx(share), samples)
    # every sample here is rated, so the view's poor_samples / samples is the period's share
    for row in breakdown:
        values = {v: (share, n) for v, share, n in data.breakdowns[row["dimension"]]}
        assert values[row["dimension_value"]] == (pytest.approx(int(row["poor"]) / int(row["samples"])),
                                                  int(row["samples"]))
    assert data.breakdowns["device"][0][0] == EVIL_DEVICE  # 100% poor: first bar
    assert data.totals["sessions"] == 4 and data.totals["samples"] == 18
    assert data.totals["poor"] == 4 + 2 + 2
    assert data.totals["over_latency_ms"] == 8 and data.totals["over_avg_loss_pct"] == 4
    latency = dict(((low, n) for low, _, n in data.histograms["latency_ms"]))
    assert latency[300.0] == 4 + 2 and sum(latency.values()) == 18
    assert data.thresholds == {"latency_ms": 150.0, "avg_loss_pct": 2.0}


def test_the_window_ends_with_the_newest_data_and_starts_no_earlier_than_the_oldest(
    warehouse: Warehouse,
) -> None:
    data = load_report_data(warehouse, days=2)
    assert (data.start, data.end) == (LAST_DAY - timedelta(days=1), LAST_DAY)
    assert [w["session_id"] for w in data.worst] == ["s-bad", "s-mid-high"]
    assert {d for points in data.trend.values() for d, _, _ in points} == {data.start, data.end}
    everything = load_report_data(warehouse, days=365)
    assert (everything.start, everything.end) == (LAST_DAY - timedelta(days=40), LAST_DAY)
    assert everything.worst[0]["session_id"] == "s-old" and len(everything.days) == 41
    one_day = render_html(load_report_data(warehouse, days=1))
    assert "s-bad" in one_day and "s-good" not in one_day and structure(one_day).errors == []


def test_an_engine_works_as_well_as_a_warehouse(warehouse: Warehouse, tmp_path: Path) -> None:
    """A bare engine: on PostgreSQL the schema comes from its schema_translate_map."""
    from_engine = load_report_data(warehouse.engine)
    from_warehouse = load_report_data(warehouse)
    assert from_engine.worst == from_warehouse.worst and from_engine.trend == from_warehouse.trend


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


def test_a_warehouse_without_views_is_a_clear_error(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'blank.db'}")
    with pytest.raises(RuntimeError, match="run a load first"):
        build_report(engine, tmp_path)
    engine.dispose()
    assert not list(tmp_path.glob("*.html"))


def test_rendering_without_rated_samples_does_not_fail() -> None:
    from zoom_qos.report.page import ReportData

    data = ReportData(start=date(2025, 1, 1), end=date(2025, 1, 30), has_data=True,
                      totals={"sessions": 1, "samples": 0, "poor": 0, "rated": 0})
    text = render_html(data)
    assert "No rated samples in the period" in text and structure(text).errors == []


# --------------------------------------------------------------------------- CLI
def test_the_cli_renders_from_the_configured_warehouse(tmp_path: Path, monkeypatch, capsys) -> None:
    from include.scripts import qos_report

    db = tmp_path / "wh.db"
    wh = Warehouse(f"sqlite:///{db}")
    wh.ensure_schema()
    session, users = SESSIONS["s-bad"]
    wh.load_session(session, users, ParseIssues())
    wh.dispose()
    monkeypatch.setenv("AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE",
                       json.dumps({"conn_type": "sqlite", "host": str(db)}))
    monkeypatch.setenv("ZOOM_QOS_REPORT_DIR", str(tmp_path / "by-env"))
    assert qos_report.main([]) == 0
    printed = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed.parent == (tmp_path / "by-env").resolve() and printed.is_file()
    assert qos_report.main(["--out", str(tmp_path / "by-flag"), "--days", "7"]) == 0
    printed = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed.parent == (tmp_path / "by-flag").resolve()
    assert printed.name == f"zoom_qos_report_{LAST_DAY}_{LAST_DAY}.html"  # one day of data only


# --------------------------------------------------------------------------- DAGs
@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[3] / "dags"))
    assert bag.import_errors == {}
    return bag


def test_every_load_emits_the_asset_and_the_report_dag_is_scheduled_on_it(dagbag) -> None:
    from airflow.sdk import Asset
    from airflow.sdk.definitions.asset import AssetAll

    from zoom_qos.assets import ZOOM_QOS_ASSET

    assert isinstance(ZOOM_QOS_ASSET, Asset)
    assert dagbag.dags["zoom_videosdk_qos"].get_task("load_warehouse").outlets == [ZOOM_QOS_ASSET]
    consumer = dagbag.dags["zoom_videosdk_qos_report"]
    condition = consumer.timetable.asset_condition
    assert isinstance(condition, AssetAll) and list(condition.objects) == [ZOOM_QOS_ASSET]
    assert consumer.task_ids == ["render_report"]
    assert consumer.params["days"] == 30
    # nothing else produces it: only a load triggers the report
    producers = [(d.dag_id, t.task_id) for d in dagbag.dags.values() for t in d.tasks
                 if ZOOM_QOS_ASSET in (t.outlets or [])]
    assert producers == [("zoom_videosdk_qos", "load_warehouse")]


# --------------------------------------------------------------------------- completeness
FETCHED = datetime(2025, 3, 21, 3, tzinfo=UTC)


def add_completeness(wh: Warehouse) -> None:
    """Zoom's counts of three days, a pending session on one of them and a live one on another.

    Per day (Zoom, warehouse, with QoS): LAST_DAY 1, 1, 1 (the live one is not counted);
    LAST_DAY-1 3, 2, 1 (one pending): differs; LAST_DAY-2 not read, 2, 2; LAST_DAY-5 0, 0, 0.
    """
    def start(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, 15, tzinfo=UTC)

    extra = [("s-pending", LAST_DAY - timedelta(days=1), "pending"), ("s-live", LAST_DAY, "live")]
    with wh.engine.begin() as conn:
        conn.execute(sa.insert(s.sessions), [
            {"session_id": sid, "session_name": sid, "start_time": start(day), "qos_status": status,
             "qos_checked_at": FETCHED, "loaded_at": FETCHED}
            for sid, day, status in extra
        ])
        counts = ((LAST_DAY, 1), (LAST_DAY - timedelta(days=1), 3), (LAST_DAY - timedelta(days=5), 0))
        conn.execute(sa.insert(s.daily_usage), [
            {"usage_date": day, "sessions": n, "users": n, "session_minutes": 60 * n, "fetched_at": FETCHED}
            for day, n in counts
        ])


def completeness_rows(text: str) -> dict[str, tuple[str, str, str]]:
    """day -> (row class, sentence, check) of the report's completeness table."""
    table = re.search(r'<table class="completeness">.*?</table>', text, re.S).group(0)
    return {
        day: (cls or "", sentence, check)
        for cls, day, sentence, check in re.findall(
            r'<tr(?: class="(\w+)")?><td>([\d-]{10})</td><td>(.*?)</td><td>(.*?)</td></tr>', table
        )
    }


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
        "", "Zoom&#x27;s count of this day was not read; the warehouse holds 2, 2 of them with QoS.",
        "not compared")
    assert rows[day[5]][1:] == (
        "Zoom counted 0 sessions on this day, the warehouse holds 0.", "matches")
    assert rows[day[4]][1:] == (
        "Zoom&#x27;s count of this day was not read; the warehouse holds 0.", "not compared")
    assert [d for d, (cls, _, _) in rows.items() if cls] == [day[1]]
    summary = re.search(r'<div id="completeness-days"><p class="summary">(.*?)</p>', text).group(1)
    assert f"differs from the warehouse on 1 of the 3 day(s) Zoom counted: {day[1]} (Zoom 3, warehouse 2)." \
        in summary
    assert "1 pending (asked for again by every run) and 0 unavailable" in summary
    assert re.search(r"<b>1</b><span>days Zoom&#x27;s count differs</span>", text)


def test_completeness_figures_are_the_views(warehouse: Warehouse) -> None:
    add_completeness(warehouse)
    data = load_report_data(warehouse, days=30)
    prefix = f'"{warehouse.schema}".' if warehouse.schema else ""
    with warehouse.engine.connect() as conn:
        view = {
            str(r["usage_date"])[:10]: (r["zoom_sessions"], r["warehouse_sessions"], r["sessions_loaded"],
                                        r["sessions_pending"], r["sessions_unavailable"])
            for r in conn.execute(sa.text(f"SELECT * FROM {prefix}daily_completeness")).mappings()
        }
    shown = {d.day.isoformat(): (d.zoom_sessions, d.warehouse_sessions, d.loaded, d.pending, d.unavailable)
             for d in data.completeness}
    assert [d.day for d in data.completeness] == data.days
    in_period = {k: v for k, v in view.items() if k >= data.start.isoformat()}
    assert {k: v for k, v in shown.items() if k in view} == in_period
    assert all(v == (None, 0, 0, 0, 0) for k, v in shown.items() if k not in view)
    assert (LAST_DAY - timedelta(days=40)).isoformat() in view  # s-old: in the view, not in the period
    assert [d.day for d in data.completeness if d.differs] == [LAST_DAY - timedelta(days=1)]


def test_without_counts_or_sessions_there_is_no_completeness_section(tmp_path: Path) -> None:
    wh = Warehouse(f"sqlite:///{tmp_path / 'empty.db'}")
    wh.ensure_schema()
    try:
        text = build_report(wh, tmp_path, now=datetime(2025, 5, 2, 8, tzinfo=UTC)).read_text(encoding="utf-8")
    finally:
        wh.dispose()
    assert 'id="completeness"' not in text


def test_sessions_without_zoom_counts_say_so(tmp_path: Path) -> None:
    wh = Warehouse(f"sqlite:///{tmp_path / 'one.db'}")
    wh.ensure_schema()
    try:
        session, users = SESSIONS["s-good"]
        assert wh.load_session(session, users, ParseIssues()).loaded
        data = load_report_data(wh, days=3)
    finally:
        wh.dispose()
    assert [(d.zoom_sessions, d.warehouse_sessions, d.loaded) for d in data.completeness] == [(None, 1, 1)]
    text = render_html(data)
    assert "Zoom&#x27;s daily count was not read for any day of the period." in text
    assert "<b>–</b><span>days Zoom&#x27;s count differs</span>" in text
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


def test_the_report_needs_the_completeness_view(warehouse: Warehouse) -> None:
    prefix = f'"{warehouse.schema}".' if warehouse.schema else ""
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP VIEW {prefix}daily_completeness")
    with pytest.raises(RuntimeError, match="daily_completeness"):
        load_report_data(warehouse)
