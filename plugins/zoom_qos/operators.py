"""The extraction operator: users' QoS of a batch of sessions, from Zoom to staging.

Thin on purpose: the hook talks to Zoom and handles tokens, pacing and retries; this operator
walks a batch, keeps each session's users once (a user re-read after a page-token restart
overwrites its first copy) and writes one JSON line per session to staging. XCom gets only the
file references and counts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator

from zoom_qos.config import ZOOM_CONN_ID
from zoom_qos.errors import ZoomApiError
from zoom_qos.hooks import ZoomVideoSdkHook
from zoom_qos.staging import read_jsonl, write_jsonl
from zoom_qos.transform import dedupe_users

PROGRESS_EVERY_SECONDS = 30.0


class ZoomSessionQosOperator(BaseOperator):
    """Pages ``GET /videosdk/sessions/{id}/users/qos?type=past`` for each session of a batch.

    :param batch: a batch reference made by the listing task: ``sessions_uri`` (JSON lines of
        session objects) and ``qos_uri`` (where to write the users).
    :param zoom_conn_id: the Airflow connection of the Zoom Video SDK account.
    """

    template_fields = ("batch",)
    ui_color = "#2d8cff"

    def __init__(self, *, batch: Mapping[str, Any], zoom_conn_id: str = ZOOM_CONN_ID, **kwargs: Any):
        super().__init__(**kwargs)
        self.batch = batch
        self.zoom_conn_id = zoom_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        hook = ZoomVideoSdkHook(self.zoom_conn_id)
        sessions = [s for s in read_jsonl(self.batch["sessions_uri"])]
        counts = {"sessions": 0, "sessions_gone": 0, "users": 0}
        started = time.monotonic()
        try:
            written = write_jsonl(self.batch["qos_uri"], self._records(hook, sessions, counts))
        finally:
            hook.close()
        result = {
            "index": self.batch.get("index"),
            "sessions_uri": self.batch["sessions_uri"],
            "qos_uri": self.batch["qos_uri"],
            "records": written,
            **counts,
            **hook.stats.as_dict(),
            "extract_seconds": round(time.monotonic() - started, 3),
        }
        self.log.info("Batch %s done: %s", self.batch.get("index"), result)
        return result

    def _records(
        self, hook: ZoomVideoSdkHook, sessions: list[dict[str, Any]], counts: dict[str, int]
    ) -> Iterator[dict[str, Any]]:
        last_report = time.monotonic()
        for number, session in enumerate(sessions, 1):
            session_id = str(session["id"])
            fetched_at = datetime.now(UTC).isoformat()
            try:
                users = [dict(u) for u in dedupe_users(hook.iter_session_users_qos(session_id))]
            except ZoomApiError as error:
                if not error.session_gone:
                    raise
                self.log.warning("Session %r is listed but Zoom no longer serves it: %s",
                                 session_id, error.zoom_message)
                counts["sessions_gone"] += 1
                yield {"session_id": session_id, "status": "gone", "error": error.zoom_message,
                       "fetched_at": fetched_at}
                continue
            counts["sessions"] += 1
            counts["users"] += len(users)
            yield {"session_id": session_id, "status": "ok", "users": users, "fetched_at": fetched_at}
            if time.monotonic() - last_report >= PROGRESS_EVERY_SECONDS:
                last_report = time.monotonic()
                self.log.info("Read %d of %d sessions (%d users, %d requests so far)",
                              number, len(sessions), counts["users"], hook.stats.requests)
