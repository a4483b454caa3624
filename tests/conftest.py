"""Shared fixtures. Airflow reads its settings at import, so they are set before any import."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="zoomqos-airflow-home-"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ.pop("AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE", None)

from include.zoom_simulator import Simulator, SimulatorConfig  # noqa: E402

# Warehouse fixtures (SQLite file / fresh PostgreSQL database) for every test module.
pytest_plugins = ("tests.warehouse_fixtures",)

API_KEY = "test-api-key"
API_SECRET = "test-api-secret-3f9c2d17a8"
# Redis for the shared rate limiter and daily count tests (database 15: kept apart).
REDIS_URL = os.environ.get("ZOOM_QOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def zoom_connection_json(base_url: str, secret: str = API_SECRET, **extra: object) -> str:
    return json.dumps({"conn_type": "http", "host": base_url, "login": API_KEY,
                       "password": secret, "extra": extra})


@pytest.fixture
def redis_url():
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        if os.environ.get("ZOOM_QOS_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis required (ZOOM_QOS_REQUIRE_REDIS=1), not reachable at {REDIS_URL}: {error}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {error}")
    return REDIS_URL


@pytest.fixture(autouse=True)
def _own_request_budget(monkeypatch, tmp_path_factory):
    """Each test counts its Zoom requests apart: the suite as a whole sends more than a day's cap."""
    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__BUDGET_DIR", str(tmp_path_factory.mktemp("budget")))


@pytest.fixture
def simulator():
    """A fresh simulator on a free loopback port; rate limits on, as Zoom's."""
    sim = Simulator(SimulatorConfig(api_key=API_KEY, api_secret=API_SECRET, seed=7,
                                    sessions_per_day=8), host="127.0.0.1", port=0)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def zoom_conn(monkeypatch, simulator):
    """Point the ``zoom_videosdk`` connection at the simulator; returns a setter for extras."""

    def configure(**extra: object) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_ZOOM_VIDEOSDK", zoom_connection_json(simulator.base_url, **extra))

    configure(backoff_base_seconds=0.05)
    return configure
