"""Staging retention: a run's staging goes some days after its successful load, never before; a run
cleared after that lists and extracts again, and a partial clear says so at once."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from zoom_qos import tasks
from zoom_qos.core.errors import StagingRemovedError
from zoom_qos.operators import ZoomSessionQosOperator
from zoom_qos.pipeline import retention
from zoom_qos.pipeline.load import load_batches
from zoom_qos.pipeline.retention import LOADED_MARKER, mark_loaded, sweep
from zoom_qos.pipeline.runrecord import record_run
from zoom_qos.pipeline.staging import run_folder
from zoom_qos.warehouse.store import Warehouse

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
DAG = "zoom_videosdk_qos"


def staged_run(staging: str, run_id: str, listings: tuple[str, ...] = ("listing-a",), size: int = 10) -> Path:
    """A run folder with two files of ``size`` bytes in each listing; returns its local path."""
    folder = run_folder(staging, DAG, run_id)
    for listing in listings:
        for name in ("sessions/batch-00000.jsonl", "qos/batch-00000/session-x.jsonl"):
            path = folder / listing / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x" * size)
    return Path(folder.path)


@pytest.fixture
def staging(tmp_path) -> str:
    return (tmp_path / "staging").as_uri()


def test_runs_loaded_longer_ago_than_the_retention_are_removed_and_no_others(staging, caplog):
    old, recent = staged_run(staging, "old", ("listing-a", "listing-b")), staged_run(staging, "recent")
    unmarked, current = staged_run(staging, "running"), staged_run(staging, "current")
    assert mark_loaded(ObjectStoragePath(old.as_uri()), NOW - timedelta(days=8)) == ["listing-a", "listing-b"]
    mark_loaded(ObjectStoragePath(recent.as_uri()), NOW - timedelta(days=6))
    mark_loaded(ObjectStoragePath(current.as_uri()), NOW - timedelta(days=30))

    with caplog.at_level(logging.INFO, logger="zoom_qos.pipeline.retention"):
        result = sweep(ObjectStoragePath(staging) / DAG, 7, now=NOW, exclude={"current"})

    assert result.runs == ["old"] and result.files == 4 and result.bytes == 40
    assert not old.exists()
    assert recent.exists() and unmarked.exists() and current.exists()  # too recent, no marker, excluded
    assert "removed" in caplog.text and "4 files, 40 bytes" in caplog.text
    # nothing left to remove: a second sweep is a no-op
    assert sweep(ObjectStoragePath(staging) / DAG, 7, now=NOW, exclude={"current"}).runs == []


def test_a_listing_made_after_the_load_is_kept(staging):
    """A run cleared and listed again after its load: the new listing is not the marked one."""
    folder = staged_run(staging, "r1")
    mark_loaded(ObjectStoragePath(folder.as_uri()), NOW - timedelta(days=10))
    staged_run(staging, "r1", ("listing-new",))
    assert sweep(ObjectStoragePath(staging) / DAG, 7, now=NOW).runs == ["r1"]
    assert sorted(p.name for p in folder.iterdir()) == ["listing-new"]  # the marker went too


def test_zero_days_removes_a_run_at_the_next_runs_record(staging, monkeypatch):
    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__STAGING_RETENTION_DAYS", "0")
    first, second = staged_run(staging, "r1"), staged_run(staging, "r2")
    retention.retain_after_load(staging, DAG, "r1")
    assert first.exists() and (first / LOADED_MARKER).exists()  # not its own record
    result = retention.retain_after_load(staging, DAG, "r2")
    assert result.runs == ["r1"] and not first.exists() and second.exists()
    assert json.loads((second / LOADED_MARKER).read_text())["listings"] == ["listing-a"]


def test_a_run_that_staged_nothing_gets_no_marker(staging):
    assert mark_loaded(run_folder(staging, DAG, "empty")) == []
    assert not Path(run_folder(staging, DAG, "empty").path).exists()


def test_a_failure_to_remove_is_a_warning_and_the_folder_is_kept(staging, monkeypatch, caplog):
    folder = staged_run(staging, "r1")
    mark_loaded(ObjectStoragePath(folder.as_uri()), NOW - timedelta(days=10))

    def refuse(path):
        raise PermissionError(f"permission denied: {path}")

    monkeypatch.setattr(retention, "_remove_tree", refuse)
    with caplog.at_level(logging.WARNING, logger="zoom_qos.pipeline.retention"):
        result = sweep(ObjectStoragePath(staging) / DAG, 7, now=NOW)
    assert result.runs == [] and folder.exists() and "could not remove" in caplog.text
    monkeypatch.setattr(retention, "sweep", lambda *a, **k: 1 / 0)
    with caplog.at_level(logging.WARNING, logger="zoom_qos.pipeline.retention"):
        assert retention.retain_after_load(staging, DAG, "r2").runs == []  # never raises
    assert "Staging retention failed" in caplog.text


def test_a_bad_marker_keeps_the_folder(staging, caplog):
    folder = staged_run(staging, "r1")
    (folder / LOADED_MARKER).write_text("not json")
    with caplog.at_level(logging.WARNING, logger="zoom_qos.pipeline.retention"):
        assert sweep(ObjectStoragePath(staging) / DAG, 0, now=NOW).runs == []
    assert folder.exists() and "not a valid marker" in caplog.text


def test_only_a_successful_run_record_marks_its_staging(staging, tmp_path):
    listing = {"window_start": "2026-11-20", "window_end": "2026-11-20", "sessions_listed": 1}
    loaded_result = {"sessions_loaded": 1, "dq_findings": [], "dq_hard_violations": 0}
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        for run_id, loaded in (("ok", loaded_result), ("failed", None)):
            folder = staged_run(staging, run_id)
            record_run(run_id=run_id, dag_id=DAG, started_at=None, listing=listing, extracts=[],
                             loaded=loaded, warehouse=warehouse, staging=staging)
            assert (folder / LOADED_MARKER).exists() == (loaded is not None)
    finally:
        warehouse.dispose()


# --------------------------------------------------------------------------- re-runs after removal
def test_a_run_cleared_after_its_staging_was_removed(simulator, zoom_conn, tmp_path, monkeypatch):
    """The whole run cleared: it lists again and loads the same rows. Only the extraction or the
    load cleared: each fails at once, saying to clear the whole run."""
    staging = (tmp_path / "staging").as_uri()
    day = simulator.dataset.now.date() - timedelta(days=2)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")

    def run(run_id: str) -> tuple[list[dict], dict, dict]:
        batches, stats = tasks.list_sessions(
            dag_id=DAG, run_id=run_id, interval_start=start, interval_end=start + timedelta(days=1),
            params={"lookback_days": 0}, staging=staging, warehouse=warehouse)
        extracts = [ZoomSessionQosOperator(task_id="extract_qos", batch=b).execute(context={})
                    for b in batches]
        loaded = load_batches(batches, warehouse=warehouse, listing=stats)
        assert record_run(run_id=run_id, dag_id=DAG, started_at=None, listing=stats, extracts=extracts,
                                loaded=loaded, warehouse=warehouse, batches=batches,
                                staging=staging) == "success"
        return batches, stats, loaded

    try:
        batches, _, first = run("scheduled__day")
        assert batches and first["sessions_loaded"] + first["sessions_pending"] + first[
            "sessions_unavailable"] > 0
        rows = warehouse.count_rows()
        # the next day's record, with a retention of 0 days, removes the run's staging
        monkeypatch.setenv("AIRFLOW__ZOOM_QOS__STAGING_RETENTION_DAYS", "0")
        staged_run(staging, "scheduled__next")
        assert retention.retain_after_load(staging, DAG, "scheduled__next").runs == ["scheduled__day"]
        assert not Path(run_folder(staging, DAG, "scheduled__day").path).exists()

        # only the load cleared: it reads the listing's XCom, whose files are gone
        with pytest.raises(StagingRemovedError) as caught:
            load_batches(batches, warehouse=warehouse)
        message = str(caught.value)
        assert "staging_retention_days" in message
        assert "clear the whole run, list_sessions included" in message
        # only the extraction cleared: the same check (the operator's, before any request)
        with pytest.raises(StagingRemovedError, match="clear the whole run"):
            retention.require_staged(batches[0])

        # the whole run cleared: a fresh listing, extracted and loaded again, the same rows
        monkeypatch.delenv("AIRFLOW__ZOOM_QOS__STAGING_RETENTION_DAYS")
        again, _, second = run("scheduled__day")
        assert again[0]["sessions_uri"] != batches[0]["sessions_uri"]
        assert {k: second[k] for k in ("sessions_loaded", "sessions_pending", "sessions_unavailable",
                                       "users_loaded", "qos_rows")} == {
            k: first[k] for k in ("sessions_loaded", "sessions_pending", "sessions_unavailable",
                                  "users_loaded", "qos_rows")}
        assert warehouse.count_rows() == rows
    finally:
        warehouse.dispose()
