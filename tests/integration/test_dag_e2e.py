"""The whole DAG, run the way a user runs it (``airflow dags test``), against the simulator.

The warehouse is compared row by row with the numbers the simulator decided before it
rendered them as Zoom's strings, so the check does not reuse the loader's own parsing.

OpenLineage, end to end, rides on the same first run (the provider's file transport): the events
it writes must name the Zoom endpoints it read and the warehouse tables it wrote, with the rows
each table really holds afterwards; the warehouse Asset's event must carry the window and the
counts, and the alias must resolve to the real tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from tests.integration.dagrun import (
    CONTRACT_TABLES,
    METADATA_DB,
    assert_matches_simulator,
    dags_test,
    warehouse_rows,
)

pytestmark = pytest.mark.e2e

TABLES = ("sessions", "session_users", "user_qos", "user_system_qos", "daily_usage")
NAMESPACE = "zoom-qos-test"


@dataclass(frozen=True)
class Reload:
    """The module's first run: its params, what it wrote, and what OpenLineage and Airflow saw."""

    day: str
    params: str
    rows: dict[str, dict[tuple, dict]]
    #: OpenLineage events (file transport, one JSON event a line)
    events: list[dict[str, Any]]
    #: rows per table in the warehouse right after the run
    counts: dict[str, int]
    #: asset URI -> extra of its last event in the metadata database, right after the run
    asset_extras: dict[str, Any]
    base_url: str
    db: Path


@pytest.fixture(scope="module")
def reloaded(world, tmp_path_factory) -> Reload:
    """One manual reload of the day three days ago, by the real DAG in a fresh ``airflow dags
    test`` process, as a user types it, into the module's empty warehouse, with OpenLineage on."""
    sim, env, db = world
    day = (sim.dataset.now - timedelta(days=3)).date().isoformat()
    params = json.dumps({"from_date": day, "to_date": day})
    events_file = tmp_path_factory.mktemp("openlineage") / "events.jsonl"
    dags_test(env, "-c", params, cli=True,
              AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(
                  {"type": "file", "log_file_path": str(events_file), "append": True}),
              AIRFLOW__OPENLINEAGE__NAMESPACE=NAMESPACE, AIRFLOW__OPENLINEAGE__DISABLED="False")
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
    engine.dispose()
    metadata = sa.create_engine(f"sqlite:///{Path(env['AIRFLOW_HOME']) / METADATA_DB}")
    with metadata.connect() as conn:
        found = conn.execute(sa.text(
            "SELECT a.uri, e.extra FROM asset_event AS e JOIN asset AS a ON a.id = e.asset_id "
            "ORDER BY e.id")).all()
    metadata.dispose()
    extras = {uri: json.loads(extra) if isinstance(extra, str) else extra for uri, extra in found}
    return Reload(day, params, warehouse_rows(db), events, counts, extras, sim.base_url, db)


def test_reload_of_a_day_loads_exactly_what_zoom_served_and_twice_changes_nothing(world, reloaded):
    sim, env, db = world
    day, params, first = reloaded.day, reloaded.params, reloaded.rows
    expected = sim.dataset.expected_rows(datetime.fromisoformat(day).date(),
                                         datetime.fromisoformat(day).date())
    assert all(expected[name] for name in CONTRACT_TABLES), "the simulator should serve every table"
    assert_matches_simulator(first, expected)

    dags_test(env, "-c", params)
    assert warehouse_rows(db) == first

    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT outcome, sessions_loaded, unparsed_values, api_requests "
                                    "FROM pipeline_runs")).all()
        raw = conn.execute(sa.text("SELECT count(*) FROM raw_session_users")).scalar()
    engine.dispose()
    assert [r.outcome for r in runs] == ["success", "success"]
    assert all(r.sessions_loaded == len(expected["sessions"]) for r in runs)
    day_date = datetime.fromisoformat(day).date()
    assert all(r.unparsed_values == sim.dataset.unparseable_count(day_date, day_date) for r in runs)
    assert all(r.api_requests >= 1 + len(expected["sessions"]) for r in runs)
    assert raw == len(expected["session_users"])


def test_a_window_older_than_six_months_is_skipped_not_failed(world):
    sim, env, db = world
    old = (sim.dataset.now - timedelta(days=400)).date().isoformat()
    output = dags_test(env, "-c", json.dumps({"from_date": old, "to_date": old}))
    assert "six months" in output
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        outcomes = conn.execute(sa.text("SELECT outcome FROM pipeline_runs ORDER BY recorded_at")).all()
    engine.dispose()
    assert outcomes[-1].outcome == "skipped"


def test_bi_views_give_sensible_figures_over_the_loaded_data(world, reloaded):
    sim, env, db = world
    day = datetime.fromisoformat(reloaded.day).date()
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        sessions = conn.execute(sa.text("SELECT count(*) FROM sessions")).scalar()
        quality = conn.execute(sa.text("SELECT * FROM session_quality")).mappings().all()
        daily = conn.execute(sa.text("SELECT * FROM daily_quality WHERE day = :d"),
                             {"d": day.isoformat()}).mappings().all()
        breakdown = conn.execute(sa.text(
            "SELECT DISTINCT dimension FROM daily_quality_breakdown")).scalars().all()
        health = conn.execute(sa.text("SELECT health FROM run_health")).scalars().all()
        findings = conn.execute(sa.text(
            "SELECT dq_findings, dq_hard_violations FROM pipeline_runs WHERE outcome = 'success'")).all()
    engine.dispose()
    assert len(quality) == sessions > 0
    audio = [q["audio_avg_latency_ms"] for q in quality if q["audio_avg_latency_ms"] is not None]
    assert audio and all(0 <= v < 5000 for v in audio)
    assert all(q["poor_share"] is None or 0 <= q["poor_share"] <= 1 for q in quality)
    media = {row["media_type"] for row in daily}
    assert {"audio", "video"} <= media
    for row in daily:
        assert row["samples"] >= row["poor_samples"] >= 0
        assert row["p95_latency_ms"] is None or row["p95_latency_ms"] >= row["avg_latency_ms"] * 0.5
    assert set(breakdown) == {"device", "network_type", "data_center"}
    assert health and set(health) <= {"healthy", "degraded", "skipped", "failed"}
    assert findings and all(hard == 0 for _, hard in findings)


# --------------------------------------------------------------------------- OpenLineage
def task_events(events: list[dict], task_id: str, event_type: str) -> list[dict]:
    return [e for e in events if e.get("eventType") == event_type
            and e["job"]["name"] == f"zoom_videosdk_qos.{task_id}"]


def ids(datasets: list[dict]) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in datasets}


def zoom_namespace(base_url: str) -> str:
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


def test_extraction_reads_the_qos_endpoint_into_staging_with_the_users_staged(reloaded):
    events, counts, base_url = reloaded.events, reloaded.counts, reloaded.base_url
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


def test_load_reads_staging_and_the_listing_endpoints_and_writes_the_tables_with_their_rows(reloaded):
    events, counts, base_url, db = reloaded.events, reloaded.counts, reloaded.base_url, reloaded.db
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


def test_the_warehouse_asset_event_carries_the_window_and_counts_and_the_alias_the_tables(reloaded):
    counts, db, day, extras = reloaded.counts, reloaded.db, reloaded.day, reloaded.asset_extras
    warehouse = extras["zoom-qos://warehouse/qos"]
    assert warehouse["window_start"] == warehouse["window_end"] == day
    assert warehouse["users_loaded"] == counts["session_users"]
    assert warehouse["qos_rows"] == counts["user_qos"]
    assert warehouse["rows"] == counts
    for table in TABLES:
        assert extras[f"sqlite:{Path(db).resolve()}/{table}"]["rows"] == counts[table]
