"""Staging full or read-only, and the SQLite warehouse full, in a real run.

Each fails the task at once (no retries: a disk does not empty itself in a minute) with a message
naming the path and the cause; nothing is left half-written under a final name; once there is room
the task's retry resumes from what was written (the extraction reads only the sessions not staged,
the load completes the day).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from tests.chaos.harness import (
    ChaosRow,
    assert_day_complete,
    assert_failed_without_retries,
    read_only,
    record,
    resize_tmpfs,
    tmpfs,
    writable_again,
)
from tests.conftest import zoom_connection_json
from tests.integration.dagrun import AIRFLOW, sqlite_conn, warehouse_rows
from zoom_qos.operators import ZoomSessionQosOperator
from zoom_qos.pipeline.load import load_batches
from zoom_qos.pipeline.staging import read_jsonl, staged_index
from zoom_qos.warehouse.store import Warehouse


def day_params(sim, days_ago: int) -> tuple[str, object]:
    day = sim.dataset.now.date() - timedelta(days=days_ago)
    return json.dumps({"from_date": day.isoformat(), "to_date": day.isoformat()}), day


#: The staging tmpfs of the staging-full test.
STAGING_TMPFS_BYTES = 1024 * 1024


def staged_bytes(sim, day) -> list[int]:
    """About what each ended session of ``day`` takes in staging, in the order it is extracted
    (its users as JSON lines, as Zoom's bodies and the staging files hold them)."""
    ended = sorted((s for s in sim.dataset.sessions_for_day(day) if s.get("end_time")), key=lambda s: s["id"])
    return [sum(len(json.dumps(u)) + 1 for u in sim.dataset.users_for_session(s["id"])) for s in ended]


def day_that_fills(sim, size: int) -> tuple[str, object]:
    """The most recent past day whose staged QoS overflows ``size`` twice over while its first
    session fits in a quarter of it: whatever the simulated data of the days, the disk fills mid-
    extraction, after at least one session was staged whole."""
    for days_ago in range(2, 60):
        params, day = day_params(sim, days_ago)
        sizes = staged_bytes(sim, day)
        if sizes and sum(sizes) > 2 * size and sizes[0] < size // 4:
            return params, day
    raise AssertionError(f"no simulated day of the last 60 stages more than {2 * size:,} bytes")


def failing_run(env: dict[str, str], params: str, **overrides: str) -> tuple[str, float]:
    """``airflow dags test`` that must fail; returns its output and how long it took."""
    started = time.monotonic()
    done = subprocess.run([AIRFLOW, "dags", "test", "zoom_videosdk_qos", "-c", params],
                          env={**env, **overrides}, capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "state=failed" in output, output[-4000:]
    return output, elapsed


def staged_batches(staging: Path) -> list[dict]:
    """The batch references of the (only) listing under ``staging``, as the listing returned them."""
    listings = sorted(staging.rglob("listing-*"))
    assert len(listings) == 1, listings
    return [{"index": i, "sessions_uri": path.as_uri(),
             "qos_uri": (listings[0] / "qos" / path.stem).as_uri()}
            for i, path in enumerate(sorted((listings[0] / "sessions").glob("batch-*.jsonl")))]


def assert_nothing_half_written(staging: Path) -> None:
    """Every file under a final name parses whole; no temporary file is left behind."""
    leftovers = [p for p in staging.rglob("*") if p.name.endswith(".partial")]
    assert not leftovers, leftovers
    for path in staging.rglob("*.jsonl"):
        lines = path.read_bytes().splitlines()
        assert lines and all(json.loads(line) is not None for line in lines), path
    for path in staging.rglob("*.json"):
        json.loads(path.read_text())


def test_staging_full_fails_at_once_naming_the_path_and_the_retry_resumes(world, tmp_path, monkeypatch):
    sim, env, _ = world
    params, day = day_that_fills(sim, STAGING_TMPFS_BYTES)
    db = tmp_path / "warehouse.db"
    # One session at a time, so the sessions before the one that fills the disk are staged whole.
    one_at_a_time = zoom_connection_json(sim.base_url, max_concurrent_sessions=1)
    monkeypatch.setenv("AIRFLOW_CONN_ZOOM_VIDEOSDK", one_at_a_time)
    with tmpfs(tmp_path / "staging", f"{STAGING_TMPFS_BYTES // 1024}k") as staging:
        output, elapsed = failing_run(env, params, AIRFLOW__ZOOM_QOS__STAGING_URL=staging.as_uri(),
                                      AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE=sqlite_conn(db),
                                      AIRFLOW_CONN_ZOOM_VIDEOSDK=one_at_a_time)
        assert "Cannot write staging at" in output and str(staging) in output, output[-4000:]
        assert "no space left on device (ENOSPC)" in output, output[-4000:]
        assert_failed_without_retries(env["AIRFLOW_HOME"], "extract_qos")
        assert_nothing_half_written(staging)
        batches = staged_batches(staging)
        staged_before = sum(len(staged_index(b["qos_uri"])) for b in batches)
        listed = sum(len(list(read_jsonl(b["sessions_uri"]))) for b in batches)
        assert 0 < staged_before < listed  # the disk filled mid-extraction

        freed_at = time.monotonic()
        resize_tmpfs(staging, "64m")
        sim.reset_stats()
        for batch in batches:  # what Airflow runs when the failed task is cleared
            ZoomSessionQosOperator(task_id="extract_qos", batch=batch).execute(context={})
        wh = Warehouse(f"sqlite:///{db}")
        try:
            load_batches(batches, warehouse=wh)
        finally:
            wh.dispose()
        recovered = time.monotonic() - freed_at
        assert_nothing_half_written(staging)
    # Resumed: the sessions staged before the disk filled were not asked for again.
    asked_again = sim.stats()["by_endpoint"]["user_qos"]
    expected = sim.dataset.expected_rows(day, day)
    pages_all = sum(max(1, -(-len(sim.dataset.users_for_session(s["session_id"])) // 10))
                    for s in expected["sessions"])
    assert asked_again < pages_all, (asked_again, pages_all)
    lost = assert_day_complete(sim, db, day)
    record(ChaosRow(
        fault="staging full (tmpfs of 1 MiB) mid-extraction",
        outcome=(f"extract_qos failed in {elapsed:.0f} s without retries, naming the path and ENOSPC; "
                 f"{staged_before} of {listed} sessions kept; after the space grew the cleared task "
                 f"read only the rest ({asked_again} of {pages_all} QoS pages) and the load completed"),
        rows_lost=lost, recovery_seconds=recovered))


def test_staging_read_only_fails_at_once_and_a_new_run_completes(world, tmp_path):
    sim, env, _ = world
    params, day = day_params(sim, 3)
    db = tmp_path / "warehouse.db"
    staging = tmp_path / "staging"
    with read_only(staging):
        output, elapsed = failing_run(env, params, AIRFLOW__ZOOM_QOS__STAGING_URL=staging.as_uri(),
                                      AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE=sqlite_conn(db))
        assert "Cannot write staging at" in output and str(staging) in output, output[-4000:]
        assert "read-only file system (EROFS)" in output, output[-4000:]
        assert_failed_without_retries(env["AIRFLOW_HOME"], "list_sessions")
        writable_again(staging)
        fixed_at = time.monotonic()
        done = subprocess.run([AIRFLOW, "dags", "test", "zoom_videosdk_qos", "-c", params],
                              env={**env, "AIRFLOW__ZOOM_QOS__STAGING_URL": staging.as_uri(),
                                   "AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE": sqlite_conn(db)},
                              capture_output=True, text=True, timeout=600)
        recovered = time.monotonic() - fixed_at
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    lost = assert_day_complete(sim, db, day)
    record(ChaosRow(
        fault="staging on a read-only mount",
        outcome=(f"list_sessions failed in {elapsed:.0f} s without retries, naming the path and EROFS; "
                 "once writable, the run completed the day"),
        rows_lost=lost, recovery_seconds=recovered))


@pytest.fixture
def sized_sqlite(tmp_path):
    """A tmpfs holding a migrated SQLite warehouse with about 200 KiB to spare: enough for the
    listing and a few sessions, not for the day."""
    template = tmp_path / "template.db"
    wh = Warehouse(f"sqlite:///{template}")
    wh.ensure_schema()
    wh.dispose()
    room = template.stat().st_size + 200 * 1024
    with tmpfs(tmp_path / "full", f"{room // 1024}k") as folder:
        (folder / "warehouse.db").write_bytes(template.read_bytes())
        yield folder / "warehouse.db"


def test_sqlite_warehouse_full_fails_the_load_at_once_and_its_retry_completes(world, tmp_path, sized_sqlite):
    sim, env, _ = world
    params, day = day_params(sim, 4)
    db = sized_sqlite
    staging = tmp_path / "staging"
    output, elapsed = failing_run(env, params, AIRFLOW__ZOOM_QOS__STAGING_URL=staging.as_uri(),
                                  AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE=sqlite_conn(db))
    assert "Cannot write the warehouse at" in output and str(db) in output, output[-4000:]
    assert "database or disk is full (SQLITE_FULL)" in output, output[-4000:]
    assert_failed_without_retries(env["AIRFLOW_HOME"], "load_warehouse")
    expected = sim.dataset.expected_rows(day, day)
    # Every session the failed load left is whole: as many QoS rows as Zoom served for it.
    served = Counter(row["session_id"] for row in expected["user_qos"])
    held = Counter(row["session_id"] for row in warehouse_rows(db)["user_qos"].values())
    assert all(count == served[sid] for sid, count in held.items()), (held, served)
    assert len(held) < len(served)  # the disk filled before the load was done

    resize_tmpfs(db.parent, "64m")
    freed_at = time.monotonic()
    wh = Warehouse(f"sqlite:///{db}")
    try:  # what Airflow runs when the failed load is cleared
        load_batches(staged_batches(staging), warehouse=wh)
    finally:
        wh.dispose()
    recovered = time.monotonic() - freed_at
    lost = assert_day_complete(sim, db, day)
    record(ChaosRow(
        fault="SQLite warehouse full (tmpfs with ~200 KiB to spare) mid-load",
        outcome=(f"load_warehouse failed in {elapsed:.0f} s without retries, naming the file and "
                 f"SQLITE_FULL; the transaction in flight rolled back whole ({len(held)} of "
                 f"{len(served)} sessions held, none half); the cleared load completed the day"),
        rows_lost=lost, recovery_seconds=recovered))
