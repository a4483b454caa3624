"""What the tasks hand each other, typed: the DAGs' and tasks' names, XCom keys, and the shapes of
what goes through XCom.

XCom carries JSON, so each contract is a ``TypedDict`` (a plain dict at run time, checked by mypy
where it is built and where it is read). Each name is defined here once: the DAG files, the
operators, the run record and the live poll use these constants, never the strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, Final, TypedDict

#: The DAGs' ids: the daily run's, the live polls', the report's and the ended sessions' (webhooks).
DAILY_DAG_ID: Final = "zoom_videosdk_qos"
LIVE_DAG_ID: Final = "zoom_videosdk_qos_live"
REPORT_DAG_ID: Final = "zoom_videosdk_qos_report"
EVENTS_DAG_ID: Final = "zoom_videosdk_qos_events"

#: The daily DAG's tasks.
LIST_TASK_ID: Final = "list_sessions"
EXTRACT_TASK_ID: Final = "extract_qos"
LOAD_TASK_ID: Final = "load_warehouse"
ALERTS_TASK_ID: Final = "check_alerts"
RECORD_TASK_ID: Final = "record_run"
#: The daily DAG's reading of Zoom's webhook log (failed deliveries).
RECONCILE_TASK_ID: Final = "reconcile_webhooks"
#: The events DAG lists its sessions from the stored session.ended events (LIST_TASK_ID, so the run
#: record reads it as the daily listing), then records what came of each event.
SETTLE_TASK_ID: Final = "settle_events"
#: The live DAG's and the report DAG's one task each.
LIVE_POLL_TASK_ID: Final = "poll_live"
REPORT_TASK_ID: Final = "render_report"

#: The listing's second XCom (beside its return value, the batches): its ``ListingStats``.
STATS_XCOM_KEY: Final = "stats"


class RequestCost(TypedDict, total=False):
    """What a task's Zoom requests cost (``zoom.client.RequestStats.as_dict``); absent where
    nothing was asked (a listing skipped before its first request)."""

    requests: int
    retries: int
    rate_limit_waits: int
    rate_limit_wait_seconds: float
    jwt_renewals_on_401: int
    token_restarts: int


#: The fields of ``RequestCost`` the run record adds up over the listing and every extraction.
COST_FIELDS: Final = ("requests", "retries", "rate_limit_waits", "rate_limit_wait_seconds", "token_restarts")


class BatchRef(TypedDict):
    """One mapped extraction's input, made by the listing: where its sessions are staged
    (``sessions_uri``, JSON lines), the folder its QoS goes to (``qos_uri``), and its place in the
    listing (``first``..``last`` of ``of``: the mapped task's label)."""

    index: int
    sessions_uri: str
    qos_uri: str
    sessions: int
    first: int
    last: int
    of: int


class ListingStats(RequestCost, total=False):
    """The listing's figures (XCom ``stats``): its window, what it listed and what it cost; the
    daily counts of the months it touched (``daily_usage``). A failed listing leaves what it knew
    (the window, the requests so far); one that found nothing Zoom still serves, ``skipped``."""

    window_start: str
    window_end: str
    sessions_listed: int
    sessions_already_loaded: int
    sessions_revisited: int
    sessions_unrequestable: int
    batches: int
    daily_usage: list[dict[str, Any]]
    skipped: str


class ExtractResult(RequestCost, total=False):
    """One extraction's return (references and counts, never the data), or, for an extraction
    that did not return, the cost its attempts left in staging (``qos_uri`` and the cost only)."""

    index: int
    sessions_uri: str
    qos_uri: str
    sessions: int
    sessions_unread: int
    users: int
    extract_seconds: float


class LoadCounts(TypedDict):
    """What a load wrote, the daily load's and the live poll's alike."""

    sessions_loaded: int
    sessions_skipped: int
    sessions_pending: int
    sessions_unavailable: int
    users_loaded: int
    qos_rows: int
    system_rows: int
    unparsed_values: int
    unparsed_detail: dict[str, Any]


class LoadResult(LoadCounts):
    """The daily load's return: its counts, Zoom's days recorded and the data-quality findings."""

    daily_usage_days: int
    dq_findings: list[dict[str, Any]]
    dq_hard_violations: int
    load_seconds: float


class RunRecord(TypedDict):
    """One ``pipeline_runs`` row (docs/warehouse.md, "Run record")."""

    run_id: str
    dag_id: str
    window_start: Any
    window_end: Any
    started_at: Any
    finished_at: Any
    outcome: str
    sessions_listed: int | None
    sessions_loaded: int | None
    sessions_skipped: int | None
    sessions_pending: int | None
    sessions_unavailable: int | None
    users_loaded: int | None
    qos_rows: int | None
    system_rows: int | None
    api_requests: int
    retries: int
    rate_limit_waits: int
    rate_limit_wait_seconds: float
    token_restarts: int
    unparsed_values: int | None
    unparsed_detail: dict[str, Any] | None
    dq_findings: list[dict[str, Any]] | None
    dq_hard_violations: int | None
    extract_seconds: float | None
    load_seconds: float | None
    error: str | None


def window_days(listing: Mapping[str, Any]) -> list[date]:
    """The UTC days of the listed window (what the completeness check compares)."""
    if not listing.get("window_start") or not listing.get("window_end"):
        return []
    first, last = date.fromisoformat(listing["window_start"]), date.fromisoformat(listing["window_end"])
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
