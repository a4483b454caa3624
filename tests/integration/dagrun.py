"""Helpers to run the whole DAG the way a user does: ``airflow dags test`` in a subprocess."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.zoom_simulator import Simulator, SimulatorConfig
from tests.conftest import API_KEY, API_SECRET, ROOT, zoom_connection_json
from zoom_qos.warehouse.schema import METADATA

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
CONTRACT_TABLES = ("sessions", "session_users", "user_qos", "user_system_qos")
#: Columns that say when a run wrote or asked, not what Zoom sent: a second run changes them.
RUN_TIMES = frozenset({"loaded_at", "qos_checked_at"})
PRIMARY_KEYS = {name: [c.name for c in METADATA.tables[name].primary_key] for name in CONTRACT_TABLES}


#: The metadata database ``airflow db migrate`` writes in an Airflow home.
METADATA_DB = "airflow.db"


def airflow_env(home: Path, sim: Simulator, warehouse: Path, staging: Path) -> dict[str, str]:
    """The environment of ``airflow`` commands on ``home``, the simulator and a SQLite warehouse."""
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(ROOT),
        "AIRFLOW_CONN_ZOOM_VIDEOSDK": zoom_connection_json(sim.base_url),
        "AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
        "AIRFLOW__ZOOM_QOS__STAGING_URL": staging.as_uri(),
    }


@pytest.fixture(scope="session")
def migrated_metadata_db(tmp_path_factory) -> Path:
    """Once per session: ``airflow db migrate`` (the costly step, seconds) into a template home;
    the metadata database it leaves is what every ``world`` starts from."""
    home = tmp_path_factory.mktemp("airflow-home-template")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "PYTHONPATH": str(ROOT)}
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return home / METADATA_DB


@pytest.fixture(scope="module")
def world(tmp_path_factory, migrated_metadata_db):
    """A simulator, an Airflow home with a migrated metadata database and an environment for
    ``airflow`` commands: all the module's own (its runs, XComs, logs, warehouse file and staging
    folder are apart from other modules'); only the migration is done once per session."""
    home = tmp_path_factory.mktemp("airflow-home")
    shutil.copyfile(migrated_metadata_db, home / METADATA_DB)
    sim = Simulator(SimulatorConfig(api_key=API_KEY, api_secret=API_SECRET, seed=11,
                                    sessions_per_day=10), host="127.0.0.1", port=0).start()
    env = airflow_env(home, sim, home / "warehouse.db", home / "staging")
    yield sim, env, home / "warehouse.db"
    sim.stop()


def dags_test(env, *args: str, dag_id: str = "zoom_videosdk_qos", **overrides: str) -> str:
    """``airflow dags test`` of ``dag_id`` with ``args``, ``overrides`` added to the environment;
    fails the test unless the run succeeded."""
    done = subprocess.run([AIRFLOW, "dags", "test", dag_id, *args], env={**env, **overrides},
                          capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "state=success" in output, output[-4000:]
    return output


def sqlite_conn(path: Path) -> str:
    return json.dumps({"conn_type": "sqlite", "host": str(path)})


def warehouse_rows(path: Path) -> dict[str, dict[tuple, dict]]:
    engine = sa.create_engine(f"sqlite:///{path}")
    rows: dict[str, dict[tuple, dict]] = {}
    with engine.connect() as conn:
        for name in CONTRACT_TABLES:
            table = METADATA.tables[name]
            keyed = {}
            for row in conn.execute(sa.select(table)).mappings():
                row = {k: v for k, v in row.items() if k not in RUN_TIMES}
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


