"""The whole DAG, run the way a user runs it (``airflow dags test``), against the simulator.

The warehouse is compared row by row with the numbers the simulator decided before it
rendered them as Zoom's strings, so the check does not reuse the loader's own parsing.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.zoom_simulator import Simulator, SimulatorConfig
from tests.conftest import API_KEY, API_SECRET, ROOT, zoom_connection_json
from zoom_qos.schema import METADATA

pytestmark = pytest.mark.e2e
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
CONTRACT_TABLES = ("sessions", "session_users", "user_qos", "user_system_qos")
PRIMARY_KEYS = {name: [c.name for c in METADATA.tables[name].primary_key] for name in CONTRACT_TABLES}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A simulator, a migrated Airflow home and an environment for ``airflow`` commands."""
    home = tmp_path_factory.mktemp("airflow-home")
    sim = Simulator(SimulatorConfig(api_key=API_KEY, api_secret=API_SECRET, seed=11,
                                    sessions_per_day=10), host="127.0.0.1", port=0).start()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(ROOT),
        "AIRFLOW_CONN_ZOOM_VIDEOSDK": zoom_connection_json(sim.base_url),
        "AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE": json.dumps(
            {"conn_type": "sqlite", "host": str(home / "warehouse.db")}),
        "ZOOM_QOS_STAGING_URL": (home / "staging").as_uri(),
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    yield sim, env, home / "warehouse.db"
    sim.stop()


def dags_test(env, *args: str) -> str:
    done = subprocess.run([AIRFLOW, "dags", "test", "zoom_videosdk_qos", *args], env=env,
                          capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "state=success" in output, output[-4000:]
    return output


def warehouse_rows(path: Path) -> dict[str, dict[tuple, dict]]:
    engine = sa.create_engine(f"sqlite:///{path}")
    rows: dict[str, dict[tuple, dict]] = {}
    with engine.connect() as conn:
        for name in CONTRACT_TABLES:
            table = METADATA.tables[name]
            keyed = {}
            for row in conn.execute(sa.select(table)).mappings():
                row = {k: v for k, v in row.items() if k != "loaded_at"}
                keyed[tuple(row[k] for k in PRIMARY_KEYS[name])] = row
            rows[name] = keyed
    engine.dispose()
    return rows


def assert_same_value(table, key, column, got, want):
    if isinstance(want, float) and got is not None:
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), (table, key, column, got, want)
    else:
        assert got == want, (table, key, column, got, want)


def assert_matches_simulator(rows, expected):
    for name in CONTRACT_TABLES:
        want = {tuple(r[k] for k in PRIMARY_KEYS[name]): r for r in expected[name]}
        assert set(rows[name]) == set(want), f"{name}: keys differ"
        for key, want_row in want.items():
            got_row = rows[name][key]
            for column, value in want_row.items():
                assert_same_value(name, key, column, got_row[column], value)


def test_reload_of_a_day_loads_exactly_what_zoom_served_and_twice_changes_nothing(world):
    sim, env, db = world
    day = (sim.dataset.now - timedelta(days=3)).date().isoformat()
    params = json.dumps({"from_date": day, "to_date": day})

    dags_test(env, "-c", params)
    first = warehouse_rows(db)
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


def test_a_scheduled_run_covers_its_day_and_the_lookback(world):
    """A run without params reads its data interval (one UTC day) plus one lookback day."""
    sim, env, db = world
    run_after = (sim.dataset.now - timedelta(days=6)).replace(hour=6, minute=0, second=0, microsecond=0)
    output = dags_test(env, run_after.astimezone(UTC).isoformat())
    # Airflow gives a manual run the last complete interval before it: the previous day.
    day = run_after.date() - timedelta(days=1)
    assert f"data_interval_start={day.isoformat()} 00:00:00+00:00" in output
    assert f"data_interval_end={run_after.date().isoformat()} 00:00:00+00:00" in output
    expected = {(s["session_id"],) for s in
                sim.dataset.expected_rows(day - timedelta(days=1), day)["sessions"]}
    assert expected and expected <= set(warehouse_rows(db)["sessions"])
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        window = conn.execute(sa.text("SELECT window_start, window_end FROM pipeline_runs "
                                      "ORDER BY recorded_at DESC LIMIT 1")).one()
    engine.dispose()
    assert (window.window_start, window.window_end) == ((day - timedelta(days=1)).isoformat(),
                                                        day.isoformat())


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
