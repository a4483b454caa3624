"""The events path's bookkeeping: what a load made of each session becomes its events' outcome, and a
session Zoom does not serve yet is asked again after a doubling backoff, a bounded number of times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from zoom_qos.core.errors import NothingToLoad
from zoom_qos.pipeline.events import (
    FIRST_RETRY,
    LONGEST_RETRY,
    MAX_ATTEMPTS,
    claim_ended,
    settle,
    staged_session_ids,
)
from zoom_qos.pipeline.staging import read_jsonl
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.webhook_schema import webhook_events
from zoom_qos.warehouse.webhooks import store_event
from zoom_qos.zoom.webhooks import ZoomEvent


def ended(session_id: str, at: datetime) -> ZoomEvent:
    obj = {"id": 123, "session_id": session_id, "session_name": "n", "session_key": "k",
           "start_time": "2026-05-04T09:00:00Z", "end_time": "2026-05-04T09:30:00Z", "uuid": "u"}
    return ZoomEvent("session.ended", at, obj, None)


def test_a_pending_session_is_asked_again_after_a_doubling_backoff_then_left_to_the_daily_run(
    warehouse: Warehouse,
) -> None:
    now = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
    store_event(warehouse.engine, ended("P", now), now)
    waits = []
    for _ in range(MAX_ATTEMPTS):
        outcome = settle(session_ids=["P"], run="r", warehouse=warehouse, now=now)["P"]
        with warehouse.engine.connect() as conn:
            row = conn.execute(sa.select(webhook_events)).one()
        if outcome != "pending":
            break
        waits.append(row.next_attempt_at - now)
        now = row.next_attempt_at
    assert outcome == "left_to_daily" and row.handled_at is not None and row.attempts == MAX_ATTEMPTS
    assert waits[:4] == [FIRST_RETRY * 2**i for i in range(4)]
    assert max(waits) == LONGEST_RETRY and len(waits) == MAX_ATTEMPTS - 1


def test_the_claim_stages_each_session_once_as_the_list_would_give_it(warehouse: Warehouse, tmp_path) -> None:
    now = datetime.now(UTC)
    claim = {"dag_id": "d", "run_id": "r", "batch_size": 10, "staging": str(tmp_path), "warehouse": warehouse}
    with pytest.raises(NothingToLoad):
        claim_ended(**claim, now=now)
    for sid in ("B", "A", "A"):
        store_event(warehouse.engine, ended(sid, now - timedelta(seconds=len(sid))), now)
    store_event(warehouse.engine, ended("A", now + timedelta(seconds=1)), now)
    batches, stats = claim_ended(**claim, now=now)
    assert sorted(staged_session_ids(batches)) == ["A", "B"] and stats["sessions_listed"] == 2
    # The list's id is the session id; the event's own integer id is not carried over.
    (first,) = [s for s in read_jsonl(batches[0]["sessions_uri"]) if s["id"] == "A"]
    assert first == {"id": "A", "session_name": "n", "session_key": "k", "start_time": "2026-05-04T09:00:00Z",
                     "end_time": "2026-05-04T09:30:00Z"}
