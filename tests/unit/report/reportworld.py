"""The report tests' small warehouse and how they read the page (shared by the test modules).

Sessions whose poor shares are known, so the report must show the worst sessions in order, the
figures of the BI views, and escaped text; and an HTML structure check (every element closes).
"""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import sqlalchemy as sa

from tests import builders
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.warehouse import schema as s
from zoom_qos.warehouse.store import Warehouse

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


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def zoom_session(sid: str, name: str, day: date, users: int = 1) -> dict[str, Any]:
    """A minimal listed session from 10:00 to 11:00 on ``day``."""
    return builders.zoom_session(sid, name=name, start=at(day, 10), length=timedelta(hours=1), users=users,
                                 details=False)


def zoom_user(uid: str, day: date, latencies: list[int], device: str = "Mac", network: str = "Wifi",
              data_center: str = "EU (Frankfurt)", loss: str = "0.1%") -> dict[str, Any]:
    """One join with one audio sample per latency (over 150 ms is poor; jitter and loss are fine)."""
    samples = [
        builders.qos_sample(at(day, 10, minute + 1), audio_input=builders.stream_metrics(
            "40 kbps", latency=f"{latency} ms", jitter="5 ms", avg_loss=loss, max_loss="1%"))
        for minute, latency in enumerate(latencies)
    ]
    return builders.zoom_user(uid, name="Ada", device=device, join=at(day, 10), leave=at(day, 10, 59),
                              samples=samples, network_type=network, data_center=data_center)


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


def load(wh: Warehouse, *session_ids: str) -> None:
    """Load these sessions of :data:`SESSIONS` (all of them when none is named)."""
    ids = session_ids or tuple(SESSIONS)
    summary = wh.load_sessions([SESSIONS[sid] for sid in ids], ParseIssues())
    assert summary.sessions_loaded == len(ids), summary


class _Structure(HTMLParser):
    """Tags, ids, attributes and text seen, and whether every element closes."""

    VOID = {"meta", "br", "img", "hr", "input", "link", "line", "rect", "circle", "path", "polygon"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.ids: set[str] = set()
        self.tags: dict[str, int] = {}
        self.attrs: list[tuple[str, str | None]] = []
        self.errors: list[str] = []
        self.text: list[str] = []

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

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def structure(text: str) -> _Structure:
    parser = _Structure()
    parser.feed(text)
    parser.close()
    return parser


def cards(text: str) -> dict[str, str]:
    """label -> value of the overview's cards, as a reader sees them (unescaped)."""
    return {html.unescape(label): html.unescape(value)
            for value, label in re.findall(r'<div class="card"><b>(.*?)</b><span>(.*?)</span></div>', text)}


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
    """day -> (row class, sentence, check) of the report's completeness table, unescaped."""
    table = re.search(r'<table class="completeness">.*?</table>', text, re.S).group(0)
    return {
        day: (cls or "", html.unescape(sentence), html.unescape(check))
        for cls, day, sentence, check in re.findall(
            r'<tr(?: class="(\w+)")?><td>([\d-]{10})</td><td>(.*?)</td><td>(.*?)</td></tr>', table
        )
    }
