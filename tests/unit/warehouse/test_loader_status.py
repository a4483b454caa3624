"""v2 loads: every listed session is kept with the state of its QoS, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.unit.warehouse.test_loader import SID, SID2, make_session, make_user, table_contents
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.warehouse import schema
from zoom_qos.warehouse.plan import SessionInput
from zoom_qos.warehouse.store import Warehouse

CHECKED = datetime(2025, 3, 2, 9, tzinfo=UTC)




def statuses(wh: Warehouse) -> dict[str, tuple[str, datetime | None]]:
    with wh.engine.connect() as conn:
        rows = conn.execute(sa.select(schema.sessions.c.session_id, schema.sessions.c.qos_status,
                                      schema.sessions.c.qos_checked_at))
        return {r.session_id: (r.qos_status, r.qos_checked_at) for r in rows}


def joins(wh: Warehouse) -> dict[str, int]:
    with wh.engine.connect() as conn:
        rows = conn.execute(sa.select(schema.session_users.c.session_id, sa.func.count())
                            .group_by(schema.session_users.c.session_id))
        return dict(rows.tuples().all())


def test_pending_and_unavailable_sessions_get_their_rows_without_joins(warehouse: Warehouse) -> None:
    summary = warehouse.load_sessions([
        SessionInput(make_session(SID), [make_user("u1")], "loaded", CHECKED),
        SessionInput(make_session(SID2), (), "pending", CHECKED),
        SessionInput(make_session("gone=="), (), "unavailable", CHECKED),
    ], ParseIssues())
    assert (summary.sessions_loaded, summary.sessions_pending, summary.sessions_unavailable) == (1, 1, 1)
    assert statuses(warehouse) == {SID: ("loaded", CHECKED), SID2: ("pending", CHECKED),
                                   "gone==": ("unavailable", CHECKED)}
    assert joins(warehouse) == {SID: 1}
    raw = {r["session_id"] for r in table_contents(warehouse, schema.raw_sessions)}
    assert raw == {SID, SID2, "gone=="}  # the listing object of every session is kept
    # A plain (session, users) pair is a session whose QoS was read.
    warehouse.load_sessions([(make_session("pair=="), [])], ParseIssues())
    assert statuses(warehouse)["pair=="] == ("loaded", None)


def test_a_pending_session_read_later_becomes_loaded_with_its_joins(warehouse: Warehouse) -> None:
    warehouse.load_sessions([SessionInput(make_session(SID), (), "pending", CHECKED)], ParseIssues())
    later = datetime(2025, 3, 3, tzinfo=UTC)
    warehouse.load_sessions([SessionInput(make_session(SID), [make_user("u1"), make_user("u2")], "loaded",
                                          later)], ParseIssues())
    assert statuses(warehouse) == {SID: ("loaded", later)} and joins(warehouse) == {SID: 2}


def test_a_loaded_session_answering_3001_later_keeps_its_rows_and_status(
    warehouse: Warehouse, caplog: pytest.LogCaptureFixture
) -> None:
    warehouse.load_sessions([SessionInput(make_session(SID), [make_user("u1"), make_user("u2")])],
                            ParseIssues())
    children = (schema.session_users, schema.user_qos, schema.user_system_qos)
    before = {t.name: table_contents(warehouse, t) for t in children}
    for status in ("pending", "unavailable"):
        summary = warehouse.load_sessions([SessionInput(make_session(SID), (), status, CHECKED)],
                                          ParseIssues())
        assert (summary.sessions_pending, summary.sessions_unavailable, summary.sessions_loaded) == (0, 0, 0)
        assert statuses(warehouse) == {SID: ("loaded", CHECKED)}
        assert {t: table_contents(warehouse, getattr(schema, t)) for t in before} == before
    assert "its rows and its 'loaded' status are kept" in caplog.text


def test_an_unread_session_in_the_same_transaction_does_not_touch_the_others(warehouse: Warehouse) -> None:
    warehouse.load_sessions([SessionInput(make_session(SID2), [make_user("u1")])], ParseIssues())
    warehouse.load_sessions([SessionInput(make_session(SID), [make_user("u9")]),
                             SessionInput(make_session(SID2), (), "pending", CHECKED)], ParseIssues())
    assert joins(warehouse) == {SID: 1, SID2: 1}
    assert statuses(warehouse)[SID2][0] == "loaded"


def test_grades_fill_the_matching_joins(warehouse: Warehouse) -> None:
    grades = [{"id": "u1", "join_time": "2025-03-01T10:00:05Z", "participant_uuid": "P-1",
               "audio_quality": "bad", "video_quality": "fair", "screen_share_quality": None}]
    warehouse.load_sessions([SessionInput(make_session(SID), [make_user("u1"), make_user("u2")],
                                          grades=grades)], ParseIssues())
    rows = {r["user_id"]: r for r in table_contents(warehouse, schema.session_users)}
    assert (rows["u1"]["participant_uuid"], rows["u1"]["audio_quality"], rows["u1"]["video_quality"]) == (
        "P-1", "bad", "fair")
    assert rows["u2"]["participant_uuid"] is None and rows["u2"]["audio_quality"] is None


def test_daily_usage_is_upserted_by_day(warehouse: Warehouse) -> None:
    day = date(2025, 3, 1)
    assert warehouse.upsert_daily_usage([]) == 0
    warehouse.upsert_daily_usage([{"usage_date": day, "sessions": 3, "users": 9, "session_minutes": 40}])
    warehouse.upsert_daily_usage([{"usage_date": day, "sessions": 4, "users": 10, "session_minutes": 50},
                                  {"usage_date": date(2025, 3, 2), "sessions": 0, "users": 0,
                                   "session_minutes": 0}])
    rows = table_contents(warehouse, schema.daily_usage, exclude=("fetched_at",))
    assert rows == [{"usage_date": day, "sessions": 4, "users": 10, "session_minutes": 50},
                    {"usage_date": date(2025, 3, 2), "sessions": 0, "users": 0, "session_minutes": 0}]


def test_settled_sessions_are_those_loaded_long_enough_after_their_end(warehouse: Warehouse) -> None:
    soon = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    warehouse.load_sessions([
        SessionInput(make_session(SID), [make_user("u1")], "loaded", CHECKED),  # ended 2025-03-01
        SessionInput(make_session("recent==", end_time=soon), [make_user("u1")], "loaded", CHECKED),
        SessionInput(make_session("open==", end_time=None), [], "loaded", CHECKED),
        SessionInput(make_session(SID2), (), "pending", CHECKED),
    ], ParseIssues())
    ids = [SID, SID2, "recent==", "open==", "never-listed=="]
    assert warehouse.settled_sessions(ids, timedelta(hours=1)) == {SID}
    assert warehouse.settled_sessions(ids, timedelta(minutes=1)) == {SID, "recent=="}
    assert warehouse.settled_sessions([], timedelta(0)) == set()


def test_pending_sessions_come_back_as_zoom_listed_them(warehouse: Warehouse) -> None:
    listed = make_session(SID2, session_name="still processing")
    warehouse.load_sessions([
        SessionInput(make_session(SID), [make_user("u1")], "loaded", CHECKED),
        SessionInput(listed, (), "pending", CHECKED),
        SessionInput(make_session("gone=="), (), "unavailable", CHECKED),
    ], ParseIssues())
    assert warehouse.pending_sessions() == {SID2: listed}
    assert warehouse.pending_sessions(exclude={SID2}) == {}
