"""Names with HTML, script, template syntax or entities are text in every place of the report.

One test per place a text from Zoom or the warehouse appears (:data:`PLACES`): the place shows the
hostile text exactly as it is (not run, not decoded, not escaped twice), its markup holds the
escaped form, and it holds no markup from the data. A test per page checks that nothing of the
data became an element or attribute anywhere, and that every hostile text the page shows is in
one of the places listed (a new place must get its test).

Three pages per back end: the named world of :mod:`hostileworld` (every free text hostile), the
nameless world (no names: the ids stand in) and, rendered from a ``ReportData`` as the warehouse
never has one, a hostile media type (the views keep only audio, video and screen share).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import escape

from tests.unit.report.hostileworld import (
    DATA_CENTER,
    DEVICE,
    LIVE_SESSION_ID,
    LIVE_SESSION_NAME,
    LIVE_USER_ID,
    LIVE_USER_NAME,
    MEDIA,
    NETWORK,
    RUN_ID,
    SESSION_ID,
    SESSION_NAME,
    USER_NAME,
    load_hostile,
)
from tests.unit.report.reportworld import LAST_DAY
from tests.warehouse_fixtures import create_pg_database, drop_pg_database
from zoom_qos.report import ReportData, build_report, render_html
from zoom_qos.warehouse.store import Warehouse

NOW = datetime(2025, 3, 21, 12, tzinfo=UTC)
#: Markup the data would bring if it were not escaped (the report itself has none of it).
RAW_MARKUP = re.compile(r"<(script|img|svg\s+onload|/?title>\s*<script)|\son\w+\s*=\s*[\"']", re.I)
#: What only a hostile text holds, as a reader sees it (every one of them starts with a field name
#: and an element, so even a label cut after 25 characters has it).
HOSTILE_MARK = "<script>"
#: Elements and attributes the report has no use for: from the data if they are there.
FOREIGN_TAGS = {"script", "img", "iframe", "object", "embed", "a", "foreignobject", "form", "input", "link"}
FOREIGN_ATTRS = {"href", "xlink:href", "src", "srcdoc", "action", "formaction", "style"}


# --------------------------------------------------------------------------- the page as a tree
class Node:
    """An element: its attributes, children (elements and text) and where its markup is in the page
    (from its start tag to its end tag, the end tag left out)."""

    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None, start: int) -> None:
        self.tag, self.attrs, self.parent, self.start = tag, attrs, parent, start
        self.end = start
        self.children: list[Node | str] = []

    @property
    def text(self) -> str:
        """The element's text as a reader sees it (entities decoded), its descendants' included."""
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    @property
    def own_text(self) -> str:
        """Only the element's own text (not its children's: a label's, not its tooltip's)."""
        return "".join(c for c in self.children if isinstance(c, str))

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def iter(self) -> Iterator[Node]:
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.iter()

    def find(self, tag: str, cls: str | None = None, id: str | None = None) -> list[Node]:  # noqa: A002
        """Descendants by tag (``*`` any), class and id."""
        return [n for n in self.iter() if tag in ("*", n.tag) and (cls is None or cls in n.classes)
                and (id is None or n.attrs.get("id") == id)]

    def one(self, tag: str, cls: str | None = None, id: str | None = None) -> Node:  # noqa: A002
        found = self.find(tag, cls, id)
        assert len(found) == 1, (tag, cls, id, len(found))
        return found[0]

    def within(self, other: Node) -> bool:
        node: Node | None = self
        while node is not None:
            if node is other:
                return True
            node = node.parent
        return False


class _TreeBuilder(HTMLParser):
    #: HTML's void elements (SVG's empty ones are written ``<line .../>``)
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", source)]
        self.root = self.current = Node("#document", {}, None, 0)

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs), self.current, self._offset())
        self.current.children.append(node)
        if tag in self.VOID:
            node.end = node.start + len(self.get_starttag_text() or "")
        else:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs), self.current, self._offset())
        node.end = node.start + len(self.get_starttag_text() or "")
        self.current.children.append(node)

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is None or node.parent is None:
            return  # a stray end tag
        node.end = self._offset()
        self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


@dataclass
class Page:
    source: str

    @cached_property
    def root(self) -> Node:
        builder = _TreeBuilder(self.source)
        builder.feed(self.source)
        builder.close()
        return builder.root

    def markup(self, node: Node) -> str:
        return self.source[node.start:node.end]


# --------------------------------------------------------------------------- the places
@dataclass(frozen=True)
class Place:
    """One place a text from Zoom or the warehouse appears.

    ``select`` finds the elements of the place (e.g. a table column's cells); ``how`` says how the
    text is there: ``"whole"`` an element's text is it, ``"within"`` an element's text holds it
    (a sentence, a tooltip with figures), ``"cut"`` an element's own text is it cut short with
    ``…`` (an axis label), ``"attr:NAME"`` the attribute's value is it.
    """

    id: str
    pages: tuple[str, ...]
    select: Callable[[Node], list[Node]]
    text: str
    how: str = "whole"


def column(table: Callable[[Node], Node], index: int) -> Callable[[Node], list[Node]]:
    """The cells of a table's column (its body rows)."""
    def select(root: Node) -> list[Node]:
        return [[td for td in tr.children if isinstance(td, Node) and td.tag == "td"][index]
                for tr in table(root).one("tbody").find("tr")]
    return select


def live_table(root: Node) -> Node:
    return root.one("section", id="live-now").one("table", cls="live")


def alerts_table(root: Node) -> Node:
    return root.one("section", id="alerts").one("table", cls="alerts")


def worst_table(root: Node) -> Node:
    return root.one("table", cls="worst")


def worst_joins_table(root: Node) -> Node:
    return root.one("table", cls="worst-joins")


def figure(chart_id: str) -> Callable[[Node], Node]:
    return lambda root: root.one("figure", id=chart_id)


def run_line(root: Node) -> list[Node]:
    return [p for p in root.find("p", cls="summary") if p.text.startswith("Latest pipeline run")]


def _breakdown_places(dim: str, value: str) -> list[Place]:
    chart = figure(f"breakdown-{dim}")

    def tooltips(root: Node, tag: str, cls: str) -> list[Node]:
        return [title for mark in chart(root).find(tag, cls) for title in mark.find("title")]

    named = ("named",)
    return [
        Place(f"breakdown-{dim}-axis-label", named, lambda r: chart(r).find("text", "cat"), value, "cut"),
        Place(f"breakdown-{dim}-axis-label-tooltip", named, lambda r: tooltips(r, "text", "cat"), value),
        Place(f"breakdown-{dim}-bar-tooltip", named, lambda r: tooltips(r, "rect", "bar"), value, "within"),
        Place(f"breakdown-{dim}-summary", named, lambda r: chart(r).find("figcaption"), value, "within"),
        Place(f"breakdown-{dim}-figures-table", named,
              column(lambda r: chart(r).one("details").one("table"), 0), value),
    ]


def _trend_markers(root: Node, in_series: bool) -> list[Node]:
    svg = figure("trend")(root).one("svg")
    series = svg.find("g", cls="series")
    return [title for marker in svg.find("*", cls="marker") for title in marker.find("title")
            if any(marker.within(g) for g in series) == in_series]


PLACES: tuple[Place, ...] = (
    # Live now: the joins of sessions in progress
    Place("live-table-session-name", ("named",), column(live_table, 0), LIVE_SESSION_NAME),
    Place("live-table-user-name", ("named",), column(live_table, 1), LIVE_USER_NAME),
    Place("live-table-session-id-for-a-nameless-session", ("nameless",), column(live_table, 0),
          LIVE_SESSION_ID),
    Place("live-table-user-id-for-a-nameless-user", ("nameless",), column(live_table, 1), LIVE_USER_ID),
    # Alerts, Zoom's and ours: the live session the live alert flagged
    Place("alerts-table-session-name", ("named",), column(alerts_table, 0), LIVE_SESSION_NAME),
    Place("alerts-table-session-id-for-a-nameless-session", ("nameless",), column(alerts_table, 0),
          LIVE_SESSION_ID),
    # The media column shows a media type with spaces for its underscores ("screen share").
    Place("live-table-media-type", ("media",), column(live_table, 3), MEDIA.replace("_", " ")),
    # Worst sessions of the period
    Place("worst-table-session-name", ("named",), column(worst_table, 1), SESSION_NAME),
    Place("worst-table-session-id", ("named", "nameless"), column(worst_table, 2), SESSION_ID),
    Place("worst-summary-session-name", ("named",), lambda r: r.one("div", id="worst-sessions").find("p"),
          SESSION_NAME, "within"),
    Place("worst-summary-session-id-for-a-nameless-session", ("nameless",),
          lambda r: r.one("div", id="worst-sessions").find("p"), SESSION_ID, "within"),
    # Worst joins of the period, with their cause
    Place("worst-joins-session-name", ("named",), column(worst_joins_table, 1), SESSION_NAME),
    Place("worst-joins-session-id-for-a-nameless-session", ("nameless",), column(worst_joins_table, 1),
          SESSION_ID),
    Place("worst-joins-user-name", ("named",), column(worst_joins_table, 2), USER_NAME),
    # Breakdowns: per device, network type and data center
    *_breakdown_places("device", DEVICE),
    *_breakdown_places("network-type", NETWORK),
    *_breakdown_places("data-center", DATA_CENTER),
    # The run line of the overview
    Place("run-line-run-id", ("named",), run_line, RUN_ID, "within"),
    # The daily trend, per media type
    Place("trend-series-data-media-attribute", ("media",),
          lambda r: figure("trend")(r).find("g", cls="series"), MEDIA, "attr:data-media"),
    Place("trend-point-tooltip", ("media",), lambda r: _trend_markers(r, True), MEDIA, "within"),
    Place("trend-legend-label", ("media",), lambda r: figure("trend")(r).find("text", cls="legend"), MEDIA),
    Place("trend-legend-marker-tooltip", ("media",), lambda r: _trend_markers(r, False), MEDIA),
    Place("trend-summary", ("media",), lambda r: figure("trend")(r).find("figcaption"), MEDIA, "within"),
    Place("trend-figures-table", ("media",),
          column(lambda r: figure("trend")(r).one("details").one("table"), 1), MEDIA),
)
PAGES = ("named", "nameless", "media")


# --------------------------------------------------------------------------- the pages
@contextmanager
def _warehouse(request: pytest.FixtureRequest, backend: str, folder: Path) -> Iterator[Warehouse]:
    """A migrated warehouse of its own: a copy of the session's SQLite file or PostgreSQL template."""
    if backend == "sqlite":
        path = folder / "warehouse.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template_file"), path)
        wh = Warehouse(f"sqlite:///{path}")
        try:
            yield wh
        finally:
            wh.dispose()
        return
    admin = request.getfixturevalue("pg_admin")
    url = create_pg_database(admin, template=request.getfixturevalue("pg_template_database"))
    wh = Warehouse(url)
    try:
        yield wh
    finally:
        wh.dispose()
        drop_pg_database(admin, url)


def media_data() -> ReportData:
    """A report of one day whose media type is hostile, in the trend and in a live join."""
    day = LAST_DAY
    live = {"session_id": "s-live", "session_name": "Plain live session", "user_id": "u-live",
            "user_name": "Plain user", "join_time": datetime(2025, 3, 20, 10, tzinfo=UTC),
            "media_type": MEDIA, "rated_samples": 6, "poor_share": 0.5,
            "last_sampled_at": datetime(2025, 3, 20, 10, 6, tzinfo=UTC)}
    return ReportData(start=day - timedelta(days=1), end=day, has_data=True,
                      totals={"sessions": 1, "users": 1, "samples": 8, "poor": 4, "rated": 8},
                      trend={MEDIA: [(day - timedelta(days=1), 0.25, 4), (day, 0.75, 4)]}, live=[live])


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def pages(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Page]:
    """The three pages, rendered once per back end (the media page needs none, it comes along)."""
    result = {}
    for world in ("named", "nameless"):
        folder = tmp_path_factory.mktemp(f"hostile-{world}")
        with _warehouse(request, request.param, folder) as wh:
            load_hostile(wh, named=world == "named")
            path = build_report(wh, folder / "reports", now=NOW)
        result[world] = Page(path.read_text(encoding="utf-8"))
    result["media"] = Page(render_html(media_data(), generated_at=NOW))
    return result


# --------------------------------------------------------------------------- tests
def _shown(node: Node, how: str) -> str:
    if how.startswith("attr:"):
        return node.attrs.get(how[5:]) or ""
    return node.own_text if how == "cut" else node.text


def _matches(shown: str, place: Place) -> bool:
    if place.how == "within":
        return place.text in shown
    if place.how == "cut":  # cut short on the axis, the whole text is the tooltip
        return len(shown) == 26 and shown.endswith("…") and place.text.startswith(shown[:-1])
    return shown == place.text


@pytest.mark.parametrize(("place", "page_name"),
                         [pytest.param(p, page, id=f"{page}:{p.id}") for p in PLACES for page in p.pages])
def test_a_hostile_text_shows_as_text_in_its_place(
    pages: dict[str, Page], place: Place, page_name: str
) -> None:
    page = pages[page_name]
    nodes = place.select(page.root)
    assert nodes, f"no element of {place.id}"
    shown = {n.start: _shown(n, place.how) for n in nodes}
    matched = [n for n in nodes if _matches(shown[n.start], place)]
    # as a reader sees it: the text exactly as it came (not run, not decoded, not escaped twice)
    assert matched, (place.id, list(shown.values()))
    for node in matched:  # its markup has the escaped form of the text (a cut label: of the cut text) ...
        if place.how.startswith("attr:"):
            assert f'{place.how[5:]}="{escape(place.text)}"' in page.markup(node)
        else:
            assert str(escape(shown[node.start] if place.how == "cut" else place.text)) in page.markup(node)
    # ... and nothing of the place is markup from the data
    for n in nodes:
        assert not RAW_MARKUP.search(page.markup(n)), (place.id, page.markup(n)[:300])
        assert not [d for d in n.iter() if d.tag in FOREIGN_TAGS], place.id


@pytest.mark.parametrize("page_name", PAGES)
def test_nothing_from_the_data_is_markup_anywhere_on_the_page(pages: dict[str, Page], page_name: str) -> None:
    page = pages[page_name]
    assert HOSTILE_MARK in page.root.text  # the page does show hostile text
    assert "<script" not in page.source.lower()  # no script block at all: no JSON to break out of
    assert not RAW_MARKUP.search(page.source), RAW_MARKUP.search(page.source)
    elements = list(page.root.iter())
    assert not [n.tag for n in elements if n.tag in FOREIGN_TAGS]
    attributes = [(n.tag, name, value) for n in elements for name, value in n.attrs.items()]
    assert not [a for a in attributes if a[1].startswith("on") or a[1] in FOREIGN_ATTRS]
    assert not [a for a in attributes if (a[2] or "").strip().lower().startswith("javascript:")]
    # the charts are the report's six (or the media page's one): none was closed and reopened
    figures = [n for n in elements if n.tag == "figure"]
    assert [n.tag for n in elements].count("svg") == len(figures) and all(f.find("svg") for f in figures)


@pytest.mark.parametrize("page_name", PAGES)
def test_every_place_a_hostile_text_shows_is_a_listed_place(pages: dict[str, Page], page_name: str) -> None:
    """Each text and attribute value with a hostile text is in a place of :data:`PLACES`."""
    page = pages[page_name]
    covered = [n for p in PLACES if page_name in p.pages for n in p.select(page.root)]
    unlisted = []
    for node in [page.root, *page.root.iter()]:
        texts = [c for c in node.children if isinstance(c, str) and HOSTILE_MARK in c]
        if texts and not any(node.within(c) for c in covered):
            unlisted.append((node.tag, node.attrs.get("class") or node.attrs.get("id"), texts[0][:40]))
        values = [name for name, value in node.attrs.items() if HOSTILE_MARK in (value or "")]
        if values and not any(node is c for c in covered):
            unlisted.append((node.tag, f"attribute {values}", ""))
    assert unlisted == []
