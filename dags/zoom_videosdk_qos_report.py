"""Call-quality report, rendered after every successful warehouse load.

Scheduled on the asset ``zoom_qos_warehouse`` (``zoom-qos://warehouse/qos``) that
``zoom_videosdk_qos``'s ``load_warehouse`` task emits: each fresh load renders one static,
self-contained HTML file from the BI views, over the last 30 days of data present, into
the ``[zoom_qos] report_dir`` setting (default ``reports/`` in the data folder). The logic lives in
``zoom_qos.report``.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

from zoom_qos import report
from zoom_qos.assets import ZOOM_QOS_ASSET
from zoom_qos.errors import StorageUnwritableError

log = logging.getLogger(__name__)


@dag(
    dag_id="zoom_videosdk_qos_report",
    schedule=[ZOOM_QOS_ASSET],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
    params={
        "days": Param(report.DEFAULT_DAYS, type="integer", minimum=1, maximum=366,
                      description="UTC days of data the report covers, ending on the newest sample's day."),
    },
    tags=["zoom", "qos", "videosdk", "report"],
    doc_md=__doc__,
)
def zoom_videosdk_qos_report():
    @task
    def render_report(**context) -> str:
        events = context.get("triggering_asset_events") or {}
        log.info("Triggered by %d asset event(s).", sum(len(v) for v in events.values()))
        try:
            path = report.render_configured_report(days=context["params"]["days"])
        except StorageUnwritableError as error:  # a full or read-only folder: a retry fails the same
            raise AirflowFailException(str(error)) from error
        log.info("QoS report: %s", path)
        return str(path)

    render_report()


zoom_videosdk_qos_report()
