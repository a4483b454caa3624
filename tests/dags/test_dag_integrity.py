"""The DAG folder imports cleanly, without touching the network or a database at parse time."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import CronDataIntervalTimetable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag():
    real_connect = socket.socket.connect
    attempts: list[object] = []

    def forbidden(self, address):  # any connection at parse time is a bug
        attempts.append(address)
        raise OSError(f"network access at DAG parse time: {address}")

    socket.socket.connect = forbidden
    try:
        bag = DagBag(dag_folder=str(ROOT / "dags"))
    finally:
        socket.socket.connect = real_connect
    assert attempts == [], f"DAG parsing opened connections: {attempts}"
    return bag


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_the_daily_dag_is_there_with_its_tasks(dagbag):
    dag = dagbag.dags.get("zoom_videosdk_qos")
    assert dag is not None
    assert set(dag.task_ids) == {"list_sessions", "extract_qos", "load_warehouse", "check_alerts",
                                 "record_run", "reconcile_webhooks"}
    # beside the load, never holding it up
    assert dag.get_task("reconcile_webhooks").upstream_task_ids == set()
    assert dag.get_task("reconcile_webhooks").downstream_task_ids == set()
    assert dag.get_task("load_warehouse").upstream_task_ids == {"list_sessions", "extract_qos"}
    assert dag.get_task("record_run").trigger_rule == "all_done"


def test_runs_cover_whole_utc_days(dagbag):
    dag = dagbag.dags.get("zoom_videosdk_qos")
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.catchup is False
    import pendulum
    from airflow.serialization.encoders import coerce_to_core_timetable

    interval = coerce_to_core_timetable(dag.timetable).infer_manual_data_interval(
        run_after=pendulum.datetime(2026, 11, 21, 6, 30, tz="UTC"))
    assert interval.start == pendulum.datetime(2026, 11, 20, tz="UTC")
    assert interval.end == pendulum.datetime(2026, 11, 21, tz="UTC")


def test_reload_params_are_declared(dagbag):
    params = dagbag.dags.get("zoom_videosdk_qos").params
    assert params["from_date"] is None and params["to_date"] is None
    assert params["lookback_days"] == 1


def test_retries_are_configured(dagbag):
    dag = dagbag.dags.get("zoom_videosdk_qos")
    assert all(dag.get_task(t).retries >= 1 for t in ("list_sessions", "load_warehouse"))


def test_plugin_scan_skips_the_library_package():
    """Airflow imports every .py under plugins/ as a top-level module unless ignored."""
    from airflow._shared.module_loading import find_path_from_directory

    scanned = [Path(p) for p in find_path_from_directory(str(ROOT / "plugins"), ".airflowignore")]
    assert not [p for p in scanned if "zoom_qos" in p.parts]


@pytest.mark.parametrize("value", ["2026-13-45", "2026-02-30"])
def test_an_impossible_date_is_refused_when_the_run_is_triggered(dagbag, value):
    from airflow.sdk.exceptions import ParamValidationError

    params = dagbag.dags["zoom_videosdk_qos"].params
    for name in ("from_date", "to_date"):
        with pytest.raises(ParamValidationError, match="not a 'date'"):
            params.get_param(name).resolve(value)
        assert params.get_param(name).resolve("2026-02-28") == "2026-02-28"


def test_tasks_that_never_park_have_time_limits_and_the_extraction_none(dagbag):
    dag = dagbag.dags["zoom_videosdk_qos"]
    for task_id in ("list_sessions", "load_warehouse", "record_run"):
        assert dag.get_task(task_id).execution_timeout is not None, task_id
    # the extraction may park until Zoom's daily reset: nothing may kill it, nor the run around it
    assert dag.get_task("extract_qos").execution_timeout is None
    assert dag.dagrun_timeout is None


def test_mapped_batches_are_labelled_with_their_sessions(dagbag):
    from jinja2 import Template

    template = dagbag.dags["zoom_videosdk_qos"].get_task("extract_qos").partial_kwargs["map_index_template"]
    label = Template(template).render(task={"batch": {"index": 2, "first": 201, "last": 300, "of": 950}})
    assert label == "batch 2: sessions 201-300 of 950"


def _extraction_limit(monkeypatch, redis_url: str | None) -> int | None:
    if redis_url is None:
        monkeypatch.delenv("AIRFLOW__ZOOM_QOS__RATE_LIMIT_REDIS_URL", raising=False)
    else:
        monkeypatch.setenv("AIRFLOW__ZOOM_QOS__RATE_LIMIT_REDIS_URL", redis_url)
    monkeypatch.delenv("ZOOM_QOS_RATE_LIMIT_REDIS_URL", raising=False)
    bag = DagBag(dag_folder=str(ROOT / "dags" / "zoom_videosdk_qos.py"))
    return bag.dags["zoom_videosdk_qos"].get_task("extract_qos").partial_kwargs.get("max_active_tis_per_dag")


def test_without_shared_redis_one_extraction_runs_at_a_time(monkeypatch):
    assert _extraction_limit(monkeypatch, None) == 1
    assert _extraction_limit(monkeypatch, "redis://127.0.0.1:6379/1") is None


def test_the_live_dag_polls_one_run_at_a_time_at_the_configured_interval(dagbag, monkeypatch):
    from datetime import timedelta

    dag = dagbag.dags["zoom_videosdk_qos_live"]
    assert dag.task_ids == ["poll_live"]
    assert dag.max_active_runs == 1 and dag.catchup is False and dag.dagrun_timeout is None
    assert dag.get_task("poll_live").execution_timeout is not None
    assert dag.timetable.delta == timedelta(minutes=5)
    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__LIVE_INTERVAL_MINUTES", "2")
    bag = DagBag(dag_folder=str(ROOT / "dags" / "zoom_videosdk_qos_live.py"))
    assert bag.dags["zoom_videosdk_qos_live"].timetable.delta == timedelta(minutes=2)


def test_the_events_dag_runs_on_the_watched_asset_with_the_daily_runs_tasks(dagbag):
    from airflow.triggers.base import BaseEventTrigger

    from zoom_qos.assets import ZOOM_ENDED_SESSIONS

    dag = dagbag.dags.get("zoom_videosdk_qos_events")
    assert dag is not None
    assert set(dag.task_ids) == {"list_sessions", "extract_qos", "load_warehouse", "settle_events",
                                 "record_run"}
    assert dag.get_task("settle_events").upstream_task_ids == {"load_warehouse"}
    assert dag.get_task("record_run").trigger_rule == "all_done"
    assert dag.max_active_runs == 1
    (watcher,) = ZOOM_ENDED_SESSIONS.watchers
    assert isinstance(watcher.trigger, BaseEventTrigger)
    assert list(dag.timetable.asset_condition.objects) == [ZOOM_ENDED_SESSIONS]
