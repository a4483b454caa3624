"""The extraction operator (users' QoS of a batch of sessions, from Zoom to staging) and the
load operator (staging to the warehouse).

Thin on purpose: the hook owns the connection, ``pipeline.extraction`` reads the batch and
``pipeline.load`` loads it; these operators only orchestrate. The extraction parks on a daily
limit (it defers until the reset and resumes where it stopped). XCom gets only references and
counts.

Both report their lineage to OpenLineage when the provider is installed (``lineage.py``): the
methods below are what the provider calls; without it they are never called.
"""

from __future__ import annotations

from contextlib import closing
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import Asset, AssetAlias, BaseOperator
from airflow.sdk.exceptions import AirflowException

from zoom_qos import lineage
from zoom_qos.core.config import WAREHOUSE_CONN_ID, ZOOM_CONN_ID
from zoom_qos.core.contracts import (
    LIST_TASK_ID,
    STATS_XCOM_KEY,
    BatchRef,
    ExtractResult,
    ListingStats,
    LoadResult,
)
from zoom_qos.core.errors import DailyLimitReached
from zoom_qos.core.statuses import DEFAULT_QOS_PENDING_MAX_HOURS
from zoom_qos.hooks import ZoomVideoSdkHook
from zoom_qos.pipeline.extraction import extract_batch
from zoom_qos.pipeline.load import load_batches
from zoom_qos.tasks import fail_fast
from zoom_qos.warehouse.quality import DEFAULT_HARD_CHECKS
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.zoom.budget import is_backfill

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

class ZoomSessionQosOperator(BaseOperator):
    """Pages ``GET /videosdk/sessions/{id}/users/qos?type=past`` for each session of a batch.

    :param batch: a batch reference made by the listing task: ``sessions_uri`` (JSON lines of
        session objects) and ``qos_uri`` (the folder this task fills).
    :param zoom_conn_id: the Airflow connection of the Zoom Video SDK account.
    :param defer_on_daily_limit: when Zoom's daily cap is spent, free the worker slot and resume
        after the reset (needs a triggerer); otherwise fail with the reset time.
    :param qos_pending_max_hours: how long after its end a session answering 404/3001 is still
        ``pending`` rather than ``unavailable`` (see ``availability.py``); templated.
    """

    template_fields = ("batch", "qos_pending_max_hours")
    ui_color = "#2d8cff"

    def __init__(self, *, batch: BatchRef | Any, zoom_conn_id: str = ZOOM_CONN_ID,
                 defer_on_daily_limit: bool = True,
                 qos_pending_max_hours: int | str = DEFAULT_QOS_PENDING_MAX_HOURS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.zoom_conn_id = zoom_conn_id
        self.defer_on_daily_limit = defer_on_daily_limit
        self.qos_pending_max_hours = qos_pending_max_hours

    def execute(self, context: Any) -> ExtractResult:
        with fail_fast():
            return self._extract(context)

    def resume_after_daily_limit(self, context: Any, event: Any = None) -> ExtractResult:
        self.log.info("Zoom's daily limit has reset; resuming batch %s", self.batch.get("index"))
        with fail_fast():
            return self._extract(context)

    # --- OpenLineage (called by the provider, if installed, around execute) -------------------
    def get_openlineage_facets_on_start(self) -> OperatorLineage | None:
        """Inputs and output before the run: the endpoints this connection will be asked."""
        base_url, read_user_grades = lineage.zoom_connection_lineage(self.zoom_conn_id)
        return lineage.extract_lineage(base_url=base_url, staging=lineage.staging_dataset(self.dag_id),
                                       read_user_grades=read_user_grades)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        """The same, with the users staged by this batch (kept by ``_extract``) as row count."""
        counts = getattr(self, "_lineage_counts", None)
        if counts is None:  # the task ended without extracting (nothing kept)
            return self.get_openlineage_facets_on_start()
        return lineage.extract_lineage(base_url=counts["base_url"],
                                       staging=lineage.staging_dataset(self.dag_id),
                                       read_user_grades=counts["read_user_grades"], users=counts["users"])

    def _extract(self, context: Any) -> ExtractResult:
        dag_run = context.get("dag_run")
        backfill = is_backfill(getattr(dag_run, "run_type", None), context.get("params"))
        with closing(ZoomVideoSdkHook(self.zoom_conn_id, backfill=backfill)) as hook:
            try:
                result = extract_batch(hook, self.batch, pending_max_hours=float(self.qos_pending_max_hours))
            except DailyLimitReached as limit:
                self._park(limit, timedelta(seconds=hook.settings.daily_limit_resume_delay_seconds))
                raise  # _park raised already; this satisfies the type checker
        # What OpenLineage's completion event reports (get_openlineage_facets_on_complete).
        self._lineage_counts = {"users": result["users"], "base_url": hook.base_url,
                                "read_user_grades": hook.settings.read_user_grades}
        return result

    def _park(self, limit: DailyLimitReached, delay: timedelta) -> None:
        """Stop until Zoom's daily cap resets: deferred if possible, else a clean failure."""
        if self.defer_on_daily_limit and limit.reset_at is not None:
            resume_at = limit.reset_at + delay
            self.log.warning("%s Deferring until %s.", limit, resume_at.isoformat())
            self.defer(trigger=DateTimeTrigger(moment=resume_at), method_name="resume_after_daily_limit")
        raise AirflowException(str(limit)) from limit


class WarehouseLoadOperator(BaseOperator):
    """Loads the staged batches into the warehouse (``pipeline.load.load_batches``) and says what it wrote.

    An operator rather than a TaskFlow task so that OpenLineage gets its inputs (staging and the
    listing's Zoom endpoints) and outputs (the warehouse tables, with the rows written and the
    data-quality results) from :meth:`get_openlineage_facets_on_complete`.

    Its outlets get asset events: an :class:`~airflow.sdk.Asset` outlet carries the window loaded
    and the counts as ``extra``; an :class:`~airflow.sdk.AssetAlias` outlet resolves to the real
    tables (``lineage.table_asset_uri``), each with its rows written.

    :param batches: the listing's batch references (templated: an ``XComArg``).
    :param hard_checks: data-quality checks whose violations fail the run; default the run's
        ``dq_hard_checks`` param, else ``DEFAULT_HARD_CHECKS``.
    :param listing_task_id: the task whose ``stats`` XCom holds the listing's window and
        ``daily_usage``.
    """

    template_fields = ("batches",)
    ui_color = "#7fba00"

    def __init__(self, *, batches: Any, hard_checks: list[str] | None = None,
                 listing_task_id: str = LIST_TASK_ID, zoom_conn_id: str = ZOOM_CONN_ID,
                 warehouse_conn_id: str = WAREHOUSE_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batches = batches
        self.hard_checks = hard_checks
        self.listing_task_id = listing_task_id
        self.zoom_conn_id = zoom_conn_id
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context: Any) -> LoadResult:
        with fail_fast():
            return self._load(context)

    def _load(self, context: Any) -> LoadResult:
        params = context.get("params") or {}
        hard_checks = list(self.hard_checks if self.hard_checks is not None
                           else params.get("dq_hard_checks", sorted(DEFAULT_HARD_CHECKS)))
        listing: ListingStats | None = context["ti"].xcom_pull(task_ids=self.listing_task_id,
                                                               key=STATS_XCOM_KEY)
        warehouse = Warehouse.from_airflow(self.warehouse_conn_id)
        try:
            result = load_batches(self.batches, warehouse=warehouse, hard_checks=hard_checks,
                                        listing=listing)
        finally:
            warehouse.dispose()
        self._lineage_load = {"url": warehouse.url, "schema": warehouse.schema, "result": result,
                              "hard_checks": hard_checks}
        self._record_asset_events(context, result, listing, warehouse)
        return result

    def _record_asset_events(self, context: Any, result: LoadResult, listing: ListingStats | None,
                             warehouse: Warehouse) -> None:
        """The window and counts on each Asset outlet's event; the tables behind each AssetAlias."""
        events = context["outlet_events"]
        extra = lineage.asset_event_extra(result, listing)
        rows = lineage.rows_written(result)
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                events[outlet].extra = extra
            elif isinstance(outlet, AssetAlias):
                for table in lineage.LOAD_TABLES:
                    uri = lineage.table_asset_uri(warehouse.url, warehouse.schema, table)
                    events[outlet].add(Asset(uri=uri, group=outlet.group or "asset"),
                                       extra={"rows": rows[table], "window_start": extra["window_start"],
                                              "window_end": extra["window_end"]})

    # --- OpenLineage (called by the provider, if installed, around execute) -------------------
    def get_openlineage_facets_on_start(self) -> OperatorLineage | None:
        """Inputs and outputs before the load: the configured warehouse's tables, no counts yet.

        The Warehouse is only built to read its URL and schema (its engine connects lazily)."""
        warehouse = Warehouse.from_airflow(self.warehouse_conn_id)
        warehouse.dispose()
        return self._lineage(warehouse.url, warehouse.schema)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        """The same, with each table's rows written and the data-quality assertions of the load."""
        kept = getattr(self, "_lineage_load", None)
        if kept is None:
            return self.get_openlineage_facets_on_start()
        return self._lineage(kept["url"], kept["schema"], kept["result"], kept["hard_checks"])

    def _lineage(self, url: Any, schema: str | None, result: dict[str, Any] | None = None,
                 hard_checks: list[str] | None = None) -> OperatorLineage | None:
        base_url, _ = lineage.zoom_connection_lineage(self.zoom_conn_id)
        return lineage.load_lineage(base_url=base_url, staging=lineage.staging_dataset(self.dag_id),
                                    warehouse_url=url, schema=schema, result=result,
                                    hard_checks=hard_checks or ())
