"""The listing: a run's past sessions, staged in batches for the mapped extraction.

Which days (``windows``), Zoom's list of each month touched, the lookback sessions already loaded
left out, the pending ones Zoom did not list added back, and each batch written to staging. Its
stats carry the window, the requests and Zoom's own daily counts (``daily_usage``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any, cast

from zoom_qos.core.config import staging_url
from zoom_qos.core.contracts import BatchRef, ListingStats
from zoom_qos.core.errors import NothingToLoad
from zoom_qos.pipeline.staging import run_folder, write_jsonl
from zoom_qos.pipeline.windows import (
    Window,
    available_part,
    batch_sizes,
    check_listing_params,
    month_ranges,
    requested_window,
)
from zoom_qos.transform.parsing import parse_timestamp
from zoom_qos.warehouse.opening import ensure_reachable, opened_warehouse
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.webhooks import event_loaded_sessions
from zoom_qos.zoom.client import ZoomClient
from zoom_qos.zoom.errors import ZoomApiError
from zoom_qos.zoom.ids import unrequestable_reason
from zoom_qos.zoom.published import ErrorCode

log = logging.getLogger(__name__)

# Airflow refuses to map more than core.max_map_length (1024) tasks; stay well under it.
MAX_BATCHES = 500


def list_sessions(
    *,
    dag_id: str,
    run_id: str,
    interval_start: datetime | None,
    interval_end: datetime | None,
    params: Mapping[str, Any],
    client: ZoomClient,
    today: date | None = None,
    staging: str | None = None,
    warehouse: Warehouse | None = None,
    progress: dict[str, Any] | None = None,
) -> tuple[list[BatchRef], ListingStats]:
    """List the run's past sessions and stage them in batches for mapped extraction.

    Returns the batch references (what the extraction is mapped over) and the listing's stats,
    which carry Zoom's daily counts of the months touched (``daily_usage``, one request a month).
    Raises ``NothingToLoad`` when no requested day is still available at Zoom. Sessions of the
    lookback days whose QoS is already loaded are left out (see ``Warehouse.settled_sessions``); ``pending``
    sessions that Zoom did not list this time are added, so they are asked for again until they
    are loaded or turn unavailable (docs/warehouse.md, v2).

    Before any Zoom request or write, the integer params are checked (``InvalidParamError``; the
    caller checked them before building ``client``, whose settings refuse bad extras) and the
    window (``InvalidWindowError``), then the warehouse is connected to
    (``WarehouseUnreachableError``), all permanent.
    ``progress``, when given, is filled as the listing goes (the window, then the requests so far,
    even when it fails), so the run record of a failed listing still says what it asked for and
    what it cost.
    """
    params = check_listing_params(params)
    progress = progress if progress is not None else {}
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
    with opened_warehouse(warehouse, ensure_reachable) as opened:
        return _list_and_stage(client=client, params=params, window=window, part=part, dag_id=dag_id,
                               run_id=run_id, staging=staging, opened=opened, progress=progress)


def _list_and_stage(*, client: ZoomClient, params: Mapping[str, Any], window: Window, part: Window,
                    dag_id: str, run_id: str, staging: str | None, opened: Warehouse,
                    progress: dict[str, Any]) -> tuple[list[BatchRef], ListingStats]:
    """``list_sessions`` once the window is known and the warehouse ready."""
    sessions: dict[str, dict[str, Any]] = {}
    usage: list[dict[str, Any]] = []
    try:
        for chunk in month_ranges(part):
            before = len(sessions)
            for session in client.iter_past_sessions(chunk.start, chunk.end):
                if session.get("id"):
                    sessions[str(session["id"])] = session
            log.info("Listed %d sessions for %s..%s", len(sessions) - before, chunk.start, chunk.end)
            usage.extend(_daily_usage(client, chunk.start))
    finally:
        progress.update(client.stats.as_dict())  # the requests so far, should the listing fail

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
    if not (params.get("from_date") or params.get("to_date")):
        _leave_out_event_loaded(opened, sessions)
    revisits = opened.pending_sessions(exclude=set(sessions))
    for session_id, session in revisits.items():
        sessions[session_id] = session
    if revisits:
        log.info("Asking again for %d pending or live sessions Zoom did not list this time", len(revisits))

    batches = stage_batches(list(sessions.values()), staging=staging, dag_id=dag_id, run_id=run_id,
                            batch_size=int(params["batch_size"]))
    # Every listed session is kept; those whose id cannot be requested safely are staged as
    # unavailable by the extraction without a request (``extraction.BatchExtractor``).
    unrequestable = sum(unrequestable_reason(s["id"]) is not None for s in sessions.values())
    if unrequestable:
        log.warning("%d listed sessions have ids that cannot be requested safely (a '.' or '..' segment, a "
                    "control character, too long): kept, and staged as unavailable without a request",
                    unrequestable)
    stats = cast(ListingStats, {
        "window_start": part.start.isoformat(),
        "window_end": part.end.isoformat(),
        "sessions_listed": listed,
        "sessions_already_loaded": listed + len(revisits) - len(sessions),
        "sessions_revisited": len(revisits),
        "sessions_unrequestable": unrequestable,
        "batches": len(batches),
        "daily_usage": usage,
        **client.stats.as_dict(),
    })
    log.info("Window %s..%s: %d sessions in %d batches", part.start, part.end, len(sessions),
             len(batches))
    return batches, stats


def _leave_out_event_loaded(opened: Warehouse, sessions: dict[str, dict[str, Any]]) -> None:
    """Sessions the events path loaded (``session.ended``) are not read again: the list's own
    objects only refresh their list fields. A manual reload reads everything it names."""
    requestable = [i for i, v in sessions.items() if unrequestable_reason(v["id"]) is None]
    loaded = event_loaded_sessions(opened.engine, requestable)
    if not loaded:
        return
    opened.refresh_listed([sessions.pop(session_id) for session_id in sorted(loaded)])
    log.info("%d sessions were loaded from Zoom's session.ended events; their QoS is not read again",
             len(loaded))


def stage_batches(sessions: list[dict[str, Any]], *, staging: str | None, dag_id: str, run_id: str,
                  batch_size: int) -> list[BatchRef]:
    """Stage ``sessions`` (Zoom's session objects, each with its ``id``) in batches for the mapped
    extraction, in a fresh folder of the run: a retried extraction resumes inside it, a new listing
    starts anew. Returns the batch references."""
    folder = run_folder(staging or staging_url(), dag_id, run_id) / f"listing-{uuid.uuid4().hex[:12]}"
    ordered = iter(sorted(sessions, key=lambda s: str(s["id"])))
    batches: list[BatchRef] = []
    first = 1
    for index, size in enumerate(batch_sizes(len(sessions), batch_size, MAX_BATCHES)):
        name = f"batch-{index:05d}"
        sessions_uri = folder / "sessions" / f"{name}.jsonl"
        write_jsonl(sessions_uri, islice(ordered, size))
        # first/last/of: the batch's place in the listing, the label of its mapped task in the UI
        batches.append({"index": index, "sessions_uri": str(sessions_uri),
                        "qos_uri": str(folder / "qos" / name), "sessions": size,
                        "first": first, "last": first + size - 1, "of": len(sessions)})
        first += size
    return batches


def _start_day(session: Mapping[str, Any]) -> date | None:
    start = parse_timestamp(session.get("start_time"))
    return start.astimezone(UTC).date() if start else None


def _daily_usage(client: ZoomClient, day: date) -> list[dict[str, Any]]:
    """Zoom's daily counts of ``day``'s month. A refusal (the month is outside the six months
    Zoom reports on, or the app may not read reports) costs the completeness check that month,
    never the run: the QoS is what the run is for. Credentials and the daily cap still fail it."""
    try:
        return client.daily_usage(day.year, day.month)
    except ZoomApiError as error:
        if error.status not in (400, 403) or error.code == ErrorCode.NOT_VIDEO_SDK_ACCOUNT:
            raise
        log.warning("Zoom's daily report for %d-%02d was refused (HTTP %s, code %s: %s); that month's "
                    "daily_usage is not updated", day.year, day.month, error.status, error.code,
                    error.zoom_message)
        return []
