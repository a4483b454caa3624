"""The run record: one ``pipeline_runs`` row per run, whatever its tasks did.

Built from what the tasks returned (or, for an extraction that did not return, the cost it left in
staging); a successful run then marks its staging loaded and sweeps old staging (``retention``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any, cast

from zoom_qos.core.config import staging_url
from zoom_qos.core.contracts import (
    COST_FIELDS,
    BatchRef,
    ExtractResult,
    ListingStats,
    LoadCounts,
    LoadResult,
    RunRecord,
)
from zoom_qos.pipeline.retention import retain_after_load
from zoom_qos.pipeline.staging import staged_cost
from zoom_qos.warehouse.opening import opened_warehouse
from zoom_qos.warehouse.store import Warehouse

log = logging.getLogger(__name__)


def record_run(
    *,
    run_id: str,
    dag_id: str,
    started_at: datetime | None,
    listing: ListingStats | None,
    extracts: Iterable[ExtractResult | None],
    loaded: LoadResult | None,
    warehouse: Warehouse | None = None,
    batches: Iterable[BatchRef] | None = None,
    staging: str | None = None,
) -> str:
    """Save the run's ``pipeline_runs`` row and return its outcome.

    Runs after every other task, whatever their state: a load result means success, a listing
    that found nothing Zoom still serves means skipped, anything else means a task failed.
    ``listing`` may be what a failed listing knew (its window, its requests so far). ``batches``
    (the listing's return) lets a failed run count the requests of extractions that did not
    return: each attempt leaves its cost in its batch folder (``staging.write_stats``).

    A successful run marks its staging folder loaded and sweeps the staging of runs loaded longer
    than ``staging_retention_days`` ago (``pipeline.retention``; ``staging`` defaults to the
    configured ``staging_url``); that never changes the outcome.
    """
    listing = listing or ListingStats()
    done: list[ExtractResult] = [e for e in extracts if e]
    returned = {e.get("qos_uri") for e in done}
    done += [cast(ExtractResult, {"qos_uri": b["qos_uri"], **staged_cost(b["qos_uri"])})
             for b in batches or () if b.get("qos_uri") not in returned]
    if loaded and loaded.get("dq_hard_violations"):
        outcome, error = "failed", "Hard data-quality violations: " + ", ".join(
            f"{f['check']} ({f['count']})" for f in loaded.get("dq_findings", []) if f.get("hard"))
    elif loaded:
        outcome, error = "success", None
    elif listing.get("skipped"):
        outcome, error = "skipped", str(listing["skipped"])
    else:
        outcome, error = "failed", "A task failed before the load finished; see the task logs."
    row = run_row(run_id=run_id, dag_id=dag_id, started_at=started_at, listing=listing,
                  extracts=done, loaded=loaded, outcome=outcome, error=error)
    with opened_warehouse(warehouse) as warehouse:
        warehouse.record_run(row)
    log.info("Run record: %s", row)
    if outcome == "success":  # staging retention: never fails the run (see pipeline.retention)
        retain_after_load(staging or staging_url(), dag_id, run_id)
    return outcome


def run_row(
    *,
    run_id: str,
    dag_id: str,
    started_at: datetime | None,
    listing: ListingStats,
    extracts: Iterable[ExtractResult | None],
    loaded: LoadCounts | None,
    outcome: str,
    error: str | None,
) -> RunRecord:
    """One ``pipeline_runs`` row from what the tasks returned: the listing's window and cost, the
    extractions' cost, the load's counts (the live poll gives its own, typed alike)."""
    done: list[Mapping[str, Any]] = [e for e in extracts if e]
    spent: Mapping[str, Any] = listing
    cost = {f: spent.get(f, 0) + sum(e.get(f, 0) for e in done) for f in COST_FIELDS}
    counts: Mapping[str, Any] = loaded or {}
    day = date.fromisoformat
    return {
        "run_id": run_id,
        "dag_id": dag_id,
        "window_start": day(listing["window_start"]) if listing.get("window_start") else None,
        "window_end": day(listing["window_end"]) if listing.get("window_end") else None,
        "started_at": started_at,
        "finished_at": datetime.now(UTC),
        "outcome": outcome,
        "sessions_listed": listing.get("sessions_listed"),
        "sessions_loaded": counts.get("sessions_loaded"),
        "sessions_skipped": counts.get("sessions_skipped"),
        "sessions_pending": counts.get("sessions_pending"),
        "sessions_unavailable": counts.get("sessions_unavailable"),
        "users_loaded": counts.get("users_loaded"),
        "qos_rows": counts.get("qos_rows"),
        "system_rows": counts.get("system_rows"),
        "api_requests": cost["requests"],
        "retries": cost["retries"],
        "rate_limit_waits": cost["rate_limit_waits"],
        "rate_limit_wait_seconds": float(cost["rate_limit_wait_seconds"]),
        "token_restarts": cost["token_restarts"],
        "unparsed_values": counts.get("unparsed_values"),
        "unparsed_detail": counts.get("unparsed_detail"),
        "dq_findings": counts.get("dq_findings"),
        "dq_hard_violations": counts.get("dq_hard_violations"),
        "extract_seconds": sum(e.get("extract_seconds", 0.0) for e in done) or None,
        "load_seconds": counts.get("load_seconds"),
        "error": error,
    }
