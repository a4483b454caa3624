"""The load: every staged session of a run's batches into the warehouse, then its checks.

Each session is upserted atomically (``Warehouse.load_sessions``), Zoom's daily counts with it;
then the data-quality checks of the window run over what was loaded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator

from zoom_qos.core.contracts import EXTRACT_TASK_ID, BatchRef, ListingStats, LoadResult, window_days
from zoom_qos.core.errors import StagingIncompleteError
from zoom_qos.core.statuses import LOADED, PENDING, UNAVAILABLE
from zoom_qos.pipeline.retention import require_staged
from zoom_qos.pipeline.staging import read_jsonl, read_staged_grades, read_staged_session, staged_index
from zoom_qos.transform.parsing import ParseIssues, parse_timestamp
from zoom_qos.transform.rows import daily_usage_rows
from zoom_qos.warehouse.opening import opened_warehouse
from zoom_qos.warehouse.plan import SessionInput
from zoom_qos.warehouse.quality import DEFAULT_HARD_CHECKS, findings_as_json, hard_violations, run_checks
from zoom_qos.warehouse.store import Warehouse

log = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 30.0


def staged_sessions(batches: Iterable[BatchRef]) -> Iterator[SessionInput]:
    """Every session of the batches from staging, batch by batch, its users read lazily from its
    staging file; a session whose QoS could not be read comes with its status and no users."""
    last_report = time.monotonic()
    for number, batch in enumerate(batches, 1):
        require_staged(batch)  # a load cleared after the staging retention removed the files
        index = staged_index(batch["qos_uri"])
        for session in read_jsonl(batch["sessions_uri"]):
            session_id = str(session["id"])
            if session_id not in index:
                raise StagingIncompleteError(
                    f"Session {session_id!r} of batch {batch['index']} has no staged QoS: its "
                    f"extraction did not finish. Clear {EXTRACT_TASK_ID} and retry.")
            header, users = read_staged_session(batch["qos_uri"], session_id)
            checked_at = parse_timestamp(header.get("fetched_at"))
            if header["status"] == "ok":
                yield SessionInput(session, users, LOADED, checked_at,
                                   read_staged_grades(batch["qos_uri"], session_id))
            else:  # "gone" was written by extractions before v2
                status = PENDING if header["status"] == PENDING else UNAVAILABLE
                yield SessionInput(session, (), status, checked_at)
        if time.monotonic() - last_report >= PROGRESS_EVERY_SECONDS:
            last_report = time.monotonic()
            log.info("Loading: batch %d done", number)


def load_batches(
    batches: Iterable[BatchRef],
    warehouse: Warehouse | None = None,
    hard_checks: Iterable[str] = DEFAULT_HARD_CHECKS,
    listing: ListingStats | None = None,
) -> LoadResult:
    """Upsert every staged session (atomically per session) and Zoom's daily counts, then check
    the data loaded; ``listing`` is the listing's stats (its window and ``daily_usage``)."""
    listing = listing or ListingStats()
    issues = ParseIssues()
    started = time.monotonic()
    with opened_warehouse(warehouse) as warehouse:
        summary = warehouse.load_sessions(staged_sessions(batches), issues)
        usage = warehouse.upsert_daily_usage(daily_usage_rows(listing.get("daily_usage") or [], issues))
        load_seconds = time.monotonic() - started
        warehouse.refresh_statistics({"sessions": summary.sessions_loaded, "session_users": summary.users,
                                      "user_qos": summary.qos_rows, "user_system_qos": summary.system_rows})
        with warehouse.engine.connect() as conn:
            findings = run_checks(conn, None, summary.session_ids, hard_checks=frozenset(hard_checks),
                                  days=window_days(listing))
    for field, detail in issues.as_dict().items():
        log.warning("%d value(s) of %r could not be parsed and were loaded as NULL (e.g. %r)",
                    detail["count"], field, detail["example"])
    for finding in findings:
        log.warning("Data quality%s: %s: %d row(s), e.g. %s", " (HARD)" if finding.hard else "",
                    finding.check, finding.count, finding.example)
    result = LoadResult(
        **summary.counts(issues),
        daily_usage_days=usage,
        dq_findings=findings_as_json(findings),
        dq_hard_violations=hard_violations(findings),
        load_seconds=round(load_seconds, 3),
    )
    log.info("Loaded %d sessions with QoS, %d pending, %d unavailable (%d skipped): %d users, %d QoS "
             "rows, %d system rows", result["sessions_loaded"], result["sessions_pending"],
             result["sessions_unavailable"], result["sessions_skipped"], result["users_loaded"],
             result["qos_rows"], result["system_rows"])
    return result
