"""What each TaskFlow task of the DAGs does, given Airflow's context: the Airflow side of the
pipeline's steps (``zoom_qos.pipeline``), kept out of the DAG files so they only wire tasks.

Here and only here are the XCom pushes and pulls, the translation of our errors into Airflow's
(``fail_fast``: a ``PermanentError`` fails the task without its retries; ``NothingToLoad`` skips)
and the hooks that turn Airflow connections into the pipeline's clients.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from zoom_qos import report
from zoom_qos.alerts.daily import alert_quality
from zoom_qos.core import config
from zoom_qos.core.config import ZOOM_CONN_ID
from zoom_qos.core.contracts import (
    EXTRACT_TASK_ID,
    LIST_TASK_ID,
    LOAD_TASK_ID,
    STATS_XCOM_KEY,
    BatchRef,
    ExtractResult,
    ListingStats,
    LoadResult,
)
from zoom_qos.core.errors import NothingToLoad, PermanentError
from zoom_qos.hooks import ZoomVideoSdkHook
from zoom_qos.pipeline import events, listing, live, reconcile, runrecord
from zoom_qos.pipeline.windows import check_listing_params

log = logging.getLogger(__name__)

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


@contextmanager
def fail_fast() -> Iterator[None]:
    """Fail the task without its retries on an error no retry can cure: a ``PermanentError``
    (a wrong account, a missing scope or plan, a path Zoom does not recognize, a setting, a full
    or read-only storage, a body no Zoom page can be). Anything else is left to the retries."""
    try:
        yield
    except PermanentError as error:
        raise AirflowFailException(str(error)) from error


def list_sessions(*, params: Mapping[str, Any], zoom_conn_id: str = ZOOM_CONN_ID,
                  **listing_args: Any) -> tuple[list[BatchRef], ListingStats]:
    """``pipeline.listing.list_sessions`` (``listing_args`` are its arguments) with the client of
    the Zoom connection ``zoom_conn_id``.

    The params are checked before the connection is read, and the connection (its extras refused
    when wrong) before anything is requested or written."""
    params = check_listing_params(params)
    with closing(ZoomVideoSdkHook(zoom_conn_id)) as hook:
        return listing.list_sessions(params=params, client=hook.client, **listing_args)


def listing_task(**context: Any) -> list[BatchRef]:
    """The daily DAG's listing: returns the batches (what the extraction is mapped over) and
    pushes the listing's stats (``STATS_XCOM_KEY``), also when it fails (what it knew: its window,
    its requests) or finds nothing Zoom still serves (then the task is skipped)."""
    progress: dict[str, Any] = {}
    return _staged(context, progress, lambda: list_sessions(
        dag_id=context["dag"].dag_id, run_id=context["run_id"],
        interval_start=context.get("data_interval_start"),
        interval_end=context.get("data_interval_end"), params=context["params"], progress=progress))


def events_listing_task(**context: Any) -> list[BatchRef]:
    """The events DAG's listing: the sessions of the stored ``session.ended`` events not handled
    yet, staged as the daily listing stages its own; skipped when there is none."""
    return _staged(context, {}, lambda: events.claim_ended(
        dag_id=context["dag"].dag_id, run_id=context["run_id"],
        batch_size=int(context["params"]["batch_size"])))


def settle_events_task(**context: Any) -> dict[str, str]:
    """After the events DAG's load: each event's outcome (loaded, pending and when to ask again…)."""
    batches = cast("list[BatchRef] | None", context["ti"].xcom_pull(task_ids=LIST_TASK_ID)) or []
    with fail_fast():
        return events.settle(session_ids=events.staged_session_ids(batches),
                             run=f"{context['dag'].dag_id}/{context['run_id']}")


def _staged(context: Mapping[str, Any], progress: dict[str, Any],
            stage: Callable[[], tuple[list[BatchRef], ListingStats]]) -> list[BatchRef]:
    """A listing's XComs: the batches returned, its stats pushed (``STATS_XCOM_KEY``) whatever
    happens, the task skipped when there is nothing to load."""
    ti = context["ti"]
    try:
        with fail_fast():
            batches, stats = stage()
    except NothingToLoad as why:
        ti.xcom_push(key=STATS_XCOM_KEY, value=ListingStats(skipped=str(why)))
        raise AirflowSkipException(str(why)) from why
    except Exception:
        ti.xcom_push(key=STATS_XCOM_KEY, value=progress)
        raise
    ti.xcom_push(key=STATS_XCOM_KEY, value=stats)
    return batches


def _listing_stats(ti: Any) -> ListingStats | None:
    return cast("ListingStats | None", ti.xcom_pull(task_ids=LIST_TASK_ID, key=STATS_XCOM_KEY))


def alerts_task(**context: Any) -> list[dict[str, Any]]:
    """Only after a successful load: each day's poor share and gap to Zoom's count, alerted once."""
    ti = context["ti"]
    return alert_quality(ti.xcom_pull(task_ids=LOAD_TASK_ID), _listing_stats(ti),
                         run_id=context["run_id"], context=context)


def record_task(**context: Any) -> str:
    """The daily run's record, whatever the other tasks did; fails the run when it failed."""
    ti = context["ti"]
    extracts = ti.xcom_pull(task_ids=[EXTRACT_TASK_ID]) or []  # a list even for one batch
    outcome = runrecord.record_run(
        run_id=context["run_id"], dag_id=context["dag"].dag_id, started_at=context["dag_run"].start_date,
        listing=_listing_stats(ti), extracts=cast("list[ExtractResult | None]", extracts),
        loaded=cast("LoadResult | None", ti.xcom_pull(task_ids=LOAD_TASK_ID)),
        batches=cast("list[BatchRef] | None", ti.xcom_pull(task_ids=LIST_TASK_ID)))
    if outcome == "failed":
        raise AirflowFailException("The run failed (a task failed, or hard data-quality violations); "
                                   "see its pipeline_runs row and the task logs.")
    return outcome


def reconcile_task(**context: Any) -> reconcile.ReconcileResult:
    """Zoom's failed webhook deliveries recorded; skipped where webhooks are not in use (no
    ``webhook_secret_token`` on the Zoom connection) and for runs of days Zoom's log no longer covers."""
    interval_end = context.get("data_interval_end")
    if interval_end is not None and interval_end < datetime.now(UTC) - reconcile.LOG_REACH:
        raise AirflowSkipException(f"Zoom's webhook log reaches {reconcile.LOG_REACH.days} days back; "
                                   "this run's days are older.")
    with fail_fast(), closing(ZoomVideoSdkHook(ZOOM_CONN_ID)) as hook:
        if not hook.webhooks_configured():
            raise AirflowSkipException("The Zoom connection has no webhook_secret_token: webhooks are "
                                       "not in use, nothing to reconcile.")
        return reconcile.reconcile_deliveries(source=hook.client)


def live_poll_task(**context: Any) -> dict[str, Any]:
    """One live poll, unless (without a shared Redis) a daily extraction is reading Zoom now."""
    if not config.rate_limit_redis_url() and live.daily_extraction_running(context["ti"]):
        # Without Redis each process paces the account alone: one extraction at a time.
        raise AirflowSkipException("A zoom_videosdk_qos extraction is reading Zoom; without "
                                   "[zoom_qos] rate_limit_redis_url this poll leaves Zoom to it.")
    with fail_fast(), closing(ZoomVideoSdkHook(ZOOM_CONN_ID, live=True)) as hook:
        return live.poll(dag_id=context["dag"].dag_id, run_id=context["run_id"],
                         started_at=context["dag_run"].start_date, source=hook)


def report_task(**context: Any) -> str:
    """Render the report over the run's ``days`` param (a full or read-only folder fails at once)."""
    events = context.get("triggering_asset_events") or {}
    log.info("Triggered by %d asset event(s).", sum(len(v) for v in events.values()))
    with fail_fast():
        path = report.render_configured_report(days=context["params"]["days"])
    log.info("QoS report: %s", path)
    return str(path)
