"""Pacing shared by every task through Redis keeps the whole account under its limit."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from include.zoom_simulator import Simulator, SimulatorConfig
from tests.conftest import API_KEY, API_SECRET, zoom_connection_json
from zoom_qos.hooks import ZoomVideoSdkHook
from zoom_qos.zoom.published import HEAVY
from zoom_qos.zoom.ratelimit import RedisRateLimiter


def test_limiters_in_different_tasks_share_one_budget(redis_url):
    account = uuid.uuid4().hex[:12]
    answered = threading.local()

    def sleep(seconds: float) -> None:
        answered.at = time.monotonic()  # Redis has answered: the slot is now + seconds
        time.sleep(seconds)

    limiters = [RedisRateLimiter(redis_url, account, heavy_per_second=10, resource_intensive_per_minute=20,
                                 sleep=sleep) for _ in range(3)]
    stamps: list[float] = []
    round_trips: list[float] = []
    lock = threading.Lock()

    def worker(limiter):
        for _ in range(10):
            answered.at = None
            asked = time.monotonic()
            wait = limiter.acquire(HEAVY)
            # Redis chose the slot somewhere between asking and its answer: the stamp may be
            # early by up to that round trip.
            round_trip = (answered.at or time.monotonic()) - asked
            with lock:
                stamps.append(asked + wait)
                round_trips.append(round_trip)

    threads = [threading.Thread(target=worker, args=(limiter,)) for limiter in limiters]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 30 requests at 10/s with a burst of 5: at least 2.5 seconds, whatever the task count
    assert time.monotonic() - start >= 2.4
    # Two stamps closer than a second minus the worst round trip were truly under a second apart,
    # so counting those never counts more than the limiter let through.
    slack = max(round_trips)
    assert slack < 0.2, f"Redis round trips of up to {slack:.3f} s leave the pacing unmeasurable"
    stamps.sort()
    late = [s for s in stamps if s - start >= 1.0]
    for i, first in enumerate(late):
        assert sum(1 for s in late[i:] if s < first + 1.0 - slack) <= 10


def test_other_accounts_are_not_slowed(redis_url):
    a = RedisRateLimiter(redis_url, uuid.uuid4().hex[:12], 5, 20)
    b = RedisRateLimiter(redis_url, uuid.uuid4().hex[:12], 5, 20)
    for _ in range(3):
        a.acquire(HEAVY)
    assert b.acquire(HEAVY) == 0.0


def test_concurrent_tasks_stay_under_the_account_limit_without_429s(redis_url, monkeypatch):
    config = SimulatorConfig(api_key=API_KEY, api_secret=API_SECRET, seed=3, sessions_per_day=12,
                             heavy_rate_per_second=10)
    with Simulator(config, host="127.0.0.1", port=0) as sim:
        monkeypatch.setenv("AIRFLOW_CONN_ZOOM_VIDEOSDK", zoom_connection_json(
            sim.base_url, heavy_requests_per_second=10, rate_limit_redis_url=redis_url))
        day = sim.dataset.now.date() - timedelta(days=2)
        ids = [s["id"] for s in sim.dataset.sessions_for_day(day) if s.get("end_time")]
        hooks = [ZoomVideoSdkHook() for _ in range(3)]  # three tasks of one account

        def task(hook):
            for session_id in ids:
                list(hook.iter_session_qos_pages(session_id))

        threads = [threading.Thread(target=task, args=(hook,)) for hook in hooks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = sim.stats()
        assert stats["status_counts"].get("429", 0) == 0, stats
        assert sum(h.stats.requests for h in hooks) >= 3 * len(ids) > 10


def test_live_polling_counts_apart_in_the_shared_daily_count(redis_url, monkeypatch):
    """Live polling and the scheduled runs of one account count into the same Redis keys, by kind."""
    import redis

    from zoom_qos.zoom.budget import LiveBudgetExhaustedError, account_key
    from zoom_qos.zoom.counters import RedisDailyCounter, Spent

    config = SimulatorConfig(api_key=API_KEY, api_secret=API_SECRET, seed=3, sessions_per_day=12)
    with Simulator(config, host="127.0.0.1", port=0) as sim:
        monkeypatch.setenv("AIRFLOW_CONN_ZOOM_VIDEOSDK", zoom_connection_json(
            sim.base_url, rate_limit_redis_url=redis_url, daily_request_limit=1_000,
            backfill_reserve_requests=100, live_daily_request_budget=2))
        counter = RedisDailyCounter(redis_url, account_key(API_KEY))
        today = sim.dataset.now.date()
        utc_today = datetime.now(UTC).date()
        try:
            for key in counter.keys(utc_today):
                redis.Redis.from_url(redis_url).delete(key)
            live = ZoomVideoSdkHook(live=True)
            ids = [s["id"] for s in live.iter_live_sessions(today - timedelta(days=1), today)]
            # The list was one request; whatever the sessions in progress hold, the third request
            # at the latest is refused.
            with pytest.raises(LiveBudgetExhaustedError):
                for session_id in ids:
                    list(live.iter_session_qos_pages(session_id, session_type="live"))
                list(live.iter_live_sessions(today - timedelta(days=1), today))
            scheduled = ZoomVideoSdkHook()
            list(scheduled.iter_past_sessions(today - timedelta(days=2), today - timedelta(days=2)))
            assert counter.get(utc_today) == Spent(scheduled=scheduled.stats.requests, backfill=0, live=2)
        finally:
            for key in counter.keys(utc_today):
                redis.Redis.from_url(redis_url).delete(key)
