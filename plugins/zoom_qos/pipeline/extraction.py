"""The extraction: every session's users' QoS, several sessions at a time, through one client.

One ``BatchExtractor`` reads for both DAGs. It owns what every read shares: the thread pool that
keeps several sessions in flight (so API latency leaves no rate unused; the client's limiter still
caps the rate), the first failure kept while the reads in flight finish, the check that a session
id can be put in a path safely (``zoom.ids``), pseudonymization, and progress in the log.

The daily run streams each session's pages into its own staging file as they arrive
(``extract_batch``): memory holds one page per session in flight, and a small index, written as
sessions finish, makes the work resumable (a retried or resumed task skips what was staged, and a
daily-limit stop loses nothing). The live poll keeps its few, small sessions in memory
(``pipeline.live``).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from itertools import islice
from typing import Any, TypeVar, cast

from zoom_qos.core.contracts import BatchRef, ExtractResult
from zoom_qos.core.errors import StagingIncompleteError
from zoom_qos.core.statuses import UNAVAILABLE
from zoom_qos.pipeline.availability import status_after_error
from zoom_qos.pipeline.privacy import Pseudonymizer
from zoom_qos.pipeline.retention import require_staged
from zoom_qos.pipeline.staging import (
    StagedSessionWriter,
    read_jsonl,
    stage_grades,
    stage_unread_session,
    staged_cost,
    staged_index,
    write_index_part,
    write_stats,
)
from zoom_qos.transform.parsing import parse_timestamp
from zoom_qos.zoom.bodies import decode_user
from zoom_qos.zoom.client import SessionType, ZoomClient, ZoomSource
from zoom_qos.zoom.errors import ZoomApiError
from zoom_qos.zoom.ids import shown_id, unrequestable_reason
from zoom_qos.zoom.pagination import last_pass

log = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 30.0
#: The index of a batch is written every this many finished sessions or seconds.
INDEX_MAX_SESSIONS = 25
INDEX_MAX_SECONDS = 30.0

Item = TypeVar("Item")
Read = TypeVar("Read")


class BatchExtractor:
    """Reads sessions of one type (``past`` or ``live``) through ``client``."""

    def __init__(self, client: ZoomClient, *, session_type: SessionType = "past") -> None:
        self.client = client
        self.session_type: SessionType = session_type
        key = client.settings.pseudonymization_key
        self._pseudonymizer = Pseudonymizer(key) if key else None

    def refused(self, session_id: str) -> str | None:
        """Why ``session_id`` is never sent (a ``..`` segment would address another endpoint, a
        NUL could name another session), logged; None for an id that can be requested."""
        problem = unrequestable_reason(session_id)
        if problem is not None:
            log.warning("Session %s cannot be requested safely (%s): nothing sent", shown_id(session_id),
                        problem)
        return problem

    def user_pages(self, session_id: str) -> Iterator[tuple[int, list[bytes]]]:
        """The session's users page by page as ``(restarts, raw users)``, pseudonymized when the
        connection says so (``client.iter_session_qos_pages``)."""
        for restarts, users in self.client.iter_session_qos_pages(session_id, session_type=self.session_type):
            if self._pseudonymizer is not None:
                users = [json.dumps(self._pseudonymizer.user(decode_user(u))).encode() for u in users]
            yield restarts, users

    def users(self, session_id: str) -> list[dict[str, Any]]:
        """The session's users read whole, decoded (a page-token restart starts the list over)."""
        return [decode_user(user) for user in last_pass(self.user_pages(session_id))]

    def grades(self, session_id: str) -> list[dict[str, Any]]:
        """Every join of the session with its grades (``GET …/users``), read whole."""
        return last_pass(self.client.iter_session_users_pages(session_id, session_type=self.session_type))

    def run(self, items: Iterable[Item], read: Callable[[Item], Read], done: Callable[[Read], None],
            total: int) -> None:
        """``read`` every item, ``max_concurrent_sessions`` at a time; ``done`` gets each result in
        this thread as it comes. The first failure stops new reads, the reads in flight finish
        (``done`` still gets theirs), then it is raised."""
        workers = max(1, min(self.client.settings.max_concurrent_sessions, total))
        pending = iter(items)
        failure: BaseException | None = None
        finished_count = 0
        last_report = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zoom-qos") as pool:
            def start(count: int) -> set[Future[Read]]:
                return {pool.submit(read, item) for item in islice(pending, count)}

            in_flight = start(workers)
            while in_flight:
                finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        result = future.result()
                    except BaseException as error:  # keep the first; let in-flight reads finish
                        failure = failure or error
                    else:
                        done(result)
                    finished_count += 1
                if failure is None:
                    in_flight |= start(len(finished))
                if time.monotonic() - last_report >= PROGRESS_EVERY_SECONDS:
                    last_report = time.monotonic()
                    log.info("Read %d of %d sessions (%d requests so far)", finished_count, total,
                             self.client.stats.requests)
        if failure is not None:
            raise failure


class _Index:
    """The batch's index, written in parts as sessions finish (never lost on a failure: the
    caller flushes it whatever happens)."""

    def __init__(self, qos_folder: str, segment: str) -> None:
        self.qos_folder, self.segment = qos_folder, segment
        self.finished: dict[str, int | None] = {}
        self.parts = 0
        self.last_flush = time.monotonic()

    def add(self, read: tuple[str, int | None]) -> None:
        self.finished[read[0]] = read[1]
        due = time.monotonic() - self.last_flush >= INDEX_MAX_SECONDS
        if due or len(self.finished) >= INDEX_MAX_SESSIONS:
            self.flush()

    def flush(self) -> None:
        if self.finished:
            write_index_part(self.qos_folder, self.segment, self.parts, self.finished)
            self.parts += 1
            self.finished = {}
        self.last_flush = time.monotonic()


def extract_batch(source: ZoomSource, batch: BatchRef, *, pending_max_hours: float) -> ExtractResult:
    """Stage the QoS of every session of ``batch`` not staged yet, each into its own file.

    Whatever stops it (an error, a daily limit), the sessions read are indexed and this attempt's
    cost is saved (the run record reads it) before the error propagates."""
    require_staged(batch)
    qos_folder = batch["qos_uri"]
    sessions = list(read_jsonl(batch["sessions_uri"]))
    done = staged_index(qos_folder)
    todo = [s for s in sessions if str(s["id"]) not in done]
    if done:
        log.info("Resuming: %d of %d sessions were staged by an earlier attempt",
                 len(sessions) - len(todo), len(sessions))
    client = source.client
    extractor = BatchExtractor(client)
    segment = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    index = _Index(qos_folder, segment)
    started = time.monotonic()

    def save_cost() -> None:
        write_stats(qos_folder, segment,
                    {**client.stats.as_dict(), "extract_seconds": round(time.monotonic() - started, 3)})

    try:
        try:
            extractor.run(todo, lambda s: _stage_session(extractor, qos_folder, s, pending_max_hours),
                          index.add, len(todo))
        finally:
            index.flush()  # whatever happens next, what was read is kept
    except BaseException:
        try:  # a failed attempt's requests count too: the run record reads them from this file
            save_cost()
        except Exception:  # the extraction's own error is what the task must report
            log.warning("Could not save this attempt's request counts", exc_info=True)
        raise
    save_cost()
    return _summary(batch, sessions)


def _stage_session(extractor: BatchExtractor, qos_folder: str, session: Mapping[str, Any],
                   pending_max_hours: float) -> tuple[str, int | None]:
    """Stage one session; returns its id and the users staged (None: its QoS could not be read,
    and its staged header says whether it is pending or unavailable; an id that cannot be
    requested safely is staged ``unavailable`` with the reason, a counted skip)."""
    session_id = str(session["id"])
    fetched_at = datetime.now(UTC)
    problem = extractor.refused(session["id"])
    if problem is not None:
        stage_unread_session(qos_folder, session_id, fetched_at.isoformat(), UNAVAILABLE,
                             f"not requested: {problem}")
        return session_id, None
    try:
        with StagedSessionWriter(qos_folder, session_id, fetched_at.isoformat()) as staged:
            restarts = 0
            for restarts_now, users in extractor.user_pages(session_id):
                if restarts_now != restarts:  # the list started over: so does the file
                    restarts = restarts_now
                    staged.restart()
                staged.write(users)
            if extractor.client.settings.read_user_grades:
                stage_grades(qos_folder, session_id, extractor.grades(session_id))
            return session_id, staged.commit()
    except ZoomApiError as error:
        checked_at = datetime.now(UTC)
        ended = parse_timestamp(session.get("end_time")) or parse_timestamp(session.get("start_time"))
        status = status_after_error(error, ended, checked_at, pending_max_hours)
        if status is None:
            raise
        log.warning("Session %r is listed but Zoom does not serve its QoS (HTTP %s, code %s: %s): kept "
                    "as %s", session_id, error.status, error.code, error.zoom_message, status)
        stage_unread_session(qos_folder, session_id, checked_at.isoformat(), status, error.zoom_message)
        return session_id, None


def _summary(batch: BatchRef, sessions: list[dict[str, Any]]) -> ExtractResult:
    qos_folder = batch["qos_uri"]
    index = staged_index(qos_folder)
    missing = [str(s["id"]) for s in sessions if str(s["id"]) not in index]
    if missing:
        raise StagingIncompleteError(
            f"{len(missing)} sessions of batch {batch.get('index')} were not staged (first: "
            f"{missing[0]!r}); retry the task.")
    users = [index[str(s["id"])] for s in sessions]
    ok = [count for count in users if count is not None]
    result = cast(ExtractResult, {
        "index": batch.get("index"),
        "sessions_uri": batch["sessions_uri"],
        "qos_uri": qos_folder,
        "sessions": len(ok),
        "sessions_unread": len(sessions) - len(ok),
        "users": sum(ok),
        **staged_cost(qos_folder),
    })
    log.info("Batch %s done: %s", batch.get("index"), result)
    return result
