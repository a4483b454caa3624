"""The extraction operator (users' QoS of a batch of sessions, from Zoom to staging) and the
load operator (staging to the warehouse).

Thin on purpose: the hook talks to Zoom and handles tokens, pacing and retries; this operator
walks a batch, several sessions at a time, and streams each session's pages into its own
staging file as they arrive (see ``staging.StagedSessionWriter``), so memory holds one page per
session in flight. A small index, written as sessions finish, makes the work resumable: a
retried or resumed task skips the sessions already staged, and a daily-limit stop loses
nothing. XCom gets only the folder reference and counts.

Both report their lineage to OpenLineage when the provider is installed (``lineage.py``): the
methods below are what the provider calls; without it they are never called.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias, BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from zoom_qos import lineage, tasks
from zoom_qos.config import WAREHOUSE_CONN_ID, ZOOM_CONN_ID, staging_url
from zoom_qos.errors import PERMANENT_ERRORS, DailyLimitReached, ZoomApiError
from zoom_qos.extract.availability import DEFAULT_QOS_PENDING_MAX_HOURS, UNAVAILABLE, status_after_error
from zoom_qos.extract.privacy import Pseudonymizer
from zoom_qos.extract.retention import require_staged
from zoom_qos.extract.staging import (
    StagedSessionWriter,
    read_jsonl,
    safe_name,
    stage_grades,
    stage_unread_session,
    staged_cost,
    staged_index,
    write_index_part,
    write_stats,
)
from zoom_qos.hooks import ZoomVideoSdkHook, zoom_base_url
from zoom_qos.transform.parsing import parse_timestamp
from zoom_qos.warehouse import Warehouse
from zoom_qos.warehouse.quality import DEFAULT_HARD_CHECKS
from zoom_qos.zoom.bodies import decode_user
from zoom_qos.zoom.budget import is_backfill
from zoom_qos.zoom.ids import shown_id, unrequestable_reason
from zoom_qos.zoom.pagination import last_pass
from zoom_qos.zoom.settings import ZoomSettings

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

PROGRESS_EVERY_SECONDS = 30.0
INDEX_MAX_SESSIONS = 25
INDEX_MAX_SECONDS = 30.0


@contextmanager
def fail_fast() -> Iterator[None]:
    """Fail the task without its retries on an error no retry can cure (a wrong account, a
    missing scope or plan, a path Zoom does not recognize, a setting Zoom would refuse, a full or
    read-only storage, a body no Zoom page can be): ``errors.PERMANENT_ERRORS``."""
    try:
        yield
    except PERMANENT_ERRORS as error:
        raise AirflowFailException(str(error)) from error


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

    def __init__(self, *, batch: Mapping[str, Any], zoom_conn_id: str = ZOOM_CONN_ID,
                 defer_on_daily_limit: bool = True,
                 qos_pending_max_hours: int | str = DEFAULT_QOS_PENDING_MAX_HOURS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.zoom_conn_id = zoom_conn_id
        self.defer_on_daily_limit = defer_on_daily_limit
        self.qos_pending_max_hours = qos_pending_max_hours

    def execute(self, context: Any) -> dict[str, Any]:
        with fail_fast():
            return self._extract(context)

    def resume_after_daily_limit(self, context: Any, event: Any = None) -> dict[str, Any]:
        self.log.info("Zoom's daily limit has reset; resuming batch %s", self.batch.get("index"))
        with fail_fast():
            return self._extract(context)

    # --- OpenLineage (called by the provider, if installed, around execute) -------------------
    def get_openlineage_facets_on_start(self) -> OperatorLineage | None:
        """Inputs and output before the run: the endpoints this connection will be asked."""
        base_url, read_user_grades = zoom_connection_lineage(self.zoom_conn_id)
        return lineage.extract_lineage(base_url=base_url, staging=staging_dataset(self.dag_id),
                                       read_user_grades=read_user_grades)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        """The same, with the users staged by this batch (kept by ``_extract``) as row count."""
        counts = getattr(self, "_lineage_counts", None)
        if counts is None:  # the task ended without extracting (nothing kept)
            return self.get_openlineage_facets_on_start()
        return lineage.extract_lineage(base_url=counts["base_url"], staging=staging_dataset(self.dag_id),
                                       read_user_grades=counts["read_user_grades"], users=counts["users"])

    def _extract(self, context: Any) -> dict[str, Any]:
        require_staged(self.batch)
        qos_folder = self.batch["qos_uri"]
        sessions = list(read_jsonl(self.batch["sessions_uri"]))
        done = staged_index(qos_folder)
        todo = [s for s in sessions if str(s["id"]) not in done]
        if done:
            self.log.info("Resuming: %d of %d sessions were staged by an earlier attempt",
                          len(sessions) - len(todo), len(sessions))
        dag_run = context.get("dag_run")
        backfill = is_backfill(getattr(dag_run, "run_type", None), context.get("params"))
        hook = ZoomVideoSdkHook(self.zoom_conn_id, backfill=backfill)
        key = hook.settings.pseudonymization_key
        self._pseudonymizer = Pseudonymizer(key) if key else None
        segment = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        try:
            self._fetch(hook, todo, qos_folder, segment)
        except DailyLimitReached as limit:
            self._save_stats(hook, qos_folder, segment, started)
            self._park(limit, timedelta(seconds=hook.settings.daily_limit_resume_delay_seconds))
        except BaseException:
            # A failed attempt's requests count too: the run record reads them from this file.
            try:
                self._save_stats(hook, qos_folder, segment, started)
            except Exception:  # the extraction's own error is what the task must report
                self.log.warning("Could not save this attempt's request counts", exc_info=True)
            raise
        finally:
            hook.close()
        self._save_stats(hook, qos_folder, segment, started)
        result = self._summary(sessions, qos_folder)
        # What OpenLineage's completion event reports (get_openlineage_facets_on_complete).
        self._lineage_counts = {"users": result["users"], "base_url": hook.base_url,
                                "read_user_grades": hook.settings.read_user_grades}
        return result

    def _fetch(self, hook: ZoomVideoSdkHook, todo: list[dict[str, Any]], qos_folder: str,
               segment: str) -> None:
        """Read sessions concurrently (each session's pages in order), each into its staging file.

        Several sessions are in flight at once so that API latency does not leave the account's
        rate unused; the hook's limiter still caps the rate. Whatever stops the batch (an error,
        Zoom's daily limit), the sessions already read are indexed before the error propagates.
        """
        finished_here: dict[str, int | None] = {}
        parts = 0
        last_flush = last_report = time.monotonic()

        def flush() -> None:
            nonlocal finished_here, parts, last_flush
            if finished_here:
                write_index_part(qos_folder, segment, parts, finished_here)
                parts += 1
                finished_here = {}
            last_flush = time.monotonic()

        workers = max(1, hook.settings.max_concurrent_sessions)
        pending = iter(todo)
        failure: BaseException | None = None
        done = 0
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zoom-qos") as pool:
            def start(count: int) -> set[Future[tuple[str, int | None]]]:
                return {pool.submit(self._read_session, hook, qos_folder, s)
                        for s in islice(pending, count)}

            in_flight = start(workers)
            while in_flight:
                finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        session_id, users = future.result()
                    except BaseException as error:  # keep the first; let in-flight reads finish
                        failure = failure or error
                    else:
                        finished_here[session_id] = users
                    done += 1
                if failure is None:
                    in_flight |= start(len(finished))
                if (len(finished_here) >= INDEX_MAX_SESSIONS
                        or time.monotonic() - last_flush >= INDEX_MAX_SECONDS):
                    flush()
                if time.monotonic() - last_report >= PROGRESS_EVERY_SECONDS:
                    last_report = time.monotonic()
                    self.log.info("Read %d of %d sessions (%d requests so far)", done, len(todo),
                                  hook.stats.requests)
        flush()  # whatever happens next, what was read is kept
        if failure is not None:
            raise failure

    def _read_session(
        self, hook: ZoomVideoSdkHook, qos_folder: str, session: Mapping[str, Any]
    ) -> tuple[str, int | None]:
        """Stage one session; returns its id and the users staged (None: its QoS could not be
        read, and its staged header says whether it is pending or unavailable).

        An id that cannot be put in a request path safely (``zoom.ids.unrequestable_reason``: a
        ``..`` segment would address another endpoint, a NUL could name another session) is never
        sent: the session is staged ``unavailable`` with the reason, a counted skip."""
        session_id = str(session["id"])
        fetched_at = datetime.now(UTC)
        problem = unrequestable_reason(session["id"])
        if problem is not None:
            self.log.warning("Session %s is listed but its id cannot be requested safely (%s): nothing "
                             "sent, kept as %s", shown_id(session_id), problem, UNAVAILABLE)
            stage_unread_session(qos_folder, session_id, fetched_at.isoformat(), UNAVAILABLE,
                                 f"not requested: {problem}")
            return session_id, None
        try:
            with StagedSessionWriter(qos_folder, session_id, fetched_at.isoformat()) as staged:
                restarts = 0
                for restarts_now, users in hook.iter_session_qos_pages(session_id):
                    if restarts_now != restarts:  # the list started over: so does the file
                        restarts = restarts_now
                        staged.restart()
                    if self._pseudonymizer:
                        users = [json.dumps(self._pseudonymizer.user(decode_user(u))).encode() for u in users]
                    staged.write(users)
                if hook.settings.read_user_grades:
                    stage_grades(qos_folder, session_id, self._read_grades(hook, session_id))
                return session_id, staged.commit()
        except ZoomApiError as error:
            checked_at = datetime.now(UTC)
            ended = parse_timestamp(session.get("end_time")) or parse_timestamp(session.get("start_time"))
            status = status_after_error(error, ended, checked_at, float(self.qos_pending_max_hours))
            if status is None:
                raise
            self.log.warning("Session %r is listed but Zoom does not serve its QoS (HTTP %s, code %s: "
                             "%s): kept as %s", session_id, error.status, error.code, error.zoom_message,
                             status)
            stage_unread_session(qos_folder, session_id, checked_at.isoformat(), status, error.zoom_message)
            return session_id, None

    @staticmethod
    def _read_grades(hook: ZoomVideoSdkHook, session_id: str) -> list[dict[str, Any]]:
        """Every join of the session with its grades; a page-token restart starts the list over."""
        return last_pass(hook.iter_session_users_pages(session_id))

    def _park(self, limit: DailyLimitReached, delay: timedelta) -> None:
        """Stop until Zoom's daily cap resets: deferred if possible, else a clean failure."""
        if self.defer_on_daily_limit and limit.reset_at is not None:
            from airflow.providers.standard.triggers.temporal import DateTimeTrigger

            resume_at = limit.reset_at + delay
            self.log.warning("%s Deferring until %s.", limit, resume_at.isoformat())
            self.defer(trigger=DateTimeTrigger(moment=resume_at), method_name="resume_after_daily_limit")
        raise AirflowException(str(limit)) from limit

    @staticmethod
    def _save_stats(hook: ZoomVideoSdkHook, qos_folder: str, segment: str, started: float) -> None:
        write_stats(qos_folder, segment,
                    {**hook.stats.as_dict(), "extract_seconds": round(time.monotonic() - started, 3)})

    def _summary(self, sessions: list[dict[str, Any]], qos_folder: str) -> dict[str, Any]:
        index = staged_index(qos_folder)
        missing = [str(s["id"]) for s in sessions if str(s["id"]) not in index]
        if missing:
            raise AirflowException(f"{len(missing)} sessions of batch {self.batch.get('index')} were not "
                                   f"staged (first: {missing[0]!r}); retry the task.")
        users = [index[str(s["id"])] for s in sessions]
        ok = [count for count in users if count is not None]
        result = {
            "index": self.batch.get("index"),
            "sessions_uri": self.batch["sessions_uri"],
            "qos_uri": qos_folder,
            "sessions": len(ok),
            "sessions_unread": len(sessions) - len(ok),
            "users": sum(ok),
            **staged_cost(qos_folder),
        }
        self.log.info("Batch %s done: %s", self.batch.get("index"), result)
        return result


def zoom_connection_lineage(conn_id: str) -> tuple[str, bool]:
    """The base URL of a Zoom connection and whether it reads the users' grades, without building
    a client (that would set up rate limiting and the daily budget just to name datasets)."""
    conn = BaseHook.get_connection(conn_id)
    base_url = zoom_base_url(conn.host, conn.schema, conn.port)
    return base_url, ZoomSettings.from_extra(conn.extra_dejson).read_user_grades


def staging_dataset(dag_id: str) -> lineage.DatasetId:
    """The DAG's staging area as one dataset: each run writes its own sub-folder of it, but naming
    the area rather than the run's folder keeps one node in the lineage graph across runs."""
    return lineage.storage_id(f"{staging_url().rstrip('/')}/{safe_name(dag_id)}")


class WarehouseLoadOperator(BaseOperator):
    """Loads the staged batches into the warehouse (``tasks.load_batches``) and says what it wrote.

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
                 listing_task_id: str = "list_sessions", zoom_conn_id: str = ZOOM_CONN_ID,
                 warehouse_conn_id: str = WAREHOUSE_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batches = batches
        self.hard_checks = hard_checks
        self.listing_task_id = listing_task_id
        self.zoom_conn_id = zoom_conn_id
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        with fail_fast():
            return self._load(context)

    def _load(self, context: Any) -> dict[str, Any]:
        params = context.get("params") or {}
        hard_checks = list(self.hard_checks if self.hard_checks is not None
                           else params.get("dq_hard_checks", sorted(DEFAULT_HARD_CHECKS)))
        listing = context["ti"].xcom_pull(task_ids=self.listing_task_id, key="stats")
        warehouse = Warehouse.from_airflow(self.warehouse_conn_id)
        try:
            result = tasks.load_batches(self.batches, warehouse=warehouse, hard_checks=hard_checks,
                                        listing=listing)
        finally:
            warehouse.dispose()
        self._lineage_load = {"url": warehouse.url, "schema": warehouse.schema, "result": result,
                              "hard_checks": hard_checks}
        self._record_asset_events(context, result, listing, warehouse)
        return result

    def _record_asset_events(self, context: Any, result: dict[str, Any], listing: dict[str, Any] | None,
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
        base_url, _ = zoom_connection_lineage(self.zoom_conn_id)
        return lineage.load_lineage(base_url=base_url, staging=staging_dataset(self.dag_id),
                                    warehouse_url=url, schema=schema, result=result,
                                    hard_checks=hard_checks or ())
