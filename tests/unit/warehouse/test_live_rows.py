"""Live monitoring in the warehouse, on SQLite and PostgreSQL: live loads replaced whole, the daily
run settling them, the live view, the daily views without live sessions, and the live alerts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from tests.builders import ABSENT, qos_sample, run_concurrently, zoom_session, zoom_time, zoom_user
from tests.unit.warehouse.test_loader import table_contents
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.warehouse import schema
from zoom_qos.warehouse.live import evaluate_live_alerts, live_quality, mark_alert_notified
from zoom_qos.warehouse.plan import SessionInput
from zoom_qos.warehouse.sql import object_prefix
from zoom_qos.warehouse.store import Warehouse

LIVE_SID = "live/session=="
PAST_SID = "past/session=="
T0 = datetime(2025, 3, 1, 10, tzinfo=UTC)
POLLED = datetime(2025, 3, 1, 10, 30, tzinfo=UTC)
GOOD, POOR = 100, 200  # latency ms against the 150 ms default limit


def live_session(session_id: str = LIVE_SID, **overrides: Any) -> dict[str, Any]:
    """A session as the live list gives it: no end yet."""
    return zoom_session(session_id, length=None, **overrides)


def user(user_id: str, latencies: list[float | None], *, join: datetime = T0, leave: datetime | None = None,
         stream: str = "audio_input", **extra: Any) -> dict[str, Any]:
    """A join with one sample a minute from its join time: ``latencies`` (None: bitrate only, unrated)."""
    blocks = [{"bitrate": "20 kbps"} if ms is None else {"latency": f"{ms} ms"} for ms in latencies]
    samples = [qos_sample(join + timedelta(minutes=i), **{stream: block}) for i, block in enumerate(blocks)]
    return zoom_user(user_id, join=join, leave=ABSENT if leave is None else leave, samples=samples,
                     network_type="Wifi", data_center="SC", **extra)


def poll(wh: Warehouse, users: list[dict[str, Any]], session_id: str = LIVE_SID) -> Any:
    item = SessionInput(live_session(session_id), users, "live", POLLED)
    return wh.load_live_sessions([item], ParseIssues())


def daily(wh: Warehouse, users: list[dict[str, Any]], status: str = "loaded",
          session_id: str = LIVE_SID) -> Any:
    session = zoom_session(session_id, end_time=zoom_time(T0 + timedelta(hours=1)))
    return wh.load_sessions([SessionInput(session, users if status == "loaded" else (), status, POLLED)],
                            ParseIssues())


def status(wh: Warehouse, session_id: str = LIVE_SID) -> str | None:
    with wh.engine.connect() as conn:
        return conn.execute(sa.select(schema.sessions.c.qos_status)
                            .where(schema.sessions.c.session_id == session_id)).scalar()


def children(wh: Warehouse, session_id: str = LIVE_SID) -> dict[str, list[dict[str, Any]]]:
    tables = (schema.session_users, schema.raw_session_users, schema.user_qos, schema.user_system_qos)
    return {t.name: [r for r in table_contents(wh, t) if r["session_id"] == session_id] for t in tables}


def view(wh: Warehouse, name: str) -> list[dict[str, Any]]:
    with wh.engine.connect() as conn:
        sql = f"SELECT * FROM {object_prefix(wh.dialect, wh.schema)}{name}"
        return [dict(r._mapping) for r in conn.execute(sa.text(sql))]


def alerts(wh: Warehouse) -> list[dict[str, Any]]:
    return table_contents(wh, schema.qos_alerts, exclude=())


def evaluate(wh: Warehouse, **overrides: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    options: dict[str, Any] = {"window_minutes": 10, "poor_share": 0.5, "min_samples": 5, **overrides}
    return evaluate_live_alerts(wh, **options)


# --------------------------------------------------------------------------- loads
def test_a_live_poll_replaces_the_session_rows_whole(warehouse: Warehouse) -> None:
    left = T0 + timedelta(minutes=2)
    summary = poll(warehouse, [user("u1", [GOOD] * 3), user("u2", [GOOD] * 2, leave=left)])
    assert (summary.sessions_live, summary.sessions_loaded, summary.sessions_already_loaded) == (1, 1, 0)
    assert status(warehouse) == "live"
    joins = {r["user_id"]: r for r in children(warehouse)["session_users"]}
    assert joins["u1"]["leave_time"] is None  # still in the session
    assert joins["u2"]["leave_time"] == T0 + timedelta(minutes=2)
    (session,) = table_contents(warehouse, schema.sessions)
    assert session["end_time"] is None and session["qos_checked_at"] == POLLED

    poll(warehouse, [user("u1", [GOOD] * 5)])  # u2 is gone from the next poll, u1 has more samples
    rows = children(warehouse)
    assert [r["user_id"] for r in rows["session_users"]] == ["u1"]
    assert [r["user_id"] for r in rows["raw_session_users"]] == ["u1"]
    assert [r["sampled_at"] for r in rows["user_qos"]] == [T0 + timedelta(minutes=i) for i in range(5)]
    assert status(warehouse) == "live"


def test_pairs_and_other_statuses_load_as_live(warehouse: Warehouse) -> None:
    summary = warehouse.load_live_sessions([(live_session(), [user("u1", [GOOD])])], ParseIssues())
    assert summary.sessions_live == 1 and status(warehouse) == "live"


def test_a_loaded_session_is_never_overwritten_by_a_live_poll(warehouse: Warehouse) -> None:
    daily(warehouse, [user("u1", [GOOD] * 4, leave=T0 + timedelta(minutes=30))])
    before = children(warehouse)
    (session_before,) = table_contents(warehouse, schema.sessions)
    summary = poll(warehouse, [user("u1", [POOR] * 2), user("late", [POOR])])
    assert (summary.sessions_already_loaded, summary.sessions_live, summary.sessions_loaded) == (1, 0, 0)
    assert summary.session_ids == [] and summary.users == 0
    assert status(warehouse) == "loaded"
    assert children(warehouse) == before
    assert table_contents(warehouse, schema.sessions) == [session_before]


def test_a_live_poll_skipping_a_loaded_session_writes_the_others(warehouse: Warehouse) -> None:
    daily(warehouse, [user("u1", [GOOD])], session_id=PAST_SID)
    summary = warehouse.load_live_sessions([
        SessionInput(live_session(PAST_SID), [user("x", [POOR])], "live", POLLED),
        SessionInput(live_session(LIVE_SID), [user("y", [POOR])], "live", POLLED),
    ], ParseIssues())
    assert (summary.sessions_already_loaded, summary.sessions_live, summary.session_ids) == (1, 1, [LIVE_SID])
    assert status(warehouse, PAST_SID) == "loaded" and status(warehouse, LIVE_SID) == "live"
    assert [r["user_id"] for r in children(warehouse, PAST_SID)["session_users"]] == ["u1"]


def test_the_daily_load_replaces_the_live_rows_with_the_final_ones(warehouse: Warehouse) -> None:
    poll(warehouse, [user("u1", [POOR] * 3), user("seen-live-only", [POOR] * 3)])
    final = user("u1", [GOOD] * 2, leave=T0 + timedelta(minutes=40))
    summary = daily(warehouse, [final])
    assert summary.sessions_loaded == 1 and summary.sessions_live == 0
    assert status(warehouse) == "loaded"
    rows = children(warehouse)
    for table, found in rows.items():  # no live row survives, in any table
        assert {r["user_id"] for r in found} <= {"u1"}, table
    assert [r["leave_time"] for r in rows["session_users"]] == [T0 + timedelta(minutes=40)]
    assert [r["latency_ms"] for r in rows["user_qos"]] == [GOOD, GOOD]
    (session,) = table_contents(warehouse, schema.sessions)
    assert session["end_time"] == T0 + timedelta(hours=1)


@pytest.mark.parametrize("answer", ["pending", "unavailable"])
def test_a_live_session_answering_3001_to_the_daily_run_keeps_its_live_rows(
    warehouse: Warehouse, answer: str
) -> None:
    poll(warehouse, [user("u1", [POOR] * 3)])
    before = children(warehouse)
    summary = daily(warehouse, [], status=answer)
    counts = (summary.sessions_pending, summary.sessions_unavailable)
    assert counts == (answer == "pending", answer == "unavailable")
    assert status(warehouse) == answer
    assert children(warehouse) == before
    daily(warehouse, [user("u1", [GOOD])])  # the final rows, once Zoom serves them
    assert status(warehouse) == "loaded"
    assert [r["latency_ms"] for r in children(warehouse)["user_qos"]] == [GOOD]


def test_a_live_poll_and_the_daily_load_at_once_end_loaded(warehouse_url: URL) -> None:
    setup = Warehouse(warehouse_url)
    setup.ensure_schema()
    errors: list[BaseException] = []
    final = [user("final", [GOOD] * 3, leave=T0 + timedelta(minutes=50))]
    start, done = threading.Barrier(2), threading.Event()

    def work(live: bool) -> None:
        wh = Warehouse(warehouse_url)
        try:
            start.wait()
            if live:  # polls during the daily load and after it (late polls)
                n = 0
                while not done.is_set() or n < 3:
                    n += 1 if done.is_set() else 0
                    poll(wh, [user(f"live{n}", [POOR] * 4), user("other", [POOR] * 2)])
            else:
                try:
                    for _ in range(3):
                        daily(wh, final)
                finally:
                    done.set()
        except BaseException as error:  # collected and asserted below
            errors.append(error)
        finally:
            wh.dispose()

    threads = [threading.Thread(target=work, args=(live,)) for live in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert status(setup) == "loaded"
    rows = children(setup)
    assert [r["user_id"] for r in rows["session_users"]] == ["final"]
    assert len(rows["user_qos"]) == 3
    setup.dispose()


# --------------------------------------------------------------------------- views
def test_daily_views_leave_live_sessions_out(warehouse: Warehouse) -> None:
    daily(warehouse, [user("u1", [POOR] * 3)], session_id=PAST_SID)
    poll(warehouse, [user("u2", [POOR] * 4), user("u3", [GOOD] * 4)])
    assert {r["session_id"] for r in view(warehouse, "qos_samples")} == {PAST_SID}
    assert [r["session_id"] for r in view(warehouse, "session_quality")] == [PAST_SID]
    (day,) = [r for r in view(warehouse, "daily_quality") if r["media_type"] == "audio"]
    assert (day["sessions"], day["users"], day["samples"]) == (1, 1, 3)
    breakdown = view(warehouse, "daily_quality_breakdown")
    assert breakdown and all(r["sessions"] == 1 and r["samples"] == 3 for r in breakdown)
    (completeness,) = view(warehouse, "daily_completeness")
    assert (completeness["warehouse_sessions"], completeness["sessions_loaded"]) == (1, 1)
    # once the daily run settles the live session it counts everywhere
    daily(warehouse, [user("u2", [POOR] * 4)])
    assert {r["session_id"] for r in view(warehouse, "qos_samples")} == {PAST_SID, LIVE_SID}
    assert len(view(warehouse, "session_quality")) == 2


def test_live_session_quality_shows_sessions_in_progress_over_the_window(warehouse: Warehouse) -> None:
    daily(warehouse, [user("u1", [POOR] * 20)], session_id=PAST_SID)  # loaded: not shown
    # 20 samples, one a minute: the window is the 10 up to the latest (minutes 10..19): 6 poor
    latencies: list[float | None] = [GOOD] * 10 + [POOR] * 6 + [GOOD] * 4
    joined = T0 + timedelta(seconds=30)
    poll(warehouse, [
        user("u1", latencies, join=joined),
        user("u1", [POOR, None, POOR], join=joined + timedelta(minutes=30), stream="video_input"),  # a rejoin
        user("u2", [None] * 3),  # samples, none rated
        user("u3", [POOR] * 3, stream="custom_block"),  # 'other' media: not shown
    ])
    rows = view(warehouse, "live_session_quality")
    assert list(rows[0]) == ["session_id", "session_name", "user_id", "user_name", "join_time", "media_type",
                             "rated_samples", "poor_share", "last_sampled_at"]
    with warehouse.engine.connect() as conn:
        same = live_quality(conn)
        wide = live_quality(conn, 60)
        before = live_quality(conn, 10, until=joined + timedelta(minutes=12))
    got = {(r["user_id"], r["media_type"], r["rated_samples"], r["poor_share"]) for r in same}
    assert got == {("u1", "audio", 10, 0.6), ("u1", "video", 2, 1.0), ("u2", "audio", 0, None)}
    assert {r["session_id"] for r in same} == {LIVE_SID} and same[0]["session_name"] == "Standup"
    audio = next(r for r in same if r["user_id"] == "u1" and r["media_type"] == "audio")
    assert (audio["user_name"], audio["join_time"]) == ("name-u1", joined)
    assert audio["last_sampled_at"] == joined + timedelta(minutes=19)
    # the view has the same rows as live_quality() with the default window
    assert len(rows) == len(same) == 3
    lookup = {(r["user_id"], r["media_type"], str(r["join_time"])[:16]): r for r in rows}
    for row in same:
        mine = lookup[(row["user_id"], row["media_type"], str(row["join_time"])[:16])]
        assert mine["rated_samples"] == row["rated_samples"]
        assert (mine["poor_share"] is None) == (row["poor_share"] is None)
        if row["poor_share"] is not None:
            assert float(mine["poor_share"]) == pytest.approx(row["poor_share"])
    wide_audio = next(r for r in wide if r["user_id"] == "u1" and r["media_type"] == "audio")
    assert (wide_audio["rated_samples"], wide_audio["poor_share"]) == (20, 0.3)
    old = next(r for r in before if r["user_id"] == "u1" and r["media_type"] == "audio")
    # as of minute 12: samples 3..12, poor 10..12
    assert (old["rated_samples"], old["poor_share"], old["last_sampled_at"]) == (
        10, 0.3, joined + timedelta(minutes=12))
    with pytest.raises(ValueError, match="window_minutes"):
        with warehouse.engine.connect() as conn:
            live_quality(conn, 0)


# --------------------------------------------------------------------------- alerts
def test_an_alert_is_raised_once_cleared_and_raised_again_when_it_returns(warehouse: Warehouse) -> None:
    bad = [GOOD] * 10 + [POOR] * 6 + [GOOD] * 4  # last 10: 6 poor
    poll(warehouse, [user("u1", bad)])
    raised, cleared = evaluate(warehouse)
    assert cleared == []
    (alert,) = raised
    assert {k: alert[k] for k in ("session_id", "session_name", "user_id", "user_name", "media_type",
                                  "poor_share", "rated_samples", "window_minutes", "device",
                                  "network_type", "data_center", "notified_at", "cleared_at")} == {
        "session_id": LIVE_SID, "session_name": "Standup", "user_id": "u1", "user_name": "name-u1",
        "media_type": "audio", "poor_share": 0.6, "rated_samples": 10, "window_minutes": 10,
        "device": "Mac", "network_type": "Wifi", "data_center": "SC", "notified_at": None, "cleared_at": None}
    assert (alert["join_time"], alert["first_seen_at"]) == (T0, T0 + timedelta(minutes=19))
    (row,) = alerts(warehouse)
    assert row == {k: alert[k] for k in row}

    for extra in ([], [POOR], [GOOD]):  # more polls, the problem still there: no new alert
        poll(warehouse, [user("u1", bad + extra)])
        assert evaluate(warehouse) == ([], [])
    assert len(alerts(warehouse)) == 1

    better = bad + [GOOD] + [GOOD] * 5  # last 10: minutes 16..25, 0 poor
    poll(warehouse, [user("u1", better)])
    raised, cleared = evaluate(warehouse)
    assert raised == []
    (gone,) = cleared
    assert gone["cleared_at"] == T0 + timedelta(minutes=25)
    assert gone["first_seen_at"] == alert["first_seen_at"]
    assert gone["poor_share"] == 0.0
    assert evaluate(warehouse) == ([], [])
    assert [r["cleared_at"] for r in alerts(warehouse)] == [T0 + timedelta(minutes=25)]

    back = better + [POOR] * 5  # minutes 26..30 poor: 5 of the last 10
    poll(warehouse, [user("u1", back)])
    raised, cleared = evaluate(warehouse)
    assert cleared == [] and [(a["first_seen_at"], a["poor_share"]) for a in raised] == [
        (T0 + timedelta(minutes=30), 0.5)]  # the limit is reached at >=
    rows = alerts(warehouse)
    assert [(r["first_seen_at"], r["cleared_at"]) for r in rows] == [
        (T0 + timedelta(minutes=19), T0 + timedelta(minutes=25)), (T0 + timedelta(minutes=30), None)]


def test_no_alert_below_the_limits_or_outside_live_sessions(warehouse: Warehouse) -> None:
    daily(warehouse, [user("u1", [POOR] * 20)], session_id=PAST_SID)  # loaded: never alerts
    poll(warehouse, [
        user("few", [POOR] * 4),  # 4 rated < min_samples
        user("unrated", [None] * 4 + [POOR] * 4),  # 4 rated
        user("fine", [GOOD] * 6 + [POOR] * 4),  # share 0.4
        user("other", [POOR] * 10, stream="custom_block"),  # not a rated media type
    ])
    assert evaluate(warehouse) == ([], [])
    raised, _ = evaluate(warehouse, min_samples=4)
    assert sorted(a["user_id"] for a in raised) == ["few", "unrated"]
    assert alerts(warehouse) and all(r["session_id"] == LIVE_SID for r in alerts(warehouse))


def test_each_media_type_alerts_on_its_own(warehouse: Warehouse) -> None:
    audio = user("u1", [POOR] * 6)
    video = user("u1", [POOR] * 6, stream="video_input")
    audio["user_qos"] = [{**a, **v} for a, v in zip(audio["user_qos"], video["user_qos"], strict=True)]
    poll(warehouse, [audio])
    raised, _ = evaluate(warehouse)
    assert sorted(a["media_type"] for a in raised) == ["audio", "video"]
    assert evaluate(warehouse) == ([], [])


def test_evaluating_as_of_now_ignores_later_samples(warehouse: Warehouse) -> None:
    poll(warehouse, [user("u1", [POOR] * 6 + [GOOD] * 10)])
    raised, _ = evaluate(warehouse, now=T0 + timedelta(minutes=5, seconds=30))
    assert [(a["first_seen_at"], a["rated_samples"]) for a in raised] == [(T0 + timedelta(minutes=5), 6)]
    raised, cleared = evaluate(warehouse)
    assert raised == [] and [c["cleared_at"] for c in cleared] == [T0 + timedelta(minutes=15)]


def test_mark_alert_notified_sets_notified_at(warehouse: Warehouse) -> None:
    poll(warehouse, [user("u1", [POOR] * 6)])
    (alert,) = evaluate(warehouse)[0]
    when = datetime(2025, 3, 1, 10, 7, tzinfo=UTC)
    assert mark_alert_notified(warehouse, alert, when) is True
    assert [r["notified_at"] for r in alerts(warehouse)] == [when]
    assert mark_alert_notified(warehouse, {**alert, "user_id": "nobody"}) is False
    assert mark_alert_notified(warehouse.engine, alert) is True  # now
    assert alerts(warehouse)[0]["notified_at"] > when


def test_alert_arguments_are_checked(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="window_minutes"):
        evaluate(warehouse, window_minutes=0)
    with pytest.raises(ValueError, match="min_samples"):
        evaluate(warehouse, min_samples=0)
    with pytest.raises(TypeError, match="Warehouse or an SQLAlchemy Engine"):
        evaluate_live_alerts("nope", window_minutes=10, poor_share=0.5, min_samples=5)


def test_concurrent_evaluations_raise_an_alert_once(warehouse_url: URL) -> None:
    setup = Warehouse(warehouse_url)
    setup.ensure_schema()
    poll(setup, [user(f"u{i}", [POOR] * 8) for i in range(3)])

    def work() -> list[dict[str, Any]]:
        wh = Warehouse(warehouse_url)
        try:
            return [alert for _ in range(3) for alert in evaluate(wh)[0]]
        finally:
            wh.dispose()

    found = [alert for raised in run_concurrently(work, threads=4) for alert in raised]
    assert sorted(a["user_id"] for a in found) == ["u0", "u1", "u2"]
    assert len(alerts(setup)) == 3
    setup.dispose()


# --------------------------------------------------------------------------- migration
def test_upgrade_from_0004_keeps_the_data_and_adds_qos_alerts(warehouse_url: URL) -> None:
    from alembic import command

    from tests.unit.warehouse.test_migrations import version
    from zoom_qos.warehouse import migrations

    wh = Warehouse(warehouse_url)
    try:
        # Rows of a warehouse at 0004: loaded at head (the loader writes the derived tables), then
        # taken back to 0004, which keeps every data row.
        wh.ensure_schema()
        daily(wh, [user("u1", [POOR] * 3, leave=T0 + timedelta(minutes=5))], session_id=PAST_SID)
        daily(wh, [], status="pending")
        wh.record_run({"run_id": "r1", "outcome": "success", "sessions_loaded": 1})
        with wh.engine.begin() as conn:
            command.downgrade(migrations.alembic_config(conn, wh.schema), "0004_quality_alerts")
        data_tables = [t for t in schema.TABLES if t is not schema.pipeline_runs]
        before = {t.name: table_contents(wh, t) for t in data_tables}
        with wh.engine.connect() as conn:
            assert "qos_alerts" not in sa.inspect(conn).get_table_names(schema=wh.schema)

        assert wh.ensure_schema() is True
        assert version(wh) == migrations.head_revision()
        assert {t.name: table_contents(wh, t) for t in data_tables} == before
        assert [(r["run_id"], r["outcome"]) for r in table_contents(wh, schema.pipeline_runs)] == [
            ("r1", "success")]
        assert alerts(wh) == [] and view(wh, "live_session_quality") == []
        # the upgraded warehouse takes live polls, alerts and paused run records
        poll(wh, [user("u1", [POOR] * 6)], session_id="new-live==")
        assert len(evaluate(wh)[0]) == 1
        wh.record_run({"run_id": "live-1", "outcome": "paused"})
        health = {r["run_id"]: r["health"] for r in view(wh, "run_health")}
        assert health == {"r1": "healthy", "live-1": "paused"}

        with wh.engine.begin() as conn:  # and back: qos_alerts goes, the rest stays
            command.downgrade(migrations.alembic_config(conn, wh.schema), "0004_quality_alerts")
        with wh.engine.connect() as conn:
            assert "qos_alerts" not in sa.inspect(conn).get_table_names(schema=wh.schema)
        assert wh.ensure_schema() is True and version(wh) == migrations.head_revision()
        assert status(wh, PAST_SID) == "loaded"
    finally:
        wh.dispose()
