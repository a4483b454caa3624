"""The whole DAG, run the way a user runs it (``airflow dags test``), against the simulator.

The warehouse is compared row by row with the numbers the simulator decided before it
rendered them as Zoom's strings, so the check does not reuse the loader's own parsing.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.integration.dagrun import CONTRACT_TABLES, assert_matches_simulator, dags_test, warehouse_rows

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def reloaded(world):
    """One manual reload of the day three days ago, by the real DAG; its params and what it wrote."""
    sim, env, db = world
    day = (sim.dataset.now - timedelta(days=3)).date().isoformat()
    params = json.dumps({"from_date": day, "to_date": day})
    dags_test(env, "-c", params)
    return day, params, warehouse_rows(db)


def test_reload_of_a_day_loads_exactly_what_zoom_served_and_twice_changes_nothing(world, reloaded):
    sim, env, db = world
    day, params, first = reloaded
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
    day = datetime.fromisoformat(reloaded[0]).date()
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
