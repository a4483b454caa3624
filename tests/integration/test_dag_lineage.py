"""OpenLineage, end to end: one real ``airflow dags test`` run with the provider's file transport.

The events the run writes must name the Zoom endpoints it read and the warehouse tables it
wrote, with the rows each table really holds afterwards; the warehouse Asset's event must carry
the window and the counts, and the alias must resolve to the real tables.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from tests.integration.dagrun import METADATA_DB, dags_test

pytestmark = pytest.mark.e2e

TABLES = ("sessions", "session_users", "user_qos", "user_system_qos", "daily_usage")
NAMESPACE = "zoom-qos-test"


@pytest.fixture(scope="module")
def run(world, tmp_path_factory):
    """One manual reload of a day with OpenLineage on (file transport, one JSON event a line);
    the events, the warehouse's row counts, and the simulator's base URL."""
    sim, env, db = world
    events_file = tmp_path_factory.mktemp("openlineage") / "events.jsonl"
    day = (sim.dataset.now - timedelta(days=3)).date().isoformat()
    dags_test(env, "-c", json.dumps({"from_date": day, "to_date": day}),
              AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(
                  {"type": "file", "log_file_path": str(events_file), "append": True}),
              AIRFLOW__OPENLINEAGE__NAMESPACE=NAMESPACE, AIRFLOW__OPENLINEAGE__DISABLED="False")
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
    engine.dispose()
    return events, counts, sim.base_url, db, day


def task_events(events: list[dict], task_id: str, event_type: str) -> list[dict]:
    return [e for e in events if e.get("eventType") == event_type
            and e["job"]["name"] == f"zoom_videosdk_qos.{task_id}"]


def ids(datasets: list[dict]) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in datasets}


def zoom_namespace(base_url: str) -> str:
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


def test_extraction_reads_the_qos_endpoint_into_staging_with_the_users_staged(run):
    events, counts, base_url, _, _ = run
    qos = (zoom_namespace(base_url), f"{urlsplit(base_url).path}/videosdk/sessions/{{sessionId}}/users/qos")
    starts = task_events(events, "extract_qos", "START")
    completes = task_events(events, "extract_qos", "COMPLETE")
    assert starts and len(completes) == len(starts)
    for event in starts + completes:
        assert event["job"]["namespace"] == NAMESPACE
        assert qos in ids(event["inputs"])
        assert [o["namespace"] for o in event["outputs"]] == ["file"]
    staged = sum(c["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] for c in completes)
    assert staged == counts["session_users"]


def test_load_reads_staging_and_the_listing_endpoints_and_writes_the_tables_with_their_rows(run):
    events, counts, base_url, db, _ = run
    (start,), (complete,) = task_events(events, "load_warehouse", "START"), task_events(
        events, "load_warehouse", "COMPLETE")
    path = urlsplit(base_url).path
    zoom = zoom_namespace(base_url)
    for event in (start, complete):
        assert {(zoom, f"{path}/videosdk/sessions"), (zoom, f"{path}/videosdk/report/daily")} <= ids(
            event["inputs"])
        assert "file" in {i["namespace"] for i in event["inputs"]}
        assert ids(event["outputs"]) == {(f"sqlite://{Path(db).resolve()}", table) for table in TABLES}
    rows = {o["name"]: o["outputFacets"]["outputStatistics"]["rowCount"] for o in complete["outputs"]}
    assert rows == counts  # a first load into an empty warehouse: what it wrote is all there is
    assertions = {a["assertion"]: a for o in complete["outputs"]
                  for a in o["facets"].get("dataQualityAssertions", {}).get("assertions", [])}
    assert assertions["orphan_rows"]["success"] is True and assertions["orphan_rows"]["severity"] == "error"


def test_the_warehouse_asset_event_carries_the_window_and_counts_and_the_alias_the_tables(run, world):
    events, counts, _, db, day = run
    _, env, _ = world
    metadata = sa.create_engine(f"sqlite:///{Path(env['AIRFLOW_HOME']) / METADATA_DB}")
    with metadata.connect() as conn:
        found = conn.execute(sa.text(
            "SELECT a.uri, e.extra FROM asset_event AS e JOIN asset AS a ON a.id = e.asset_id "
            "ORDER BY e.id")).all()
    metadata.dispose()
    extras = {uri: json.loads(extra) if isinstance(extra, str) else extra for uri, extra in found}
    warehouse = extras["zoom-qos://warehouse/qos"]
    assert warehouse["window_start"] == warehouse["window_end"] == day
    assert warehouse["users_loaded"] == counts["session_users"]
    assert warehouse["qos_rows"] == counts["user_qos"]
    assert warehouse["rows"] == counts
    for table in TABLES:
        assert extras[f"sqlite:{Path(db).resolve()}/{table}"]["rows"] == counts[table]
