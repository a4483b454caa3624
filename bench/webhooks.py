"""Row 8 of ``make bench``: the webhook receiver under a burst.

1,000 distinct signed ``session.ended`` deliveries from 20 concurrent senders to the real receiver
(uvicorn on 127.0.0.1) storing into PostgreSQL, then 100 of them again (Zoom's retries), then the
same burst to a receiver whose store does nothing (the HTTP, signature and parsing cost alone): the
ratio of the two is what durability costs. Reports events/s and the answer time's median and p99, and
checks every event was stored once and the re-sent ones only counted as deliveries.
Row 9 is ``make events-test`` at full size: the latency from a session's end (the simulator notifies
it then) to its rows ``loaded``.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import uvicorn

from bench.common import PG_URL, drop_schema, ensure_database
from include.scripts.events_test import TARGET_SECONDS, execute
from zoom_qos.receiver.app import PATH, create_app
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.webhook_schema import webhook_events
from zoom_qos.warehouse.webhooks import store_event
from zoom_qos.zoom.webhooks import ZoomEvent, sign

SCHEMA = "zoom_qos_bench_webhooks"
SECRET = "bench-webhook-secret"
EVENTS, SENDERS, RESENT = 1000, 20, 100


def _serve(store: Callable[[ZoomEvent], bool]) -> tuple[uvicorn.Server, threading.Thread, str]:
    server = uvicorn.Server(uvicorn.Config(create_app(SECRET, store), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}{PATH}"


def _burst(url: str, tag: str, events: int = EVENTS) -> dict[str, Any]:
    def send(i: int) -> float:
        obj = {"session_id": f"{tag}-{i:05d}", "session_name": "bench"}
        raw = json.dumps({"event": "session.ended", "event_ts": 1_780_000_000_000 + i,
                          "payload": {"object": obj}}).encode()
        stamp = str(int(time.time()))
        request = urllib.request.Request(url, data=raw, method="POST", headers={
            "content-type": "application/json", "x-zm-request-timestamp": stamp,
            "x-zm-signature": sign(SECRET, stamp, raw)})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 200
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(SENDERS) as pool:
        times = sorted(pool.map(send, range(events)))
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "events_per_second": round(events / seconds),
            "median_ms": round(1000 * statistics.median(times), 1),
            "p99_ms": round(1000 * times[int(0.99 * len(times)) - 1], 1)}


def bench_webhooks() -> dict[str, Any]:
    ensure_database()
    drop_schema(SCHEMA)
    warehouse = Warehouse(PG_URL, schema=SCHEMA)
    warehouse.ensure_schema()
    try:
        server, thread, url = _serve(lambda event: store_event(warehouse.engine, event, datetime.now(UTC)))
        stored = _burst(url, "stored")
        resent = _burst(url, "stored", RESENT)  # the first 100 again: same events, new deliveries
        server.should_exit = True
        thread.join(timeout=10)
        server, thread, url = _serve(lambda event: True)
        baseline = _burst(url, "nostore")
        server.should_exit = True
        thread.join(timeout=10)
        with warehouse.engine.connect() as conn:
            distinct = sa.func.count(sa.distinct(webhook_events.c.event_key))
            deliveries = sa.func.sum(webhook_events.c.deliveries)
            rows = conn.execute(sa.select(sa.func.count(), distinct, deliveries)).one()
    finally:
        warehouse.dispose()
        drop_schema(SCHEMA)
    return {"events": EVENTS, "senders": SENDERS, "stored": stored, "no_store": baseline,
            "resent": RESENT, "resent_burst": resent, "rows": rows[0], "distinct": rows[1],
            "deliveries": int(rows[2] or 0),
            "ratio": round(stored["events_per_second"] / baseline["events_per_second"], 2)}


def bench_event_latency(sessions: int = 50, spread: float = 600.0) -> dict[str, Any]:
    """Row 9: ``make events-test`` at the issue's size (50 sessions ending across ten minutes):
    notification-to-loaded latency through the real receiver, triggerer and scheduler."""
    report, failure = execute(sessions, spread)
    latency = report.get("latency") or {}
    return {**latency, "spread_s": spread, "target_s": TARGET_SECONDS, "failure": failure}
