"""The webhook store: each event kept once however often Zoom delivers it, Zoom's alerts in their own
table, and the ``session.ended`` rows handed to the events DAG and closed by what came of them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from zoom_qos.warehouse.schema import qos_alerts
from zoom_qos.warehouse.sql import object_prefix
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.webhook_schema import webhook_events, webhook_signatures_seen, zoom_session_alerts
from zoom_qos.warehouse.webhooks import (
    REPLAY_MEMORY,
    Outcome,
    due_count,
    due_ended_events,
    event_loaded_sessions,
    record_outcomes,
    store_event,
)
from zoom_qos.zoom.webhooks import ZoomEvent

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def ended(session_id: str, at: datetime = T0, request_id: str = "r1") -> ZoomEvent:
    obj = {"session_id": session_id, "session_name": "n", "start_time": "2026-05-04T09:00:00Z",
           "end_time": at.isoformat()}
    return ZoomEvent("session.ended", at, obj, request_id)


def rows(wh: Warehouse) -> list[dict]:
    with wh.engine.connect() as conn:
        query = sa.select(webhook_events).order_by(webhook_events.c.event_ts)
        return [dict(r._mapping) for r in conn.execute(query)]


def test_an_event_is_stored_once_and_its_deliveries_counted(warehouse: Warehouse) -> None:
    assert store_event(warehouse.engine, ended("A"), T0)
    # Zoom's retry of the same event carries another request id: still the same event.
    assert not store_event(warehouse.engine, ended("A", request_id="r2"), T0 + timedelta(minutes=5))
    (row,) = rows(warehouse)
    assert (row["session_id"], row["deliveries"], row["request_id"], row["received_at"]) == ("A", 2, "r1", T0)
    assert row["payload"]["session_name"] == "n"
    # Another event of the same session (a second end, another event_ts) is a new row.
    assert store_event(warehouse.engine, ended("A", T0 + timedelta(hours=1)), T0)
    assert len(rows(warehouse)) == 2


def test_zoom_alerts_land_in_their_table_in_zooms_words(warehouse: Warehouse) -> None:
    obj = {"id": "al-1", "session_id": "S", "session_name": "Standup", "session_key": "k",
           "issues": ["Unstable audio quality", "High CPU occupation"]}
    assert store_event(warehouse.engine, ZoomEvent("session.alert", T0, obj, None), T0)
    assert not store_event(warehouse.engine, ZoomEvent("session.alert", T0, obj, "x"), T0)
    with warehouse.engine.connect() as conn:
        (alert,) = conn.execute(sa.select(zoom_session_alerts)).all()
    assert (alert.session_id, alert.alert_id, alert.issues) == (
        "S", "al-1", "Unstable audio quality, High CPU occupation")


def test_due_events_one_per_session_and_pending_ones_wait_for_their_backoff(warehouse: Warehouse) -> None:
    for sid, minutes in (("A", 0), ("B", 1), ("C", 2)):
        store_event(warehouse.engine, ended(sid, T0 + timedelta(minutes=minutes)), T0)
    store_event(warehouse.engine, ended("A", T0 + timedelta(minutes=3)), T0)  # A ended twice
    due = due_ended_events(warehouse.engine, T0)
    assert [e.session_id for e in due] == ["A", "B", "C"]
    assert due_count(warehouse.engine, T0)[0] == 4

    later = T0 + timedelta(minutes=10)
    record_outcomes(warehouse.engine, {"A": Outcome("loaded"), "B": Outcome("pending", later)}, "run-1", T0)
    assert [e.session_id for e in due_ended_events(warehouse.engine, T0)] == ["C"]
    count, latest = due_count(warehouse.engine, T0)
    assert count == 1 and latest == T0  # C arrived at T0
    # Once B's backoff is over it is due again, with its attempt counted.
    (b,) = [e for e in due_ended_events(warehouse.engine, later) if e.session_id == "B"]
    assert b.attempts == 1
    assert due_count(warehouse.engine, later) == (2, later)
    by_session = {(r["session_id"], r["event_ts"]): r for r in rows(warehouse)}
    assert all(r["outcome"] == "loaded" and r["handled_by"] == "run-1"
               for (sid, _), r in by_session.items() if sid == "A")
    assert event_loaded_sessions(warehouse.engine, ["A", "B", "C", "Z"]) == {"A"}


def test_alert_comparison_says_which_side_flagged_each_session(warehouse: Warehouse) -> None:
    def alert(session_id: str, at: datetime, issues: list[str]) -> ZoomEvent:
        return ZoomEvent("session.alert", at, {"session_id": session_id, "issues": issues}, None)

    store_event(warehouse.engine, alert("both", T0, ["Unstable audio quality"]), T0)
    store_event(warehouse.engine, alert("both", T0 + timedelta(minutes=3), ["Call Reconnection"]), T0)
    store_event(warehouse.engine, alert("zoom-only", T0, ["High CPU occupation"]), T0)
    ours = [{"session_id": sid, "user_id": "u", "join_time": T0, "media_type": "audio",
             "first_seen_at": T0 + timedelta(minutes=m), "poor_share": 0.9, "rated_samples": 10,
             "window_minutes": 10} for sid, m in (("both", 1), ("both", 2), ("ours-only", 5))]
    with warehouse.engine.begin() as conn:
        conn.execute(sa.insert(qos_alerts), ours)
        got = {r.session_id: r for r in conn.execute(sa.text(
            f"SELECT * FROM {object_prefix(warehouse.dialect, warehouse.schema)}alert_comparison"))}
    assert set(got) == {"both", "zoom-only", "ours-only"}
    both = got["both"]
    assert (both.flagged_by_zoom, both.flagged_by_us, both.zoom_alerts, both.our_alerts) == (1, 1, 2, 2)
    assert both.zoom_last_issues == "Call Reconnection"
    assert (got["zoom-only"].flagged_by_us, got["ours-only"].flagged_by_zoom) == (0, 0)
    assert got["ours-only"].zoom_last_issues is None and got["ours-only"].our_alerts == 1


def test_the_same_signed_request_again_changes_nothing_and_is_forgotten_after_the_memory(
    warehouse: Warehouse
) -> None:
    first = dataclasses.replace(ended("A"), signature_hash="sig-1")
    assert store_event(warehouse.engine, first, T0)
    assert not store_event(warehouse.engine, first, T0 + timedelta(seconds=30))  # replayed: not counted
    assert rows(warehouse)[0]["deliveries"] == 1
    retry = dataclasses.replace(ended("A", request_id="r1"), signature_hash="sig-2")  # Zoom re-signs
    assert not store_event(warehouse.engine, retry, T0 + timedelta(minutes=5))
    assert rows(warehouse)[0]["deliveries"] == 2
    with warehouse.engine.connect() as conn:
        remembered = conn.execute(sa.select(webhook_signatures_seen.c.signature_hash)).scalars().all()
    assert sorted(remembered) == ["sig-1", "sig-2"]
    later = dataclasses.replace(ended("B"), signature_hash="sig-3")
    assert store_event(warehouse.engine, later, T0 + REPLAY_MEMORY + timedelta(minutes=6))
    with warehouse.engine.connect() as conn:
        remembered = conn.execute(sa.select(webhook_signatures_seen.c.signature_hash)).scalars().all()
    assert remembered == ["sig-3"]  # the older ones are past the window in which they could be accepted
