"""Zoom Video SDK call quality minutes after a session ends, driven by Zoom's webhooks.

Zoom posts ``session.ended`` to the package's webhook receiver (``zoom-qos webhooks serve``), which
stores it in the warehouse; Airflow's triggerer watches that store (the asset
``zoom_ended_sessions`` and its watcher) and starts this DAG. A run loads every stored
``session.ended`` it has not handled yet, with the daily run's own extraction and load, and records
what came of each: a session Zoom does not serve yet (3001 right after its end) is asked again a
minute later, then 2, 4 … minutes, before it is left to the daily run. Started by hand (or by
``airflow dags test``) it does the same. The daily DAG stays the completeness sweep and does not
read the sessions loaded here again. Setup: docs/webhooks.md.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from zoom_qos import tasks
from zoom_qos.alerts.notify import on_dag_failure
from zoom_qos.assets import ZOOM_ENDED_SESSIONS, ZOOM_QOS_ASSET, ZOOM_QOS_TABLES
from zoom_qos.core import config
from zoom_qos.core.config import LISTING_PARAMS as BOUNDS
from zoom_qos.core.contracts import (
    EVENTS_DAG_ID,
    EXTRACT_TASK_ID,
    LIST_TASK_ID,
    LOAD_TASK_ID,
    RECORD_TASK_ID,
    SETTLE_TASK_ID,
)
from zoom_qos.operators import WarehouseLoadOperator, ZoomSessionQosOperator


@dag(
    dag_id=EVENTS_DAG_ID,
    schedule=[ZOOM_ENDED_SESSIONS],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # events that arrive during a run start the next one
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params={
        "qos_pending_max_hours": Param(**BOUNDS["qos_pending_max_hours"].schema(),
                                       description="A session Zoom does not serve after this long is "
                                                   "unavailable."),
        "batch_size": Param(**BOUNDS["batch_size"].schema(), description="Sessions per mapped extraction."),
    },
    on_failure_callback=on_dag_failure,
    tags=["zoom", "qos", "videosdk", "webhooks"],
    doc_md=__doc__,
)
def zoom_videosdk_qos_events():
    batches = task(tasks.events_listing_task, task_id=LIST_TASK_ID, execution_timeout=tasks.RECORD_TIMEOUT)()
    extracted = ZoomSessionQosOperator.partial(
        task_id=EXTRACT_TASK_ID, qos_pending_max_hours="{{ params.qos_pending_max_hours }}",
        max_active_tis_per_dag=None if config.rate_limit_redis_url() else 1,
    ).expand(batch=batches)
    loaded = WarehouseLoadOperator(
        task_id=LOAD_TASK_ID, batches=batches, trigger_rule="none_failed_min_one_success",
        outlets=[ZOOM_QOS_ASSET, ZOOM_QOS_TABLES], execution_timeout=tasks.LOAD_TIMEOUT,
    )
    settled = task(tasks.settle_events_task, task_id=SETTLE_TASK_ID, execution_timeout=tasks.RECORD_TIMEOUT)()
    recorded = task(tasks.record_task, task_id=RECORD_TASK_ID, trigger_rule="all_done", retries=0,
                    execution_timeout=tasks.RECORD_TIMEOUT)()
    extracted >> loaded >> settled >> recorded


zoom_videosdk_qos_events()
