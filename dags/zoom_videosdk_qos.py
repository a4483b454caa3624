"""Zoom Video SDK call quality (QoS), daily, into the warehouse.

Each run covers one UTC day (plus ``lookback_days`` before it, to catch sessions that were
still live at the previous run): list the day's past sessions → read every session's user
QoS in mapped batches → upsert into the warehouse → alert on the days' quality → record what the
run did; beside them, Zoom's failed webhook deliveries are recorded (when webhooks are in use). A
failed run is sent to the ``[zoom_qos] notifier``, when one is configured.

Manual reload of chosen days: trigger with ``{"from_date": "YYYY-MM-DD", "to_date": "YYYY-MM-DD"}``.
Connections: ``zoom_videosdk`` (Zoom) and ``zoom_qos_warehouse`` (optional; SQLite otherwise).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from zoom_qos import tasks
from zoom_qos.alerts.notify import on_dag_failure
from zoom_qos.assets import ZOOM_QOS_ASSET, ZOOM_QOS_TABLES
from zoom_qos.core import config
from zoom_qos.core.config import LISTING_PARAMS as BOUNDS
from zoom_qos.core.contracts import (
    ALERTS_TASK_ID,
    DAILY_DAG_ID,
    EXTRACT_TASK_ID,
    LIST_TASK_ID,
    LOAD_TASK_ID,
    RECONCILE_TASK_ID,
    RECORD_TASK_ID,
)
from zoom_qos.operators import WarehouseLoadOperator, ZoomSessionQosOperator
from zoom_qos.warehouse.quality import DEFAULT_HARD_CHECKS

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


@dag(
    dag_id=DAILY_DAG_ID,
    # [day, next day) in UTC; a plain cron string would give a zero-length interval.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=3,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True},
    params={
        # ``format: date`` (checked by Airflow's JSON-schema validation) refuses impossible days
        # such as 2026-13-45 at trigger time; the listing checks the order of the two.
        "from_date": Param(None, type=["null", "string"], pattern=DATE_PATTERN, format="date",
                           description="Manual reload: first day (UTC, inclusive), YYYY-MM-DD."),
        "to_date": Param(None, type=["null", "string"], pattern=DATE_PATTERN, format="date",
                         description="Manual reload: last day (UTC, inclusive), YYYY-MM-DD, not "
                                     "before from_date."),
        # Default and range from config.LISTING_PARAMS, which the listing checks again.
        "lookback_days": Param(**BOUNDS["lookback_days"].schema(),
                               description="Days before the interval listed again, for sessions "
                                           "that were still live at the previous run."),
        "lookback_settle_minutes": Param(**BOUNDS["lookback_settle_minutes"].schema(),
                                         description="Lookback sessions already loaded this long "
                                                     "after they ended are not read again."),
        "qos_pending_max_hours": Param(**BOUNDS["qos_pending_max_hours"].schema(),
                                       description="A session whose QoS Zoom does not serve yet (404/3001) "
                                                   "is pending, and asked again, until this long after "
                                                   "its end; then it is unavailable."),
        "batch_size": Param(**BOUNDS["batch_size"].schema(),
                            description="Sessions per mapped extraction task."),
        "dq_hard_checks": Param(sorted(DEFAULT_HARD_CHECKS), type="array", items={"type": "string"},
                                description="Data-quality checks whose violations fail the run."),
    },
    # The [zoom_qos] notifier, resolved when a run fails; nothing when none is configured.
    on_failure_callback=on_dag_failure,
    tags=["zoom", "qos", "videosdk"],
    doc_md=__doc__,
)
def zoom_videosdk_qos():
    batches = task(tasks.listing_task, task_id=LIST_TASK_ID, execution_timeout=tasks.LISTING_TIMEOUT)()
    extracted = ZoomSessionQosOperator.partial(
        task_id=EXTRACT_TASK_ID, qos_pending_max_hours="{{ params.qos_pending_max_hours }}",
        map_index_template="batch {{ task.batch['index'] }}: sessions {{ task.batch['first'] }}-"
                           "{{ task.batch['last'] }} of {{ task.batch['of'] }}",
        # Without Redis each process paces alone, so only one extraction may talk to Zoom at a
        # time; with it, every extraction shares one pacing and the account's rate is the bound.
        max_active_tis_per_dag=None if config.rate_limit_redis_url() else 1,
    ).expand(batch=batches)

    # The load is an operator so that OpenLineage learns what it read and wrote (see lineage.py);
    # the alias resolves to the warehouse's real tables at run time.
    loaded = WarehouseLoadOperator(
        task_id=LOAD_TASK_ID, batches=batches, trigger_rule="none_failed_min_one_success",
        outlets=[ZOOM_QOS_ASSET, ZOOM_QOS_TABLES], execution_timeout=tasks.LOAD_TIMEOUT,
    )
    # Only after a successful load: each day's poor share and gap to Zoom's count, alerted once.
    alerted = task(tasks.alerts_task, task_id=ALERTS_TASK_ID, retries=0,
                   execution_timeout=tasks.RECORD_TIMEOUT)()
    # Whatever the other tasks did: the run's record (its failure fails the run).
    recorded = task(tasks.record_task, task_id=RECORD_TASK_ID, trigger_rule="all_done", retries=0,
                    execution_timeout=tasks.RECORD_TIMEOUT)()
    extracted >> loaded >> alerted >> recorded
    # Beside the load: the deliveries Zoom's webhook log marks failed (skipped without webhooks).
    task(tasks.reconcile_task, task_id=RECONCILE_TASK_ID, retries=1, execution_timeout=tasks.RECORD_TIMEOUT)()


zoom_videosdk_qos()
