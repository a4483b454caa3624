"""The triggerer's watch on the webhook store: Airflow's event-driven scheduling of the events DAG.

``StoredEventsTrigger`` is the trigger of an ``AssetWatcher`` (``assets.ZOOM_ENDED_SESSIONS``): it
runs in Airflow's triggerer, looks at the warehouse every few seconds for ``session.ended`` events
that are due (new ones, or pending ones whose backoff ended), and fires an asset event when it sees
new ones, which starts the DAG ``zoom_videosdk_qos_events``. The watch is the triggerer's business:
no worker slot waits, and nothing runs when no event comes. Where a user already has SQS, Kafka or
Redis, ``common.messaging``'s ``MessageQueueTrigger`` can watch the same asset instead (docs/webhooks.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from zoom_qos.core.config import WAREHOUSE_CONN_ID
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.webhooks import due_count

__all__ = ["StoredEventsTrigger"]


class StoredEventsTrigger(BaseEventTrigger):
    """Fires when due ``session.ended`` events appear in the warehouse's ``webhook_events``.

    It fires once per change of what is due (a new event, a backoff ended) and, while events stay
    due (a run failed, or is still working on them), again every ``refire_seconds``: a lost run
    costs latency, never an event.
    """

    def __init__(self, conn_id: str = WAREHOUSE_CONN_ID, poll_seconds: float = 5.0,
                 refire_seconds: float = 600.0) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.poll_seconds = poll_seconds
        self.refire_seconds = refire_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"conn_id": self.conn_id, "poll_seconds": self.poll_seconds,
                 "refire_seconds": self.refire_seconds})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The warehouse's connection and queries are blocking: they run in a thread.
        warehouse = await asyncio.to_thread(Warehouse.from_airflow, self.conn_id)
        fired: tuple[int, datetime | None] | None = None
        fired_at = 0.0
        try:
            while True:
                seen = await asyncio.to_thread(due_count, warehouse.engine, datetime.now(UTC))
                due, latest = seen
                stale = time.monotonic() - fired_at > self.refire_seconds
                if due and (seen != fired or stale):
                    fired, fired_at = seen, time.monotonic()
                    yield TriggerEvent({"due": due, "latest": latest.isoformat() if latest else None})
                await asyncio.sleep(self.poll_seconds)
        finally:
            await asyncio.to_thread(warehouse.dispose)
