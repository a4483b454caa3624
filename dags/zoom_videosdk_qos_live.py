"""Zoom Video SDK call quality while the calls happen: sessions in progress, every few minutes.

Each run lists the sessions Zoom has in progress (``type=live``), reads their users' QoS so far
and replaces their rows in the warehouse (``sessions.qos_status = 'live'``; the view
``live_session_quality`` shows them), then raises an alert, once per join and media type, for a
join whose recent samples are mostly poor (table ``qos_alerts``; sent through the ``[zoom_qos]
notifier`` when one is configured). The daily DAG later reads the same sessions as past and
their rows become the final ones (``loaded``).

It polls every ``[zoom_qos] live_interval_minutes`` (default 5) from the live share of Zoom's
daily cap (``live_daily_request_budget`` of the Zoom connection); when that is spent, polls
record ``paused`` until 00:00 UTC. Created paused, like every DAG: unpause it to watch calls.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from zoom_qos import tasks
from zoom_qos.alerts.notify import on_dag_failure
from zoom_qos.core import config
from zoom_qos.core.contracts import LIVE_DAG_ID, LIVE_POLL_TASK_ID
from zoom_qos.pipeline.live import POLL_TIMEOUT


@dag(
    dag_id=LIVE_DAG_ID,
    schedule=timedelta(minutes=config.live_interval_minutes()),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one poll at a time: a slow poll delays the next instead of doubling it
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
    on_failure_callback=on_dag_failure,
    tags=["zoom", "qos", "videosdk", "live"],
    doc_md=__doc__,
)
def zoom_videosdk_qos_live():
    task(tasks.live_poll_task, task_id=LIVE_POLL_TASK_ID, execution_timeout=POLL_TIMEOUT)()


zoom_videosdk_qos_live()
