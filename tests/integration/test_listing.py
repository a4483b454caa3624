"""Listing a run's sessions: the lookback reads only what the previous run could not load."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from zoom_qos import tasks
from zoom_qos.pipeline.staging import read_jsonl
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.warehouse.plan import SessionInput
from zoom_qos.warehouse.store import Warehouse


@pytest.fixture
def warehouse(tmp_path):
    wh = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    wh.ensure_schema()
    yield wh
    wh.dispose()


def listed(tmp_path, warehouse, day, **params):
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    batches, stats = tasks.list_sessions(
        dag_id="d", run_id=f"r-{len(list(tmp_path.iterdir()))}", interval_start=start,
        interval_end=start + timedelta(days=1), params={"lookback_days": 1, **params},
        staging=(tmp_path / "staging").as_uri(), warehouse=warehouse)
    ids = {str(s["id"]) for b in batches for s in read_jsonl(b["sessions_uri"])}
    return ids, stats


def ended(simulator, day):
    return [s for s in simulator.dataset.sessions_for_day(day) if s.get("end_time")]


def test_lookback_sessions_already_loaded_are_not_read_again(simulator, zoom_conn, tmp_path, warehouse):
    day = simulator.dataset.now.date() - timedelta(days=2)
    previous, today = ended(simulator, day - timedelta(days=1)), ended(simulator, day)
    assert len(previous) >= 2 and today
    loaded, not_loaded = previous[:-1], previous[-1]
    warehouse.load_sessions([(s, []) for s in loaded], ParseIssues())

    ids, stats = listed(tmp_path, warehouse, day)
    assert ids == {s["id"] for s in today} | {not_loaded["id"]}
    assert stats["sessions_listed"] == len(previous) + len(today)
    assert stats["sessions_already_loaded"] == len(loaded)


def test_sessions_loaded_too_soon_after_their_end_are_read_again(simulator, zoom_conn, tmp_path,
                                                                 warehouse):
    day = simulator.dataset.now.date() - timedelta(days=2)
    previous = ended(simulator, day - timedelta(days=1))
    warehouse.load_sessions([(s, []) for s in previous], ParseIssues())
    # the sessions ended days ago, and were loaded just now: ten days after their end is not yet
    ids, stats = listed(tmp_path, warehouse, day, lookback_settle_minutes=10 * 24 * 60)
    assert {s["id"] for s in previous} <= ids and stats["sessions_already_loaded"] == 0


def test_a_manual_range_reload_reads_everything_again(simulator, zoom_conn, tmp_path, warehouse):
    day = simulator.dataset.now.date() - timedelta(days=3)
    sessions = ended(simulator, day)
    warehouse.load_sessions([(s, []) for s in sessions], ParseIssues())
    batches, stats = tasks.list_sessions(
        dag_id="d", run_id="manual", interval_start=None, interval_end=None,
        params={"from_date": day.isoformat(), "to_date": day.isoformat()},
        staging=(tmp_path / "staging").as_uri(), warehouse=warehouse)
    assert {str(s["id"]) for b in batches for s in read_jsonl(b["sessions_uri"])} >= {
        s["id"] for s in sessions}
    assert stats["sessions_already_loaded"] == 0


def test_lookback_sessions_pending_or_unavailable_are_read_again(simulator, zoom_conn, tmp_path, warehouse):
    day = simulator.dataset.now.date() - timedelta(days=2)
    previous = ended(simulator, day - timedelta(days=1))
    assert len(previous) >= 3
    loaded, pending, unavailable = previous[0], previous[1], previous[2]
    checked = datetime.now(UTC)
    warehouse.load_sessions([SessionInput(loaded, []), SessionInput(pending, (), "pending", checked),
                             SessionInput(unavailable, (), "unavailable", checked)], ParseIssues())
    ids, stats = listed(tmp_path, warehouse, day)
    assert loaded["id"] not in ids and {pending["id"], unavailable["id"]} <= ids
    assert stats["sessions_already_loaded"] == 1 and stats["sessions_revisited"] == 0


def test_pending_sessions_zoom_no_longer_lists_are_asked_for_again(simulator, zoom_conn, tmp_path, warehouse):
    day = simulator.dataset.now.date() - timedelta(days=2)
    old = ended(simulator, day - timedelta(days=5))
    assert len(old) >= 2
    checked = datetime.now(UTC)
    warehouse.load_sessions([SessionInput(old[0], (), "pending", checked),
                             SessionInput(old[1], (), "unavailable", checked)], ParseIssues())
    batches, stats = tasks.list_sessions(
        dag_id="d", run_id="revisit", interval_start=datetime(day.year, day.month, day.day, tzinfo=UTC),
        interval_end=datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1),
        params={"lookback_days": 1}, staging=(tmp_path / "staging").as_uri(), warehouse=warehouse)
    staged = {str(s["id"]): s for b in batches for s in read_jsonl(b["sessions_uri"])}
    assert old[0]["id"] in staged and old[1]["id"] not in staged
    assert staged[old[0]["id"]] == old[0]  # as Zoom listed it, from the raw layer
    assert stats["sessions_revisited"] == 1


def test_zoom_s_daily_counts_are_read_once_per_month_touched(simulator, zoom_conn, tmp_path, warehouse):
    day = simulator.dataset.now.date() - timedelta(days=2)
    simulator.reset_stats()
    _, stats = listed(tmp_path, warehouse, day)
    months = {day.replace(day=1), (day - timedelta(days=1)).replace(day=1)}
    assert simulator.stats()["by_endpoint"]["daily_report"] == len(months)
    counted = {entry["date"]: entry["sessions"] for entry in stats["daily_usage"]}
    assert counted[day.isoformat()] == len(ended(simulator, day))


# --------------------------------------------------------------------------- a user's mistakes fail fast
def list_failing(tmp_path, warehouse, progress=None, **params):
    """The listing as the DAG task runs it: permanent errors fail at once (AirflowFailException)."""
    from zoom_qos.operators import fail_fast

    with fail_fast():
        tasks.list_sessions(dag_id="d", run_id="bad", interval_start=None, interval_end=None,
                            params=params, staging=(tmp_path / "staging").as_uri(), warehouse=warehouse,
                            progress=progress)


def test_a_wrong_secret_fails_at_once_saying_which_fields_to_fix(simulator, monkeypatch, tmp_path,
                                                                 warehouse):
    from airflow.sdk.exceptions import AirflowFailException

    from tests.conftest import zoom_connection_json
    from zoom_qos.zoom.errors import AUTH_REFUSED_MESSAGE, ZoomAuthError

    monkeypatch.setenv("AIRFLOW_CONN_ZOOM_VIDEOSDK",
                       zoom_connection_json(simulator.base_url, secret="wrong-secret-xyz"))
    day = (simulator.dataset.now.date() - timedelta(days=2)).isoformat()
    simulator.reset_stats()
    progress: dict = {}
    with pytest.raises(AirflowFailException) as caught:
        list_failing(tmp_path, warehouse, progress, from_date=day, to_date=day)
    assert isinstance(caught.value.__cause__, ZoomAuthError)
    assert AUTH_REFUSED_MESSAGE in str(caught.value) and "wrong-secret-xyz" not in str(caught.value)
    # one request and the one retry with a renewed JWT; nothing else
    assert simulator.stats()["by_endpoint"]["list_sessions"] == 2
    # what the run record of this failed listing gets: the window and the requests spent
    assert (progress["window_start"], progress["window_end"], progress["requests"]) == (day, day, 2)


@pytest.mark.parametrize("params,message", [
    ({"from_date": "2026-13-45"}, "param from_date must be a real calendar day as YYYY-MM-DD"),
    ({"from_date": "2026-03-02", "to_date": "2026-03-01"},
     r"from_date \(2026-03-02\) is after to_date \(2026-03-01\)"),
])
def test_impossible_dates_fail_at_once_before_any_request(simulator, zoom_conn, tmp_path, warehouse,
                                                          params, message):
    from airflow.sdk.exceptions import AirflowFailException

    from zoom_qos.core.errors import InvalidWindowError

    simulator.reset_stats()
    with pytest.raises(AirflowFailException, match=message) as caught:
        list_failing(tmp_path, warehouse, **params)
    assert isinstance(caught.value.__cause__, InvalidWindowError)
    assert sum(simulator.stats()["by_endpoint"].values()) == 0


def test_an_unreachable_warehouse_fails_before_any_zoom_request(simulator, zoom_conn, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from zoom_qos.core.errors import WarehouseUnreachableError

    missing = Warehouse(f"sqlite:///{tmp_path / 'no-such-dir' / 'w.db'}")
    day = (simulator.dataset.now.date() - timedelta(days=2)).isoformat()
    simulator.reset_stats()
    try:
        with pytest.raises(AirflowFailException) as caught:
            list_failing(tmp_path, missing, from_date=day, to_date=day)
    finally:
        missing.dispose()
    assert isinstance(caught.value.__cause__, WarehouseUnreachableError)
    assert "no-such-dir" in str(caught.value) and "unable to open database file" in str(caught.value)
    assert sum(simulator.stats()["by_endpoint"].values()) == 0
