"""Call-quality report, rendered after every successful warehouse load.

Scheduled on the asset ``zoom_qos_warehouse`` (``zoom-qos://warehouse/qos``) that
``zoom_videosdk_qos``'s ``load_warehouse`` task emits: each fresh load renders one static,
self-contained HTML file from the BI views, over the last 30 days of data present, into
the ``[zoom_qos] report_dir`` setting (default ``reports/`` in the data folder). The logic lives in
``zoom_qos.report``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from zoom_qos import tasks
from zoom_qos.assets import ZOOM_QOS_ASSET
from zoom_qos.core.contracts import REPORT_DAG_ID, REPORT_TASK_ID
from zoom_qos.report.data import DEFAULT_DAYS


@dag(
    dag_id=REPORT_DAG_ID,
    schedule=[ZOOM_QOS_ASSET],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
    params={
        "days": Param(DEFAULT_DAYS, type="integer", minimum=1, maximum=366,
                      description="UTC days of data the report covers, ending on the newest sample's day."),
    },
    tags=["zoom", "qos", "videosdk", "report"],
    doc_md=__doc__,
)
def zoom_videosdk_qos_report():
    task(tasks.report_task, task_id=REPORT_TASK_ID)()


zoom_videosdk_qos_report()
