"""The daily reconciliation of Zoom's webhook log: each failed attempt kept once (run twice, or after
a page-token restart repeated entries, nothing doubles), successes and unreadable entries not kept,
and the session.ended events that never reached the receiver counted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from zoom_qos.pipeline.reconcile import LOG_REACH, reconcile_deliveries
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.webhook_schema import webhook_delivery_failures
from zoom_qos.warehouse.webhooks import store_event
from zoom_qos.zoom.webhooks import ZoomEvent

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def entry(session_id: str, status: int, retry_num: int = 0, request_id: str | None = None,
          event: str = "session.ended") -> dict[str, Any]:
    body = {"event": event, "event_ts": 1777888000000, "payload": {"account_id": "a", "object": {
        "session_id": session_id, "session_name": "Ann's call"}}}
    return {"event": event, "status": status, "endpoint": "https://hooks.example.com/webhooks/zoom",
            "request_id": request_id or f"req-{session_id}", "retry_num": retry_num,
            "request_body": json.dumps(body), "date_time": "2026-05-04T10:00:00Z",
            **({"failed_reason_type": 2} if status == -1 else {})}


class Log:
    """Zoom's webhook log, as the client pages it (a restart repeats what came before)."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries
        self.asked: list[tuple[datetime, datetime]] = []

    def iter_webhook_logs(self, from_time: datetime, to_time: datetime) -> Iterator[dict[str, Any]]:
        self.asked.append((from_time, to_time))
        yield from self.entries


def kept(wh: Warehouse) -> list[tuple[str, int, int, str | None]]:
    t = webhook_delivery_failures.c
    with wh.engine.connect() as conn:
        rows = conn.execute(sa.select(t.request_id, t.retry_num, t.status, t.session_id)
                            .order_by(t.request_id, t.retry_num))
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_failed_attempts_are_kept_once_and_missing_ended_events_counted(warehouse: Warehouse) -> None:
    # B's delivery failed first and then reached the receiver (a retry): stored. A's never did.
    store_event(warehouse.engine, ZoomEvent("session.ended", NOW, {"session_id": "B"}, "req-B"), NOW)
    entries = [entry("A", 503), entry("A", -1, 1), entry("A", 503, 2), entry("A", 503, 3),
               entry("B", 500), entry("B", 200, 1), entry("C", 204),
               entry("A", 503),  # a page-token restart repeats an entry
               {"event": "session.ended", "status": "oops"}]  # one we cannot read
    source = Log(entries)
    result = reconcile_deliveries(source=source, warehouse=warehouse, now=NOW)
    assert source.asked == [(NOW - LOG_REACH + timedelta(minutes=1), NOW)]  # inside Zoom's seven days
    assert (result["failed_attempts"], result["new_failed_attempts"], result["unreadable_entries"],
            result["ended_events_never_received"]) == (5, 5, 1, 1)
    assert kept(warehouse) == [("req-A", 0, 503, "A"), ("req-A", 1, -1, "A"), ("req-A", 2, 503, "A"),
                               ("req-A", 3, 503, "A"), ("req-B", 0, 500, "B")]
    again = reconcile_deliveries(source=Log(entries), warehouse=warehouse, now=NOW + timedelta(days=1))
    assert (again["failed_attempts"], again["new_failed_attempts"]) == (5, 0)
    assert len(kept(warehouse)) == 5


def test_names_in_a_logged_request_body_are_not_kept(warehouse: Warehouse) -> None:
    reconcile_deliveries(source=Log([entry("A", 503)]), warehouse=warehouse, now=NOW)
    with warehouse.engine.connect() as conn:
        row = conn.execute(sa.select(webhook_delivery_failures)).one()._mapping
    assert "Ann" not in " ".join(str(v) for v in row.values())
    assert row["event_ts"] == datetime.fromtimestamp(1777888000, UTC)
    assert (row["endpoint"], row["failed_reason_type"]) == ("https://hooks.example.com/webhooks/zoom", None)


def test_nothing_failed_nothing_kept(warehouse: Warehouse) -> None:
    result = reconcile_deliveries(source=Log([entry("A", 200)]), warehouse=warehouse, now=NOW)
    assert (result["failed_attempts"], result["ended_events_never_received"]) == (0, 0)
    assert kept(warehouse) == []
