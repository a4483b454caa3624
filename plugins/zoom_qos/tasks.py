"""What each task of the DAG does, kept out of the DAG file so it can be imported and tested.

The DAG file only wires these together: list → extract (mapped over batches) → load → record.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing, contextmanager
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any

from sqlalchemy import exc as sa_exc

from zoom_qos.config import WAREHOUSE_CONN_ID, ZOOM_CONN_ID, staging_url
from zoom_qos.errors import NothingToLoad, WarehouseUnreachableError, ZoomApiError, unwritable_as
from zoom_qos.extract.availability import LOADED, PENDING, UNAVAILABLE
from zoom_qos.extract.retention import require_staged, retain_after_load
from zoom_qos.extract.staging import (
    read_jsonl,
    read_staged_grades,
    read_staged_session,
    run_folder,
    staged_cost,
    staged_index,
    write_jsonl,
)
from zoom_qos.extract.windows import (
    Window,
    available_part,
    batch_sizes,
    check_listing_params,
    month_ranges,
    requested_window,
)
from zoom_qos.hooks import ZoomVideoSdkHook
from zoom_qos.transform.parsing import ParseIssues, parse_timestamp
from zoom_qos.transform.rows import daily_usage_rows
from zoom_qos.warehouse import SessionInput, Warehouse
from zoom_qos.warehouse.quality import DEFAULT_HARD_CHECKS, findings_as_json, hard_violations, run_checks
from zoom_qos.warehouse.unwritable import warehouse_unwritable_cause
from zoom_qos.zoom.ids import unrequestable_reason
from zoom_qos.zoom.published import ErrorCode

log = logging.getLogger(__name__)

# Airflow refuses to map more than core.max_map_length (1024) tasks; stay well under it.
MAX_BATCHES = 500
PROGRESS_EVERY_SECONDS = 30.0

# Time limits of the tasks that never park (the extraction has none: it may wait for Zoom's daily
# reset, and the DAG has no dagrun_timeout for the same reason). Sized from the request arithmetic
# (docs/budget.md): listing is Resource-intensive, 20 requests a minute on Business+ (10 on Pro),
# so 2 hours list 2,400 pages of 300 sessions, a daily run of 360,000 sessions a day (Pro: 180,000)
# or a manual reload of a long range; retries of one request give up within 10 minutes. Loading
# writes about 140,000 rows a second into PostgreSQL (docs/benchmarks.md), some 10,000 sessions of
# ~800 QoS rows a minute, so an hour loads 600,000 sessions, more than any listing above. The run
# record and the alerts are a few queries.
LISTING_TIMEOUT = timedelta(hours=2)
LOAD_TIMEOUT = timedelta(hours=1)
RECORD_TIMEOUT = timedelta(minutes=10)


def _ensure_reachable(target: Warehouse) -> None:
    """``ensure_schema``, with a warehouse that cannot be connected to or made ready turned into a
    ``WarehouseUnreachableError`` (permanent) naming it (its repr masks the password) and the
    cause: the listing checks this before its first Zoom request, so a run whose data could not be
    loaded does not spend Zoom's daily budget on it."""
    try:
        target.ensure_schema()
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as error:
        if warehouse_unwritable_cause(error):  # reachable, but full: opened_warehouse says so
            raise
        cause = str(error.orig if error.orig is not None else error).strip().splitlines()[0]
        raise WarehouseUnreachableError(
            f"The warehouse {target!r} (connection {WAREHOUSE_CONN_ID!r}) is unreachable: {cause}. "
            "Nothing was requested from Zoom. Check that the database is up and the connection's "
            "host, port, database and credentials, then clear the task.") from error


@contextmanager
def opened_warehouse(
    warehouse: Warehouse | None, prepare: Callable[[Warehouse], object] = Warehouse.ensure_schema
) -> Iterator[Warehouse]:
    """The given warehouse, or the configured one (disposed afterwards), made ready by ``prepare``
    (its schema migrated) before the caller uses it. A write it refuses for good (a full disk, a
    read-only file) is a ``StorageUnwritableError`` naming it: no retry would fare better."""
    target = warehouse if warehouse is not None else Warehouse.from_airflow(WAREHOUSE_CONN_ID)
    try:
        with unwritable_as("the warehouse", repr(target), catch=sa_exc.DBAPIError,
                           cause_of=warehouse_unwritable_cause):
            prepare(target)
            yield target
    finally:
        if warehouse is None:
            target.dispose()


def list_sessions(
    *,
    dag_id: str,
    run_id: str,
    interval_start: datetime | None,
    interval_end: datetime | None,
    params: Mapping[str, Any],
    today: date | None = None,
    zoom_conn_id: str = ZOOM_CONN_ID,
    staging: str | None = None,
    warehouse: Warehouse | None = None,
    progress: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """List the run's past sessions and stage them in batches for mapped extraction.

    Returns the batch references (what the extraction is mapped over) and the listing's stats,
    which carry Zoom's daily counts of the months touched (``daily_usage``, one request a month).
    Raises ``NothingToLoad`` when no requested day is still available at Zoom. Sessions of the
    lookback days whose QoS is already loaded are left out (see ``Warehouse.settled_sessions``); ``pending``
    sessions that Zoom did not list this time are added, so they are asked for again until they
    are loaded or turn unavailable (WAREHOUSE.md v2).

    Before any Zoom request or write, the integer params are checked (``InvalidParamError``),
    the Zoom connection's extras (``ZoomConfigError``) and the window (``InvalidWindowError``),
    then the warehouse is connected to (``WarehouseUnreachableError``), all permanent.
    ``progress``, when given, is filled as the listing goes (the window, then the requests so far,
    even when it fails), so the run record of a failed listing still says what it asked for and
    what it cost.
    """
    params = check_listing_params(params)
    progress = progress if progress is not None else {}
    hook = ZoomVideoSdkHook(zoom_conn_id)
    with closing(hook):
        _ = hook.settings  # reads the connection once, and refuses bad extras before anything else
        today = today or datetime.now(UTC).date()
        window = requested_window(
            interval_start, interval_end, params.get("from_date"), params.get("to_date"),
            int(params["lookback_days"]), today,
        )
        progress.update(window_start=window.start.isoformat(), window_end=window.end.isoformat())
        part = available_part(window, today)
        if part is None:
            raise NothingToLoad(
                f"Nothing to load for {window.start}..{window.end}: Zoom serves past sessions of the "
                "last six months only, up to today."
            )
        progress.update(window_start=part.start.isoformat(), window_end=part.end.isoformat())
        with opened_warehouse(warehouse, _ensure_reachable) as opened:
            return _list_and_stage(hook=hook, params=params, window=window, part=part, dag_id=dag_id,
                                   run_id=run_id, staging=staging, opened=opened, progress=progress)


def _list_and_stage(*, hook: ZoomVideoSdkHook, params: Mapping[str, Any], window: Window, part: Window,
                    dag_id: str, run_id: str, staging: str | None, opened: Warehouse,
                    progress: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``list_sessions`` once the window is known and the warehouse ready."""
    sessions: dict[str, dict[str, Any]] = {}
    usage: list[dict[str, Any]] = []
    try:
        for chunk in month_ranges(part):
            before = len(sessions)
            for session in hook.iter_past_sessions(chunk.start, chunk.end):
                if session.get("id"):
                    sessions[str(session["id"])] = session
            log.info("Listed %d sessions for %s..%s", len(sessions) - before, chunk.start, chunk.end)
            usage.extend(_daily_usage(hook, chunk.start))
    finally:
        progress.update(hook.stats.as_dict())  # the requests so far, should the listing fail

    listed = len(sessions)
    lookback = int(params["lookback_days"])
    if lookback and not (params.get("from_date") or params.get("to_date")):
        first_day = window.start + timedelta(days=lookback)  # the interval's own first day
        settle = timedelta(minutes=int(params["lookback_settle_minutes"]))
        # An id that cannot be requested is never loaded, so never settled; and it is not asked of
        # the warehouse either (a NUL in it fails a PostgreSQL query).
        earlier = [i for i, v in sessions.items() if ((day := _start_day(v)) is None or day < first_day)
                   and unrequestable_reason(v["id"]) is None]
        for session_id in opened.settled_sessions(earlier, settle):
            del sessions[session_id]
        if earlier:
            log.info("Lookback: %d of %d sessions before %s have their QoS loaded; not read again",
                     listed - len(sessions), len(earlier), first_day)
    revisits = opened.pending_sessions(exclude=set(sessions))
    for session_id, session in revisits.items():
        sessions[session_id] = session
    if revisits:
        log.info("Asking again for %d pending or live sessions Zoom did not list this time", len(revisits))

    # A fresh folder per listing: a retried extraction resumes inside it, a re-listing starts anew.
    folder = run_folder(staging or staging_url(), dag_id, run_id) / f"listing-{uuid.uuid4().hex[:12]}"
    ordered = iter(sorted(sessions.values(), key=lambda s: str(s["id"])))
    batches = []
    first = 1
    for index, size in enumerate(batch_sizes(len(sessions), int(params["batch_size"]),
                                             MAX_BATCHES)):
        name = f"batch-{index:05d}"
        sessions_uri = folder / "sessions" / f"{name}.jsonl"
        write_jsonl(sessions_uri, islice(ordered, size))
        # first/last/of: the batch's place in the listing, the label of its mapped task in the UI
        batches.append({"index": index, "sessions_uri": str(sessions_uri),
                        "qos_uri": str(folder / "qos" / name), "sessions": size,
                        "first": first, "last": first + size - 1, "of": len(sessions)})
        first += size
    # Every listed session is kept; those whose id cannot be requested safely are staged as
    # unavailable by the extraction without a request (ZoomSessionQosOperator._read_session).
    unrequestable = sum(unrequestable_reason(s["id"]) is not None for s in sessions.values())
    if unrequestable:
        log.warning("%d listed sessions have ids that cannot be requested safely (a '.' or '..' segment, a "
                    "control character, too long): kept, and staged as unavailable without a request",
                    unrequestable)
    stats = {
        "window_start": part.start.isoformat(),
        "window_end": part.end.isoformat(),
        "sessions_listed": listed,
        "sessions_already_loaded": listed + len(revisits) - len(sessions),
        "sessions_revisited": len(revisits),
        "sessions_unrequestable": unrequestable,
        "batches": len(batches),
        "daily_usage": usage,
        **hook.stats.as_dict(),
    }
    log.info("Window %s..%s: %d sessions in %d batches", part.start, part.end, len(sessions),
             len(batches))
    return batches, stats


def _start_day(session: Mapping[str, Any]) -> date | None:
    start = parse_timestamp(session.get("start_time"))
    return start.astimezone(UTC).date() if start else None


def _daily_usage(hook: ZoomVideoSdkHook, day: date) -> list[dict[str, Any]]:
    """Zoom's daily counts of ``day``'s month. A refusal (the month is outside the six months
    Zoom reports on, or the app may not read reports) costs the completeness check that month,
    never the run: the QoS is what the run is for. Credentials and the daily cap still fail it."""
    try:
        return hook.daily_usage(day.year, day.month)
    except ZoomApiError as error:
        if error.status not in (400, 403) or error.code == ErrorCode.NOT_VIDEO_SDK_ACCOUNT:
            raise
        log.warning("Zoom's daily report for %d-%02d was refused (HTTP %s, code %s: %s); that month's "
                    "daily_usage is not updated", day.year, day.month, error.status, error.code,
                    error.zoom_message)
        return []


def staged_sessions(batches: Iterable[Mapping[str, Any]]) -> Iterator[SessionInput]:
    """Every session of the batches from staging, batch by batch, its users read lazily from its
    staging file; a session whose QoS could not be read comes with its status and no users."""
    last_report = time.monotonic()
    for number, batch in enumerate(batches, 1):
        require_staged(batch)  # a load cleared after the staging retention removed the files
        index = staged_index(batch["qos_uri"])
        for session in read_jsonl(batch["sessions_uri"]):
            session_id = str(session["id"])
            if session_id not in index:
                raise RuntimeError(f"Session {session_id!r} of batch {batch['index']} has no staged "
                                   "QoS: its extraction did not finish. Clear extract_qos and retry.")
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
    batches: Iterable[Mapping[str, Any]],
    warehouse: Warehouse | None = None,
    hard_checks: Iterable[str] = DEFAULT_HARD_CHECKS,
    listing: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Upsert every staged session (atomically per session) and Zoom's daily counts, then check
    the data loaded; ``listing`` is the listing's stats (its window and ``daily_usage``)."""
    listing = listing or {}
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
                                  days=_window_days(listing))
    for field, detail in issues.as_dict().items():
        log.warning("%d value(s) of %r could not be parsed and were loaded as NULL (e.g. %r)",
                    detail["count"], field, detail["example"])
    for finding in findings:
        log.warning("Data quality%s: %s: %d row(s), e.g. %s", " (HARD)" if finding.hard else "",
                    finding.check, finding.count, finding.example)
    result = {
        "sessions_loaded": summary.sessions_loaded,
        "sessions_skipped": summary.sessions_skipped,
        "sessions_pending": summary.sessions_pending,
        "sessions_unavailable": summary.sessions_unavailable,
        "users_loaded": summary.users,
        "qos_rows": summary.qos_rows,
        "system_rows": summary.system_rows,
        "daily_usage_days": usage,
        "unparsed_values": issues.total,
        "unparsed_detail": issues.as_dict(),
        "dq_findings": findings_as_json(findings),
        "dq_hard_violations": hard_violations(findings),
        "load_seconds": round(load_seconds, 3),
    }
    log.info("Loaded %d sessions with QoS, %d pending, %d unavailable (%d skipped): %d users, %d QoS "
             "rows, %d system rows", result["sessions_loaded"], result["sessions_pending"],
             result["sessions_unavailable"], result["sessions_skipped"], result["users_loaded"],
             result["qos_rows"], result["system_rows"])
    return result


def _window_days(listing: Mapping[str, Any]) -> list[date]:
    """The UTC days of the listed window (what the completeness check compares)."""
    if not listing.get("window_start") or not listing.get("window_end"):
        return []
    first, last = date.fromisoformat(listing["window_start"]), date.fromisoformat(listing["window_end"])
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def alert_quality(
    loaded: Mapping[str, Any] | None,
    listing: Mapping[str, Any] | None,
    *,
    run_id: str | None = None,
    warehouse: Warehouse | None = None,
    context: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The quality alerts of the run's window, once a load returned ``loaded`` (see
    ``zoom_qos.day_alerts.quality_alerts``): each day's poor share and gap to Zoom's count against the
    ``[zoom_qos]`` thresholds, each (day, kind) sent once through the configured notifier. Returns
    the alerts raised now. A notifier failure is a warning, never an error; a wrong notifier
    setting fails (before anything is recorded)."""
    from zoom_qos import day_alerts

    days = _window_days(listing or {})
    if not loaded or not days:
        log.info("Quality alerts: no load, or no window; nothing to check")
        return []
    with opened_warehouse(warehouse) as opened:
        raised = day_alerts.quality_alerts(opened, days, run_id=run_id, context=context)
    log.info("Quality alerts raised: %d", len(raised))
    return raised


def record_run(
    *,
    run_id: str,
    dag_id: str,
    started_at: datetime | None,
    listing: Mapping[str, Any] | None,
    extracts: Iterable[Mapping[str, Any] | None],
    loaded: Mapping[str, Any] | None,
    warehouse: Warehouse | None = None,
    batches: Iterable[Mapping[str, Any]] | None = None,
    staging: str | None = None,
) -> str:
    """Save the run's ``pipeline_runs`` row and return its outcome.

    Runs after every other task, whatever their state: a load result means success, a listing
    that found nothing Zoom still serves means skipped, anything else means a task failed.
    ``listing`` may be what a failed listing knew (its window, its requests so far). ``batches``
    (the listing's return) lets a failed run count the requests of extractions that did not
    return: each attempt leaves its cost in its batch folder (``staging.write_stats``).

    A successful run marks its staging folder loaded and sweeps the staging of runs loaded longer
    than ``staging_retention_days`` ago (``extract.retention``; ``staging`` defaults to the
    configured ``staging_url``); that never changes the outcome.
    """
    listing = listing or {}
    done: list[Mapping[str, Any]] = [e for e in extracts if e]
    returned = {e.get("qos_uri") for e in done}
    done += [{"qos_uri": b["qos_uri"], **staged_cost(b["qos_uri"])}
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
                  extracts=done, loaded=loaded or {}, outcome=outcome, error=error)
    with opened_warehouse(warehouse) as warehouse:
        warehouse.record_run(row)
    log.info("Run record: %s", row)
    if outcome == "success":  # staging retention: never fails the run (see extract.retention)
        retain_after_load(staging or staging_url(), dag_id, run_id)
    return outcome


def run_row(
    *,
    run_id: str,
    dag_id: str,
    started_at: datetime | None,
    listing: Mapping[str, Any],
    extracts: Iterable[Mapping[str, Any] | None],
    loaded: Mapping[str, Any],
    outcome: str,
    error: str | None,
) -> dict[str, Any]:
    """One ``pipeline_runs`` row from what the tasks returned."""
    done: list[Mapping[str, Any]] = [e for e in extracts if e]
    cost_fields = ("requests", "retries", "rate_limit_waits", "rate_limit_wait_seconds",
                   "token_restarts")
    cost = {f: listing.get(f, 0) + sum(e.get(f, 0) for e in done) for f in cost_fields}
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
        "sessions_loaded": loaded.get("sessions_loaded"),
        "sessions_skipped": loaded.get("sessions_skipped"),
        "sessions_pending": loaded.get("sessions_pending"),
        "sessions_unavailable": loaded.get("sessions_unavailable"),
        "users_loaded": loaded.get("users_loaded"),
        "qos_rows": loaded.get("qos_rows"),
        "system_rows": loaded.get("system_rows"),
        "api_requests": cost["requests"],
        "retries": cost["retries"],
        "rate_limit_waits": cost["rate_limit_waits"],
        "rate_limit_wait_seconds": float(cost["rate_limit_wait_seconds"]),
        "token_restarts": cost["token_restarts"],
        "unparsed_values": loaded.get("unparsed_values"),
        "unparsed_detail": loaded.get("unparsed_detail"),
        "dq_findings": loaded.get("dq_findings"),
        "dq_hard_violations": loaded.get("dq_hard_violations"),
        "extract_seconds": sum(e.get("extract_seconds", 0.0) for e in done) or None,
        "load_seconds": loaded.get("load_seconds"),
        "error": error,
    }
