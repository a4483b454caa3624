"""The real receiver (uvicorn on 127.0.0.1) over a real warehouse: a burst of 1,000 events from 20
concurrent senders is stored, each exactly once, and Zoom's re-deliveries only count; session.alert
lands in zoom_session_alerts. (Its answer times are measured by `make bench`, not here.)"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from tests.unit.receiver.server import running
from zoom_qos.receiver.app import PATH, create_app
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.webhook_schema import webhook_events, zoom_session_alerts
from zoom_qos.warehouse.webhooks import store_event
from zoom_qos.zoom.webhooks import ZoomEvent, sign

SECRET = "burst-secret-51f0"
EVENTS, SENDERS = 1000, 20


@pytest.fixture
def receiver(warehouse: Warehouse) -> Iterator[str]:
    def store(event: ZoomEvent) -> bool:
        return store_event(warehouse.engine, event, datetime.now(UTC))

    with running(create_app(SECRET, store)) as (host, port):
        yield f"http://{host}:{port}{PATH}"


def deliver(url: str, raw: bytes) -> int:
    stamp = str(int(time.time()))
    request = urllib.request.Request(url, data=raw, method="POST", headers={
        "content-type": "application/json", "x-zm-request-timestamp": stamp,
        "x-zm-signature": sign(SECRET, stamp, raw)})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return int(answer.status)


def event_body(i: int) -> bytes:
    name = "session.alert" if i % 10 == 0 else "session.ended"
    obj = {"session_id": f"burst-{i:04d}", "session_name": f"s{i}", "issues": ["Call Reconnection"]}
    return json.dumps({"event": name, "event_ts": 1_780_000_000_000 + i, "payload": {"object": obj}}).encode()


def test_a_burst_from_concurrent_senders_is_stored_once_each(receiver: str, warehouse: Warehouse) -> None:
    bodies = [event_body(i) for i in range(EVENTS)]
    with ThreadPoolExecutor(SENDERS) as pool:
        statuses = list(pool.map(lambda raw: deliver(receiver, raw), bodies))
        again = list(pool.map(lambda raw: deliver(receiver, raw), bodies[:100]))
    assert set(statuses) == set(again) == {200}
    with warehouse.engine.connect() as conn:
        stored = conn.execute(sa.select(webhook_events.c.session_id, webhook_events.c.deliveries)).all()
        alerts = conn.execute(sa.select(sa.func.count()).select_from(zoom_session_alerts)).scalar_one()
    assert len(stored) == EVENTS and len({s for s, _ in stored}) == EVENTS
    assert sorted(d for _, d in stored).count(2) == 100 and sum(d for _, d in stored) == EVENTS + 100
    assert alerts == EVENTS // 10
