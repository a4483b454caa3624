"""The triggerer's watch on the webhook store: it fires when session.ended events become due, once
per change, and not again while nothing changes (events handled by a run in progress)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from zoom_qos.triggers import StoredEventsTrigger
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.webhooks import Outcome, record_outcomes, store_event
from zoom_qos.zoom.webhooks import ZoomEvent


def ended(session_id: str) -> ZoomEvent:
    return ZoomEvent("session.ended", datetime.now(UTC), {"session_id": session_id}, None)


def test_the_watch_fires_on_new_due_events_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.db"
    monkeypatch.setenv("AIRFLOW_CONN_WH_EVENTS", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    wh = Warehouse(URL.create("sqlite", database=str(path)))
    wh.ensure_schema()
    trigger = StoredEventsTrigger(conn_id="wh_events", poll_seconds=0.05)
    assert trigger.serialize() == ("zoom_qos.triggers.StoredEventsTrigger",
                                   {"conn_id": "wh_events", "poll_seconds": 0.05, "refire_seconds": 600.0})
    fired: list[dict] = []

    async def watch() -> None:
        async for event in trigger.run():
            fired.append(event.payload)

    async def scenario() -> None:
        task = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        assert fired == []  # nothing stored: nothing fires
        store_event(wh.engine, ended("A"), datetime.now(UTC))
        await asyncio.sleep(0.5)
        assert [f["due"] for f in fired] == [1]
        await asyncio.sleep(0.3)
        assert len(fired) == 1  # still due, unchanged: a run is on it
        store_event(wh.engine, ended("B"), datetime.now(UTC))
        await asyncio.sleep(0.5)
        assert [f["due"] for f in fired] == [1, 2]
        # Handled (one loaded, one waiting for its backoff): nothing due, nothing fires.
        later = datetime.now(UTC) + timedelta(hours=1)
        outcomes = {"A": Outcome("loaded"), "B": Outcome("pending", later)}
        record_outcomes(wh.engine, outcomes, "r", datetime.now(UTC))
        await asyncio.sleep(0.3)
        assert len(fired) == 2
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(scenario())
    finally:
        wh.dispose()
