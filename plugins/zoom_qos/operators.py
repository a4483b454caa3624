"""The extraction operator: users' QoS of a batch of sessions, from Zoom to staging.

Thin on purpose: the hook talks to Zoom and handles tokens, pacing and retries; this operator
walks a batch, several sessions at a time, and streams each session's pages into its own
staging file as they arrive (see ``staging.StagedSessionWriter``), so memory holds one page per
session in flight. A small index, written as sessions finish, makes the work resumable: a
retried or resumed task skips the sessions already staged, and a daily-limit stop loses
nothing. XCom gets only the folder reference and counts.
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
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from zoom_qos.config import ZOOM_CONN_ID
from zoom_qos.errors import PERMANENT_ERRORS, DailyLimitReached, ZoomApiError
from zoom_qos.extract.availability import DEFAULT_QOS_PENDING_MAX_HOURS, status_after_error
from zoom_qos.extract.privacy import Pseudonymizer
from zoom_qos.extract.staging import (
    StagedSessionWriter,
    read_jsonl,
    stage_grades,
    stage_unread_session,
    staged_cost,
    staged_index,
    write_index_part,
    write_stats,
)
from zoom_qos.hooks import ZoomVideoSdkHook
from zoom_qos.transform.parsing import parse_timestamp
from zoom_qos.zoom.bodies import decode_user
from zoom_qos.zoom.budget import is_backfill

PROGRESS_EVERY_SECONDS = 30.0
INDEX_MAX_SESSIONS = 25
INDEX_MAX_SECONDS = 30.0


@contextmanager
def fail_fast() -> Iterator[None]:
    """Fail the task without its retries on an error no retry can cure (a wrong account, a
    missing scope or plan, a path Zoom does not recognize, a setting Zoom would refuse)."""
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

    def _extract(self, context: Any) -> dict[str, Any]:
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
        return self._summary(sessions, qos_folder)

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
        read, and its staged header says whether it is pending or unavailable)."""
        session_id = str(session["id"])
        fetched_at = datetime.now(UTC)
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
        users: list[dict[str, Any]] = []
        restarts = 0
        for restarts_now, page in hook.iter_session_users_pages(session_id):
            if restarts_now != restarts:
                restarts, users = restarts_now, []
            users.extend(page)
        return users

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
