"""Warehouse loads on SQLite and PostgreSQL: exact rows, idempotency, atomicity, run records."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from tests.builders import ABSENT, SESSION_ID, qos_sample, stream_metrics, zoom_session, zoom_user
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.warehouse import loader, plan, schema
from zoom_qos.warehouse.loader import LoadSummary, SessionLoader, advisory_lock_key
from zoom_qos.warehouse.plan import SessionInput
from zoom_qos.warehouse.sql import UnsupportedDatabaseError
from zoom_qos.warehouse.store import Warehouse

# Fixtures pg_database (fresh PostgreSQL database), warehouse_url (sqlite / postgresql) and warehouse
# (migrated, on each) come from tests/warehouse_fixtures.py.

SID = SESSION_ID
SID2 = "/leading//slash+=="
T0 = datetime(2025, 3, 1, 10, tzinfo=UTC)


# --------------------------------------------------------------------------- data
#: The listed session these tests load (tests.builders' defaults; test_loader_status uses it too).
make_session = zoom_session


def make_user(user_id: str = "u1", join: str = "2025-03-01T10:00:05Z", **overrides: Any) -> dict[str, Any]:
    """u1 is the original host; a full sample and one with an unparsable bitrate; a field Zoom may add."""
    samples = [
        qos_sample("2025-03-01T10:01:00Z", audio_input=stream_metrics(max_loss=ABSENT),
                   video_input={"bitrate": "1.2 Mbps", "resolution": "1280*720", "frame_rate": "12 fps"},
                   cpu_usage={"zoom_avg_cpu_usage": "8%"}, wifi_rssi={"avg_rssi": -55, "rssi_unit": "dBm"}),
        qos_sample("2025-03-01T10:02:00Z", audio_input={"bitrate": "furlongs", "latency": "2 s"}),
    ]
    return zoom_user(user_id, join=join, samples=samples, is_original_host=user_id == "u1",
                     brand_new_field={"nested": [1, 2, 3]}, **overrides)


def table_contents(wh: Warehouse, table: sa.Table, exclude: tuple[str, ...] = ("loaded_at",)) -> list[dict]:
    columns = [c for c in table.columns if c.name not in exclude]
    order = list(table.primary_key.columns)
    with wh.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(*columns).order_by(*order))]


def snapshot(wh: Warehouse) -> dict[str, list[dict]]:
    return {t.name: table_contents(wh, t) for t in schema.TABLES if t is not schema.pipeline_runs}


# --------------------------------------------------------------------------- loads
def test_load_creates_exact_rows(warehouse: Warehouse) -> None:
    issues = ParseIssues()
    result = warehouse.load_sessions(
        [SessionInput(make_session(), [make_user("u1"), make_user("u2")])], issues
    )
    assert (result.sessions_loaded, result.users, result.qos_rows, result.system_rows) == (1, 2, 6, 2)
    assert issues.as_dict() == {"bitrate": {"count": 2, "example": "furlongs"}}
    assert warehouse.count_rows() == {
        "sessions": 1,
        "raw_sessions": 1,
        "session_users": 2,
        "raw_session_users": 2,
        "user_qos": 6,
        "user_system_qos": 2,
        "daily_usage": 0,
        "pipeline_runs": 0,
    }
    assert table_contents(warehouse, schema.sessions) == [
        {
            "session_id": SID,
            "session_name": "Standup",
            "session_key": "k1",
            "start_time": T0,
            "end_time": datetime(2025, 3, 1, 11, 2, 3, tzinfo=UTC),
            "duration_seconds": 3723,
            "user_count": 2,
            "has_voip": False,
            "has_video": True,
            "has_screen_share": False,
            "has_recording": False,
            "has_pstn": False,
            "audio_quality": "good",
            "video_quality": "fair",
            "screen_share_quality": None,
            "qos_status": "loaded",
            "qos_checked_at": None,
        }
    ]
    join = datetime(2025, 3, 1, 10, 0, 5, tzinfo=UTC)
    qos = table_contents(warehouse, schema.user_qos)
    u1 = [r for r in qos if r["user_id"] == "u1"]
    assert u1 == [
        {
            "session_id": SID,
            "user_id": "u1",
            "join_time": join,
            "sampled_at": datetime(2025, 3, 1, 10, 1, tzinfo=UTC),
            "stream": "audio_input",
            "bitrate_kbps": 23.0,
            "latency_ms": 126.0,
            "jitter_ms": 6.0,
            "avg_loss_pct": 0.3,
            "max_loss_pct": None,
            "resolution_width": None,
            "resolution_height": None,
            "frame_rate_fps": None,
        },
        {
            "session_id": SID,
            "user_id": "u1",
            "join_time": join,
            "sampled_at": datetime(2025, 3, 1, 10, 1, tzinfo=UTC),
            "stream": "video_input",
            "bitrate_kbps": 1200.0,
            "latency_ms": None,
            "jitter_ms": None,
            "avg_loss_pct": None,
            "max_loss_pct": None,
            "resolution_width": 1280,
            "resolution_height": 720,
            "frame_rate_fps": 12.0,
        },
        {
            "session_id": SID,
            "user_id": "u1",
            "join_time": join,
            "sampled_at": datetime(2025, 3, 1, 10, 2, tzinfo=UTC),
            "stream": "audio_input",
            "bitrate_kbps": None,
            "latency_ms": 2000.0,
            "jitter_ms": None,
            "avg_loss_pct": None,
            "max_loss_pct": None,
            "resolution_width": None,
            "resolution_height": None,
            "frame_rate_fps": None,
        },
    ]
    system = table_contents(warehouse, schema.user_system_qos)
    assert system[0] == {
        "session_id": SID,
        "user_id": "u1",
        "join_time": join,
        "sampled_at": datetime(2025, 3, 1, 10, 1, tzinfo=UTC),
        "zoom_min_cpu_pct": None,
        "zoom_avg_cpu_pct": 8.0,
        "zoom_max_cpu_pct": None,
        "system_max_cpu_pct": None,
        "wifi_max_rssi": None,
        "wifi_avg_rssi": -55.0,
        "wifi_min_rssi": None,
        "wifi_rssi_unit": "dBm",
        "cpu_pressure_level": None,
    }
    users = table_contents(warehouse, schema.session_users)
    assert [(u["user_id"], u["user_name"], u["is_original_host"]) for u in users] == [
        ("u1", "name-u1", True),
        ("u2", "name-u2", False),
    ]
    raw_users = table_contents(warehouse, schema.raw_session_users)
    assert raw_users[0]["payload"] == make_user("u1")  # exactly as received, unknown field included
    assert table_contents(warehouse, schema.raw_sessions)[0]["payload"] == make_session()


def test_load_twice_is_identical(warehouse: Warehouse) -> None:
    users = [make_user("u1"), make_user("u2"), make_user("u1", join="2025-03-01T10:40:00Z")]
    first = warehouse.load_sessions([SessionInput(make_session(), users)], ParseIssues())
    before = snapshot(warehouse)
    second = warehouse.load_sessions([SessionInput(make_session(), users)], ParseIssues())
    assert first == second
    assert snapshot(warehouse) == before
    assert len(before["session_users"]) == 3  # a rejoin is its own row


def test_loaded_at_is_refreshed(warehouse: Warehouse) -> None:
    warehouse.load_sessions([SessionInput(make_session(), [make_user()])], ParseIssues())
    (first,) = [r["loaded_at"] for r in table_contents(warehouse, schema.sessions, exclude=())]
    warehouse.load_sessions([SessionInput(make_session(), [make_user()])], ParseIssues())
    (second,) = [r["loaded_at"] for r in table_contents(warehouse, schema.sessions, exclude=())]
    assert second >= first and second.tzinfo is UTC
    user_stamps = {r["loaded_at"] for r in table_contents(warehouse, schema.user_qos, exclude=())}
    assert user_stamps == {second}  # one timestamp per load


def test_duplicate_users_loaded_once_first_wins(warehouse: Warehouse) -> None:
    """A stream cannot look ahead, so of two entries for the same join the first one loads."""
    users = [make_user("u1"), make_user("u1", name="second read", join="2025-03-01T10:00:05+00:00")]
    result = warehouse.load_sessions([SessionInput(make_session(), users)], ParseIssues())
    assert result.users == 1
    assert [u["user_name"] for u in table_contents(warehouse, schema.session_users)] == ["name-u1"]


def test_reread_with_fewer_users_leaves_new_set(warehouse: Warehouse) -> None:
    warehouse.load_sessions([SessionInput(make_session(SID2), [make_user("other")])], ParseIssues())
    other_before = {k: [r for r in v if r["session_id"] == SID2] for k, v in snapshot(warehouse).items()}
    warehouse.load_sessions([SessionInput(make_session(), [make_user("u1"), make_user("u2")])], ParseIssues())
    changed = make_user(
        "u2", user_qos=[{"date_time": "2025-03-01T10:05:00Z", "audio_output": {"jitter": "1 ms"}}]
    )
    result = warehouse.load_sessions(
        [SessionInput(make_session(session_name="renamed"), [changed])], ParseIssues()
    )
    assert (result.sessions_loaded, result.users, result.qos_rows, result.system_rows) == (1, 1, 1, 0)

    snap = snapshot(warehouse)
    mine = {k: [r for r in v if r["session_id"] == SID] for k, v in snap.items()}
    assert [r["session_name"] for r in mine["sessions"]] == ["renamed"]
    assert [r["user_id"] for r in mine["session_users"]] == ["u2"]
    assert [r["user_id"] for r in mine["raw_session_users"]] == ["u2"]
    assert [(r["stream"], r["jitter_ms"]) for r in mine["user_qos"]] == [("audio_output", 1.0)]
    assert mine["user_system_qos"] == []
    # another session's rows are untouched
    assert {k: [r for r in v if r["session_id"] == SID2] for k, v in snap.items()} == other_before


def test_failure_mid_load_keeps_old_rows(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse.load_sessions([SessionInput(make_session(), [make_user("u1"), make_user("u2")])], ParseIssues())
    before = snapshot(warehouse)
    original = SessionLoader._write_rows

    def failing_write(self: SessionLoader, load: Any, table: sa.Table, *args: Any) -> None:
        if table is schema.user_qos:
            raise RuntimeError("boom during child insert")
        original(self, load, table, *args)

    monkeypatch.setattr(SessionLoader, "_write_rows", failing_write)
    issues = ParseIssues()
    with pytest.raises(RuntimeError, match="boom"):
        warehouse.load_sessions([SessionInput(make_session(session_name="new"), [make_user("u3")])], issues)
    assert snapshot(warehouse) == before
    assert not issues  # nothing counted for a load that did not happen
    monkeypatch.undo()
    # and the warehouse is still usable afterwards
    assert warehouse.load_sessions(
        [SessionInput(make_session(), [make_user("u3")])], ParseIssues()
    ).sessions_loaded


def test_rows_left_without_their_session_are_replaced(warehouse: Warehouse) -> None:
    """Child rows whose sessions row was deleted by hand must not collide with a new load."""
    warehouse.load_sessions([SessionInput(make_session(), [make_user("u1"), make_user("u2")])], ParseIssues())
    with warehouse.engine.begin() as conn:
        conn.execute(schema.sessions.delete())
        conn.execute(schema.raw_sessions.delete())
    assert warehouse.load_sessions(
        [SessionInput(make_session(), [make_user("u2")])], ParseIssues()
    ).users == 1
    assert [r["user_id"] for r in table_contents(warehouse, schema.session_users)] == ["u2"]
    assert warehouse.count_rows()["sessions"] == 1 and warehouse.count_rows()["user_qos"] == 3


def test_database_error_rolls_back(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real database error (NOT NULL on loaded_at) after the deletes leaves the old rows."""
    warehouse.load_sessions([SessionInput(make_session(), [make_user("u1")])], ParseIssues())
    before = snapshot(warehouse)
    monkeypatch.setattr(loader, "utcnow", lambda: None)
    with pytest.raises(sa.exc.IntegrityError):
        warehouse.load_sessions(
            [SessionInput(make_session(session_name="x"), [make_user("u9")])], ParseIssues()
        )
    monkeypatch.undo()
    assert snapshot(warehouse) == before


def test_unkeyable_session_skipped(warehouse: Warehouse) -> None:
    issues = ParseIssues()
    result = warehouse.load_sessions(
        [SessionInput(make_session(start_time="whenever"), [make_user()])], issues
    )
    assert (result.sessions_loaded, result.sessions_skipped, result.users) == (0, 1, 0)
    assert issues.counts == {"start_time": 1}
    assert sum(warehouse.count_rows().values()) == 0


def test_unkeyable_user_skipped_others_loaded(warehouse: Warehouse) -> None:
    issues = ParseIssues()
    users = [make_user("u1"), make_user("u2", join_time=None), {"name": "no id"}]
    result = warehouse.load_sessions([SessionInput(make_session(), users)], issues)
    assert result.sessions_loaded and result.users == 1
    assert issues.counts["join_time"] == 1 and issues.counts["id"] == 1


def test_timestamps_come_back_aware_utc(warehouse: Warehouse) -> None:
    session = make_session(start_time="2025-03-01T12:00:00+02:00", end_time="2025-03-01T10:30:00")
    warehouse.load_sessions(
        [SessionInput(session, [make_user(join="2025-03-01T05:00:05-05:00")])], ParseIssues()
    )
    row = table_contents(warehouse, schema.sessions, exclude=())[0]
    assert row["start_time"] == T0 and row["start_time"].tzinfo is UTC
    assert row["end_time"] == datetime(2025, 3, 1, 10, 30, tzinfo=UTC)
    assert row["loaded_at"].tzinfo is UTC
    for table in (schema.session_users, schema.user_qos, schema.user_system_qos, schema.raw_session_users):
        for r in table_contents(warehouse, table, exclude=()):
            assert r["join_time"] == datetime(2025, 3, 1, 10, 0, 5, tzinfo=UTC)
            assert r["join_time"].tzinfo is UTC
            assert r["loaded_at"].tzinfo is UTC


def test_odd_text_survives(warehouse: Warehouse) -> None:
    user = make_user(name="nul\x00byte ☃", location="\\u0000 literal")
    assert warehouse.load_sessions([SessionInput(make_session(), [user])], ParseIssues()).sessions_loaded
    su = table_contents(warehouse, schema.session_users)[0]
    assert su["user_name"] == "nulbyte ☃" and su["location"] == "\\u0000 literal"
    payload = table_contents(warehouse, schema.raw_session_users)[0]["payload"]
    assert payload["location"] == "\\u0000 literal" and payload["name"] == "nul\ufffdbyte ☃"


# --------------------------------------------------------------------------- bulk loads
def _users(n: int, tag: str = "") -> list[dict[str, Any]]:
    return [make_user(f"u{i}{tag}", join=f"2025-03-01T10:00:{i:02d}Z") for i in range(n)]


def _session_ids(n: int) -> list[str]:
    return [f"bulk/{i:03d}+=" for i in range(n)]


def test_load_sessions_groups_rows_and_summarises(warehouse: Warehouse) -> None:
    ids = _session_ids(5)
    items = [(make_session(sid), _users(i + 1)) for i, sid in enumerate(ids)]
    items.insert(2, (make_session("unkeyable", start_time=None), _users(1)))
    issues = ParseIssues()
    # rows per session: 2 + users * (1 raw + 1 user + 3 qos + 1 system) = 2 + 6 * users
    summary = warehouse.load_sessions(iter(items), issues, max_rows_per_transaction=22)
    assert summary == LoadSummary(
        sessions_loaded=5,
        sessions_skipped=1,
        users=15,
        qos_rows=45,
        system_rows=15,
        session_ids=ids,
        transactions=4,  # sizes [8, 14] [20] [26, over the limit: alone] [32: alone]
    )
    assert issues.counts == {"bitrate": 15, "start_time": 1}
    counts = warehouse.count_rows()
    assert (counts["sessions"], counts["session_users"], counts["user_qos"]) == (5, 15, 45)

    one_big = warehouse.load_sessions(iter(items), ParseIssues(), max_rows_per_transaction=10_000)
    assert one_big.transactions == 1 and one_big.session_ids == ids


def test_load_sessions_same_session_twice_last_wins(warehouse: Warehouse) -> None:
    items = [
        (make_session(SID, session_name="first"), _users(3)),
        (make_session(SID2), _users(1)),
        (make_session(SID, session_name="second"), _users(1, tag="x")),
    ]
    summary = warehouse.load_sessions(items, ParseIssues())
    assert summary.sessions_loaded == 3 and summary.session_ids == [SID, SID2]
    assert summary.transactions == 2  # the repeat starts a new transaction
    snap = snapshot(warehouse)
    assert [r["session_name"] for r in snap["sessions"] if r["session_id"] == SID] == ["second"]
    assert [r["user_id"] for r in snap["session_users"] if r["session_id"] == SID] == ["u0x"]


def test_load_sessions_group_shrinks_and_grows(warehouse: Warehouse) -> None:
    warehouse.load_sessions([(make_session(SID), _users(4)), (make_session(SID2), _users(1))], ParseIssues())
    shrunk = [_users(4)[1], _users(4)[3]]
    shrunk[0]["user_qos"] = shrunk[0]["user_qos"][:1]
    warehouse.load_sessions([(make_session(SID), shrunk), (make_session(SID2), _users(3))], ParseIssues())

    expected = Warehouse(URL.create("sqlite", database=":memory:"))
    expected.ensure_schema()
    expected.load_sessions([(make_session(SID), shrunk), (make_session(SID2), _users(3))], ParseIssues())
    assert snapshot(warehouse) == snapshot(expected)
    assert warehouse.count_rows()["session_users"] == 5
    expected.dispose()


def test_load_sessions_failure_keeps_committed_groups(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _session_ids(4)
    warehouse.load_sessions([(make_session(sid), _users(2)) for sid in ids], ParseIssues())
    before = snapshot(warehouse)
    original = SessionLoader.write_group
    calls = []

    def failing_second_group(self: SessionLoader, group: Any) -> None:
        calls.append([p.session_id for p in group])
        if len(calls) == 2:
            original(self, group[:1])  # commits a transaction of its own, then...
            raise RuntimeError("crash in group 2")
        original(self, group)

    monkeypatch.setattr(SessionLoader, "write_group", failing_second_group)
    issues = ParseIssues()
    new_items = [(make_session(sid, session_name="new"), _users(1, tag="n")) for sid in ids]
    with pytest.raises(RuntimeError, match="group 2"):
        # 2 + 6 rows per session: groups of two sessions
        warehouse.load_sessions(new_items, issues, max_rows_per_transaction=16)
    assert calls == [ids[:2], ids[2:]]
    after = snapshot(warehouse)
    names = {r["session_id"]: r["session_name"] for r in after["sessions"]}
    assert names == {ids[0]: "new", ids[1]: "new", ids[2]: "new", ids[3]: "Standup"}
    for table, rows in after.items():
        old_rows = [r for r in before[table] if r["session_id"] == ids[3]]
        assert [r for r in rows if r["session_id"] == ids[3]] == old_rows, table
    assert issues.counts == {"bitrate": 2}  # only the committed first group was counted


def test_load_sessions_rejects_bad_limit(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="max_rows_per_transaction"):
        warehouse.load_sessions([], ParseIssues(), max_rows_per_transaction=0)
    assert warehouse.load_sessions([], ParseIssues()) == LoadSummary()


# --------------------------------------------------------------------------- streaming
ROWS_PER_USER = 6  # make_user: 1 session_users + 1 raw + 3 user_qos + 1 user_system_qos


def _user_stream(n: int, tag: str = "", fail_after: int | None = None) -> Iterator[dict[str, Any]]:
    """``n`` distinct users made one at a time: a one-shot iterator, as staging hands a big session over."""
    for i in range(n):
        if i == fail_after:
            raise RuntimeError(f"staging file unreadable after {i} users")
        join = (T0 + timedelta(seconds=5 + i)).isoformat().replace("+00:00", "Z")
        yield make_user(f"u{i}{tag}", join=join)


@pytest.fixture()
def small_stream_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Stream sessions of 60+ rows in batches of ~40 rows; returns the sizes of the batches written."""
    monkeypatch.setattr(plan, "STREAM_THRESHOLD_ROWS", 60)
    monkeypatch.setattr(loader, "STREAM_BATCH_ROWS", 40)
    sizes: list[int] = []
    original = SessionLoader._write_rows

    def counting(self: SessionLoader, load_: Any, table: sa.Table, rows: Any) -> None:
        sizes.append(len(rows))
        original(self, load_, table, rows)

    monkeypatch.setattr(SessionLoader, "_write_rows", counting)
    return sizes


def test_streamed_session_loads_like_a_list(warehouse: Warehouse, small_stream_batches: list[int]) -> None:
    def users() -> Iterator[dict[str, Any]]:
        yield from _user_stream(150)
        yield make_user("u3", name="late duplicate", join="2025-03-01T10:00:08+00:00")  # u3's join again
        yield {"name": "no id"}
        yield make_user("u3", join="2025-03-01T12:00:00Z")  # a rejoin: its own row

    expected = Warehouse(URL.create("sqlite", database=":memory:"))  # the same users as a list, unstreamed
    expected.ensure_schema()
    expected_issues = ParseIssues()
    with pytest.MonkeyPatch.context() as unstreamed:
        unstreamed.setattr(plan, "STREAM_THRESHOLD_ROWS", 10**9)
        expected_summary = expected.load_sessions([(make_session(), list(users()))], expected_issues)
    small_stream_batches.clear()

    issues = ParseIssues()
    summary = warehouse.load_sessions([(make_session(), users())], issues)
    assert summary == expected_summary
    assert (summary.users, summary.qos_rows, summary.transactions) == (151, 453, 1)
    assert issues.as_dict() == expected_issues.as_dict() and issues.counts["id"] == 1
    assert snapshot(warehouse) == snapshot(expected)
    names = {r["user_id"]: r["user_name"] for r in snapshot(warehouse)["session_users"]}
    assert names["u3"] == "name-u3"  # first occurrence wins
    assert len(small_stream_batches) > 20 and max(small_stream_batches) <= 40 + ROWS_PER_USER
    expected.dispose()


def test_streamed_session_replaces_the_old_version(
    warehouse: Warehouse, small_stream_batches: list[int]
) -> None:
    warehouse.load_sessions([SessionInput(make_session(SID2), _users(3, tag="other"))], ParseIssues())
    other = {k: [r for r in v if r["session_id"] == SID2] for k, v in snapshot(warehouse).items()}
    warehouse.load_sessions([SessionInput(make_session(), _user_stream(120))], ParseIssues())
    result = warehouse.load_sessions(
        [SessionInput(make_session(session_name="v2"), _user_stream(90, tag="b"))], ParseIssues()
    )
    assert (result.sessions_loaded, result.users, result.qos_rows, result.system_rows) == (1, 90, 270, 90)
    snap = snapshot(warehouse)
    mine = {k: [r for r in v if r["session_id"] == SID] for k, v in snap.items()}
    assert {r["user_id"] for r in mine["session_users"]} == {f"u{i}b" for i in range(90)}
    assert len(mine["user_qos"]) == 270 and [r["session_name"] for r in mine["sessions"]] == ["v2"]
    assert {k: [r for r in v if r["session_id"] == SID2] for k, v in snap.items()} == other


def test_failure_mid_stream_keeps_the_previous_version(
    warehouse: Warehouse, small_stream_batches: list[int]
) -> None:
    old = [(make_session(SID2), _users(2)), (make_session(), _user_stream(80))]
    warehouse.load_sessions(old, ParseIssues())
    before = snapshot(warehouse)
    small_stream_batches.clear()
    issues = ParseIssues()
    items = [
        (make_session(SID2, session_name="new"), _users(3, tag="n")),  # small: committed first
        (make_session(session_name="new"), _user_stream(200, tag="n", fail_after=150)),
    ]
    with pytest.raises(RuntimeError, match="unreadable after 150 users"):
        warehouse.load_sessions(items, issues)
    assert sum(small_stream_batches) > 150 * ROWS_PER_USER // 2  # much was written before the failure...
    after = snapshot(warehouse)
    for table, rows in after.items():  # ...and all of it rolled back
        old_rows = [r for r in before[table] if r["session_id"] == SID]
        assert [r for r in rows if r["session_id"] == SID] == old_rows, table
    assert [r["session_name"] for r in after["sessions"] if r["session_id"] == SID2] == ["new"]
    assert issues.counts == {"bitrate": 3}  # only the committed small session's issues
    # and the same load goes through once the stream is whole
    whole = [(make_session(session_name="new"), _user_stream(200, tag="n"))]
    summary = warehouse.load_sessions(whole, issues)
    assert summary.users == 200 and warehouse.count_rows()["session_users"] == 203


def test_stream_transactions_are_counted(warehouse: Warehouse, small_stream_batches: list[int]) -> None:
    ids = _session_ids(4)
    items = [
        (make_session(ids[0]), _users(2)),
        (make_session(ids[1]), iter(_users(3))),  # an iterator, but small: grouped
        (make_session(ids[2]), _user_stream(50)),  # big: alone
        (make_session(ids[3]), _users(1)),
    ]
    issues = ParseIssues()
    summary = warehouse.load_sessions(items, issues)
    assert summary == LoadSummary(
        sessions_loaded=4, users=56, qos_rows=168, system_rows=56, session_ids=ids, transactions=3
    )
    assert issues.counts == {"bitrate": 56}
    assert warehouse.count_rows()["user_qos"] == 168


def _peak_bytes_loading(warehouse: Warehouse, users: int) -> int:
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    result = warehouse.load_sessions([SessionInput(make_session(), _user_stream(users))], ParseIssues())
    assert result.users == users
    return tracemalloc.get_traced_memory()[1] - start


def test_big_session_loads_in_bounded_memory(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """Peak Python memory hardly grows with the session: 20x the users, well under 2x the memory."""
    monkeypatch.setattr(plan, "STREAM_THRESHOLD_ROWS", 300)
    monkeypatch.setattr(loader, "STREAM_BATCH_ROWS", 300)
    warehouse.load_sessions(
        [SessionInput(make_session(), _user_stream(150))], ParseIssues()
    )  # warm caches up
    tracemalloc.start()
    try:
        small = _peak_bytes_loading(warehouse, 100)  # 600 rows: ~0.5 MB
        # 12,000 rows: ~0.6 MB (all in memory: ~18 MB); the least of three, since tracemalloc also
        # counts what other threads of the test process allocate meanwhile
        big = min(_peak_bytes_loading(warehouse, 2000) for _ in range(3))
    finally:
        tracemalloc.stop()
    assert big < 2 * small, f"peak {big:,} B for 2,000 users vs {small:,} B for 100"
    assert warehouse.count_rows()["user_qos"] == 3 * 2000  # each reload replaces the session's rows


def test_users_must_be_an_iterable_of_users(warehouse: Warehouse) -> None:
    with pytest.raises(TypeError, match=r"users of session .* must be an iterable .* got dict"):
        warehouse.load_sessions(
            [SessionInput(make_session(), make_user())], ParseIssues()
        )  # type: ignore[arg-type]
    assert sum(warehouse.count_rows().values()) == 0


@pytest.mark.postgres
def test_sqlite_and_postgres_load_identically(pg_database: URL, tmp_path: Path) -> None:
    odd = make_user(
        "odd\tab\t",
        name="tab\there\nnewline ☃ \\N",
        location="\\u0000 literal",
        join="2025-03-01T05:00:05.123456-05:00",
        user_qos=[{"date_time": "2025-03-01T10:01:00.5Z", "audio_input": {"bitrate": 1.5e3}}],
    )
    items = [
        (make_session(SID, session_name="a\tb", duration=None), [make_user("u1"), odd]),
        (make_session(SID2, user_count="x", has_video="maybe"), _users(3)),
        (make_session("empty"), []),
    ]
    results = {}
    for name, url in (("sqlite", URL.create("sqlite", database=str(tmp_path / "w.db"))), ("pg", pg_database)):
        wh = Warehouse(url)
        wh.ensure_schema()
        issues = ParseIssues()
        summary = wh.load_sessions(items, issues, max_rows_per_transaction=25)
        wh.load_sessions(items[:1], ParseIssues())  # a re-load changes nothing
        results[name] = (summary, issues.as_dict(), snapshot(wh))
        wh.dispose()
    assert results["sqlite"] == results["pg"]
    users = results["pg"][2]["session_users"]
    assert "tab\there\nnewline ☃ \\N" in [u["user_name"] for u in users]


def test_concurrent_loads_of_same_session(warehouse_url: URL) -> None:
    setup = Warehouse(warehouse_url)
    setup.ensure_schema()
    errors: list[BaseException] = []
    user_sets = [[make_user(f"u{i}"), make_user(f"v{i}")] for i in range(6)]

    def work(users: list[dict[str, Any]]) -> None:
        wh = Warehouse(warehouse_url)
        try:
            for _ in range(3):
                wh.load_sessions([SessionInput(make_session(), users)], ParseIssues())
        except BaseException as error:  # collected and asserted below
            errors.append(error)
        finally:
            wh.dispose()

    threads = [threading.Thread(target=work, args=(users,)) for users in user_sets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    users = table_contents(setup, schema.session_users)
    assert len(users) == 2 and {u["user_id"] for u in users} in [{f"u{i}", f"v{i}"} for i in range(6)]
    assert setup.count_rows()["user_qos"] == 6
    setup.dispose()


@pytest.mark.postgres
def test_postgres_uses_schema_with_comments_and_indexes(pg_database: URL) -> None:
    wh = Warehouse(pg_database)  # default schema zoom_qos
    wh.ensure_schema()
    wh.load_sessions([SessionInput(make_session(), [make_user()])], ParseIssues())
    with wh.engine.connect() as conn:
        tables = conn.execute(
            sa.text(
                "select table_schema, table_name from information_schema.tables "
                "where table_schema <> ALL(:x) and table_type = 'BASE TABLE'"
            ),
            {"x": ["pg_catalog", "information_schema"]},
        ).all()
        expected = {t.name for t in schema.METADATA.sorted_tables} | {"alembic_version"}
        assert sorted(tables) == sorted(("zoom_qos", name) for name in expected)
        types = dict(
            conn.execute(
                sa.text(
                    "select column_name, data_type from information_schema.columns "
                    "where table_schema = 'zoom_qos' and table_name = 'user_qos'"
                )
            ).all()
        )
        assert types["sampled_at"] == "timestamp with time zone"
        assert types["bitrate_kbps"] == "double precision"
        assert types["resolution_width"] == "integer"
        assert types["stream"] == "text"
        payload_type = conn.execute(
            sa.text(
                "select data_type from information_schema.columns where table_schema = 'zoom_qos' "
                "and table_name = 'raw_session_users' and column_name = 'payload'"
            )
        ).scalar_one()
        assert payload_type == "jsonb"
        comment = conn.execute(sa.text("select obj_description('zoom_qos.user_qos'::regclass)")).scalar_one()
        assert comment and "stream" in comment
        col_comment = conn.execute(
            sa.text("select col_description('zoom_qos.user_qos'::regclass, 6)")  # bitrate_kbps
        ).scalar_one()
        assert col_comment and "kilobits" in col_comment
        indexes = set(
            conn.execute(sa.text("select indexname from pg_indexes where schemaname = 'zoom_qos'")).scalars()
        )
        assert {
            "ix_user_qos_sampled_at",
            "ix_user_system_qos_sampled_at",
            "ix_session_users_join_time",
        } <= indexes
        assert conn.execute(sa.text("select count(*) from zoom_qos.sessions")).scalar_one() == 1
    wh.dispose()

    custom = Warehouse(pg_database, schema="analytics_qos")
    custom.ensure_schema()
    custom.load_sessions([SessionInput(make_session(), [make_user()])], ParseIssues())
    assert custom.count_rows()["sessions"] == 1
    with custom.engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from analytics_qos.user_qos")).scalar_one() == 3
    custom.dispose()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    wh = Warehouse(URL.create("sqlite", database=str(tmp_path / "w.db")), schema="ignored")
    wh.ensure_schema()
    assert wh.schema is None
    with wh.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    wh.dispose()


# --------------------------------------------------------------------------- run record
def test_record_run_upsert(warehouse: Warehouse) -> None:
    issues = ParseIssues()
    issues.add("bitrate", "23 furlongs")
    started = datetime(2025, 3, 2, 1, 0, tzinfo=UTC)
    warehouse.record_run(
        {
            "run_id": "scheduled__2025-03-02",
            "dag_id": "zoom_qos",
            "window_start": date(2025, 3, 1),
            "window_end": "2025-03-01",
            "started_at": started,
            "outcome": "running",
        }
    )
    warehouse.record_run(
        {
            "run_id": "scheduled__2025-03-02",
            "finished_at": "2025-03-02T01:05:00Z",
            "outcome": "success",
            "sessions_listed": 3,
            "sessions_loaded": 2,
            "rate_limit_wait_seconds": 1.5,
            "unparsed_detail": issues,
            "not_a_column": "ignored",
        }
    )
    (row,) = table_contents(warehouse, schema.pipeline_runs, exclude=())
    assert row["dag_id"] == "zoom_qos" and row["started_at"] == started  # kept from the first write
    assert row["window_start"] == date(2025, 3, 1) and row["window_end"] == date(2025, 3, 1)
    assert row["outcome"] == "success" and row["sessions_loaded"] == 2
    assert row["finished_at"] == datetime(2025, 3, 2, 1, 5, tzinfo=UTC)
    assert row["rate_limit_wait_seconds"] == 1.5
    assert row["unparsed_values"] == 1
    assert row["unparsed_detail"] == {"bitrate": {"count": 1, "example": "23 furlongs"}}
    assert row["recorded_at"].tzinfo is UTC
    warehouse.record_run({"run_id": "manual__x", "outcome": "failed", "error": "boom"})
    assert warehouse.count_rows()["pipeline_runs"] == 2
    with pytest.raises(ValueError):
        warehouse.record_run({"outcome": "success"})


# --------------------------------------------------------------------------- URLs
def test_unsupported_database() -> None:
    with pytest.raises(UnsupportedDatabaseError, match="'mysql'; use sqlite or postgresql"):
        Warehouse("mysql://user@host/db")


def test_advisory_lock_key_stable_and_signed_64() -> None:
    key = advisory_lock_key(SID)
    assert key == advisory_lock_key(SID) and -(2**63) <= key < 2**63
    assert key != advisory_lock_key(SID2)


def test_statistics_are_refreshed_only_where_they_know_fewer_rows_than_were_loaded(warehouse: Warehouse):
    users = [make_user(f"u{i}") for i in range(30)]
    summary = warehouse.load_sessions([(make_session(), users)], ParseIssues())
    loaded = {"sessions": 1, "session_users": summary.users, "user_qos": summary.qos_rows,
              "user_system_qos": summary.system_rows}
    analyzed = warehouse.refresh_statistics(loaded)
    if warehouse.dialect == "sqlite":
        assert analyzed == []
        return
    # fresh tables: the planner knew no rows at all
    assert sorted(analyzed) == sorted(name for name, rows in loaded.items() if rows)
    with warehouse.engine.connect() as conn:
        known = conn.execute(sa.text(
            "SELECT reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relname = 'user_qos'"), {"schema": warehouse.schema}).scalar()
    assert known == summary.qos_rows
    assert warehouse.refresh_statistics(loaded) == []  # now they know: left to autovacuum
