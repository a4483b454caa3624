"""The shared rate limiter's Redis SIGKILLed mid-extraction and started again, empty.

The run must keep the account's rate (the simulator, pacing like Zoom, answers no 429), complete
the day, and leave the daily count at every request Zoom received: nothing was sent while Redis
was away, and what Redis lost in its restart is counted again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from include.zoom_simulator import Simulator, SimulatorConfig
from tests.chaos.harness import ChaosRow, PrivateRedis, assert_day_complete, record
from tests.conftest import API_KEY, API_SECRET, zoom_connection_json
from tests.integration.dagrun import AIRFLOW, METADATA_DB, airflow_env
from zoom_qos.zoom.budget import account_key
from zoom_qos.zoom.counters import RedisDailyCounter
from zoom_qos.zoom.settings import ZoomSettings

#: The account's Heavy rate, the same at the simulator (which answers 429 above it) and in our
#: pacing, so any request paced outside the shared limiter shows up as a 429.
HEAVY_PER_SECOND = 4


@pytest.fixture
def slow_world(tmp_path, migrated_metadata_db):
    """An Airflow home and a simulator whose Heavy rate is low enough for an extraction to last
    long enough (about 20 s) to kill Redis in the middle of it."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(migrated_metadata_db, home / METADATA_DB)
    sim = Simulator(SimulatorConfig(api_key=API_KEY, api_secret=API_SECRET, seed=11, sessions_per_day=10,
                                    heavy_rate_per_second=HEAVY_PER_SECOND),
                    host="127.0.0.1", port=0).start()
    yield sim, airflow_env(home, sim, home / "warehouse.db", home / "staging"), home / "warehouse.db"
    sim.stop()


def qos_requests(sim: Simulator) -> int:
    return sim.stats()["by_endpoint"]["user_qos"]


@pytest.fixture
def redis(tmp_path):
    """A Redis of the test's own, killed at the end whatever happened."""
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


def test_redis_killed_mid_extraction_waits_then_completes_with_every_request_counted(slow_world, redis):
    sim, env, db = slow_world
    day = sim.dataset.now.date() - timedelta(days=2)
    env = {**env,
           "AIRFLOW__ZOOM_QOS__RATE_LIMIT_REDIS_URL": redis.url,
           "AIRFLOW_CONN_ZOOM_VIDEOSDK": zoom_connection_json(
               sim.base_url, qos_page_size=1, heavy_requests_per_second=HEAVY_PER_SECOND,
               backoff_base_seconds=0.05)}
    sim.reset_stats()
    run = subprocess.Popen([AIRFLOW, "dags", "test", "zoom_videosdk_qos", "-c",
                            json.dumps({"from_date": day.isoformat(), "to_date": day.isoformat()})],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(run.stdout or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while qos_requests(sim) < 20:  # well into the extraction (about 80 QoS requests at 4/s)
            assert run.poll() is None and time.monotonic() < deadline, "".join(output)[-3000:]
            time.sleep(0.05)
        redis.kill()
        killed_at = time.monotonic()
        sent_when_killed = sim.stats()["requests"]
        time.sleep(5)
        sent_while_away = sim.stats()["requests"] - sent_when_killed
        redis.start()  # empty: no persistence, like the machine's own Redis
        assert run.wait(300) == 0, "".join(output)[-4000:]
        recovered = time.monotonic() - killed_at
    finally:
        if run.poll() is None:
            run.kill()
        reader.join(10)
    log = "".join(output)
    stats = sim.stats()
    counted = RedisDailyCounter(redis.url, account_key(API_KEY)).get(datetime.now(UTC).date())

    assert "state=success" in log, log[-3000:]
    assert "is unreachable" in log and "is back after" in log, log[-3000:]
    # Sent while Redis was away: only requests whose slot was reserved before it went, at most one
    # per extraction thread (a reservation may lie seconds ahead when 16 threads share 4/s).
    assert sent_while_away <= ZoomSettings().max_concurrent_sessions, sent_while_away
    assert stats["status_counts"].get("429", 0) == 0, stats["status_counts"]
    assert counted.total == stats["requests"], (counted, stats["requests"])
    lost = assert_day_complete(sim, db, day)
    record(ChaosRow(
        fault="Redis (shared rate limit) SIGKILLed mid-extraction, restarted empty 5 s later",
        outcome=(f"no new slot while it was away ({sent_while_away} requests already paced went out), "
                 f"then went on; run succeeded; 0 × 429; daily count {counted.total} = requests Zoom "
                 f"received {stats['requests']}"),
        rows_lost=lost, recovery_seconds=recovered))
