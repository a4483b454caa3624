"""zoom_qos.tasks, the Airflow layer of the DAGs' tasks: XCom, skips and failing fast."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from zoom_qos import tasks
from zoom_qos.core.config import LISTING_PARAM_DEFAULTS
from zoom_qos.core.contracts import DAILY_DAG_ID, LIST_TASK_ID, STATS_XCOM_KEY
from zoom_qos.core.errors import InvalidParamError, StagingIncompleteError, StorageUnwritableError


class FakeTaskInstance:
    """What the tasks use of a task instance: pushes kept, pulls answered from ``pulls``."""

    def __init__(self, pulls: dict[tuple[str, str | None], Any] | None = None) -> None:
        self.pushed: dict[str, Any] = {}
        self.pulls = pulls or {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: str | list[str], key: str | None = None) -> Any:
        return self.pulls.get((str(task_ids), key))


def context(ti: FakeTaskInstance, **params: Any) -> dict[str, Any]:
    return {"ti": ti, "dag": SimpleNamespace(dag_id=DAILY_DAG_ID), "run_id": "manual__t",
            "dag_run": SimpleNamespace(start_date=datetime.now(UTC)), "data_interval_start": None,
            "data_interval_end": None, "params": {**LISTING_PARAM_DEFAULTS, **params}}


def test_fail_fast_fails_a_permanent_error_and_leaves_the_rest_to_the_retries():
    with pytest.raises(AirflowFailException, match="no space") as failed:
        with tasks.fail_fast():
            raise StorageUnwritableError("staging", "/s", "no space left on device (ENOSPC)")
    assert isinstance(failed.value.__cause__, StorageUnwritableError)
    with pytest.raises(StagingIncompleteError):  # transient: Airflow's retry may cure it
        with tasks.fail_fast():
            raise StagingIncompleteError("not staged")


def test_a_window_zoom_no_longer_serves_skips_the_listing_and_pushes_why(zoom_conn):
    old = date.today() - timedelta(days=400)
    ti = FakeTaskInstance()
    with pytest.raises(AirflowSkipException, match="six months"):
        tasks.listing_task(**context(ti, from_date=old.isoformat(), to_date=old.isoformat()))
    assert "six months" in ti.pushed[STATS_XCOM_KEY]["skipped"]


def test_a_failed_listing_pushes_what_it_knew_and_a_bad_param_fails_at_once(zoom_conn):
    ti = FakeTaskInstance()
    with pytest.raises(AirflowFailException) as failed:
        tasks.listing_task(**context(ti, batch_size=-1))
    assert isinstance(failed.value.__cause__, InvalidParamError)
    assert ti.pushed[STATS_XCOM_KEY] == {}  # nothing known yet, but the record's XCom is there


def test_the_record_task_fails_the_run_when_a_task_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE",
                       '{"conn_type": "sqlite", "host": "%s"}' % (tmp_path / "w.db"))
    listing = {"window_start": "2026-11-20", "window_end": "2026-11-20", "requests": 2}
    ti = FakeTaskInstance({(LIST_TASK_ID, STATS_XCOM_KEY): listing})
    with pytest.raises(AirflowFailException, match="pipeline_runs"):
        tasks.record_task(**context(ti))
