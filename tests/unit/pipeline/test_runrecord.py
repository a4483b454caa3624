"""pipeline.runrecord: the run record's outcome and cost, from what the tasks returned."""

from __future__ import annotations

import sqlalchemy as sa

from zoom_qos.pipeline.runrecord import record_run
from zoom_qos.warehouse.store import Warehouse


def recorded(tmp_path, **returned):
    tmp_path.mkdir(parents=True, exist_ok=True)
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        outcome = record_run(run_id="r1", dag_id="zoom_videosdk_qos", started_at=None,
                             warehouse=warehouse, **returned)
        with warehouse.engine.connect() as conn:
            row = conn.execute(sa.text("SELECT * FROM pipeline_runs")).mappings().one()
    finally:
        warehouse.dispose()
    return outcome, row


LISTING = {"window_start": "2026-11-20", "window_end": "2026-11-21", "sessions_listed": 3,
           "requests": 2, "retries": 1}
EXTRACT = {"requests": 5, "retries": 0, "rate_limit_waits": 1, "rate_limit_wait_seconds": 1.5,
           "token_restarts": 1, "extract_seconds": 2.0}
LOADED = {"sessions_loaded": 3, "sessions_skipped": 0, "sessions_pending": 2, "sessions_unavailable": 1,
          "users_loaded": 7, "qos_rows": 70, "system_rows": 10, "unparsed_values": 0, "unparsed_detail": {},
          "dq_findings": [], "dq_hard_violations": 0, "load_seconds": 0.5}


def test_success_sums_the_cost_of_every_task(tmp_path):
    outcome, row = recorded(tmp_path, listing=LISTING, extracts=[EXTRACT, EXTRACT], loaded=LOADED)
    assert outcome == row["outcome"] == "success"
    assert row["api_requests"] == 12 and row["retries"] == 1 and row["token_restarts"] == 2
    assert row["sessions_loaded"] == 3 and str(row["window_start"]).startswith("2026-11-20")
    assert (row["sessions_pending"], row["sessions_unavailable"]) == (2, 1)


def test_hard_data_quality_violations_fail_the_run(tmp_path):
    bad = {**LOADED, "dq_hard_violations": 2,
           "dq_findings": [{"check": "orphan_rows", "count": 2, "example": "x", "hard": True}]}
    outcome, row = recorded(tmp_path, listing=LISTING, extracts=[EXTRACT], loaded=bad)
    assert outcome == "failed" and "orphan_rows (2)" in row["error"]


def test_nothing_to_load_is_skipped_and_a_missing_load_is_failed(tmp_path):
    assert recorded(tmp_path, listing={"skipped": "too old"}, extracts=[], loaded=None)[0] == "skipped"
    outcome, row = recorded(tmp_path, listing=LISTING, extracts=[], loaded=None)
    assert outcome == "failed" and row["error"]


def test_a_failed_run_records_the_window_and_the_requests_made_so_far(tmp_path):
    """A listing that failed pushes what it knew (its window, its requests); an extraction that
    failed before returning left its cost in its batch folder, which the record reads."""
    from zoom_qos.pipeline.staging import write_stats

    failed_listing = {"window_start": "2026-11-20", "window_end": "2026-11-20", "requests": 2,
                      "retries": 0}
    outcome, row = recorded(tmp_path, listing=failed_listing, extracts=[], loaded=None)
    assert outcome == "failed"
    assert str(row["window_start"]).startswith("2026-11-20") and row["api_requests"] == 2

    qos = [(tmp_path / f"qos-{i}").as_uri() for i in range(2)]
    write_stats(qos[1], "a1", {"requests": 4, "retries": 1, "token_restarts": 0})
    write_stats(qos[1], "a2", {"requests": 3, "retries": 0, "token_restarts": 1})
    batches = [{"index": 0, "qos_uri": qos[0]}, {"index": 1, "qos_uri": qos[1]}]
    outcome, row = recorded(tmp_path / "second", listing=LISTING, loaded=None, batches=batches,
                            extracts=[{**EXTRACT, "qos_uri": qos[0]}, None])
    # listing 2 + batch 0's summary 5 + batch 1's two failed attempts 4 + 3
    assert outcome == "failed" and row["api_requests"] == 14 and row["retries"] == 2
    assert row["token_restarts"] == 2
