"""While the shared limiter's Redis is away nothing is sent, for a bounded time, and a Redis that
comes back empty gets back what this process had counted (zoom_qos.zoom.shared_redis, counters)."""

from __future__ import annotations

import logging
import uuid
from datetime import date

import pytest
import redis

from tests.chaos.harness import free_port
from zoom_qos.zoom.counters import RedisDailyCounter
from zoom_qos.zoom.errors import SharedLimiterUnavailableError
from zoom_qos.zoom.published import HEAVY
from zoom_qos.zoom.ratelimit import RedisRateLimiter
from zoom_qos.zoom.shared_redis import RedisOutage, masked

DAY = date(2026, 11, 30)


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def flaky(failures: int):
    calls = {"n": 0}

    def action() -> str:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")
        return "slot"

    return action, calls


def test_an_outage_is_waited_out_with_growing_pauses_and_logged_once_each_way(caplog):
    fake = FakeTime()
    outage = RedisOutage("redis://127.0.0.1:6390/0", 60, sleep=fake.sleep, clock=fake.clock)
    action, calls = flaky(4)
    with caplog.at_level(logging.WARNING, logger="zoom_qos.zoom.shared_redis"):
        assert outage.call("pacing a request", action) == "slot"
    assert calls["n"] == 5
    assert fake.sleeps == [0.5, 1.0, 2.0, 4.0]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and "is unreachable" in messages[0] and "no request is sent" in messages[0]
    assert "is back after 7.5s" in messages[1]
    assert outage.outages == 1


def test_an_outage_longer_than_the_wait_fails_naming_redis_without_its_password():
    fake = FakeTime()
    outage = RedisOutage("redis://:s3cret-pw@127.0.0.1:6390/0", 30, sleep=fake.sleep, clock=fake.clock)
    action, calls = flaky(10_000)
    with pytest.raises(SharedLimiterUnavailableError) as raised:
        outage.call("counting a request", action)
    message = str(raised.value)
    assert "s3cret-pw" not in message and "127.0.0.1:6390" in message
    assert "unreachable for 30s" in message and "nothing was sent to Zoom" in message
    assert sum(fake.sleeps) == pytest.approx(30)
    assert max(fake.sleeps) <= 10.0  # never sleeps longer than the longest pause
    assert calls["n"] < 20


def test_masked_hides_only_the_password():
    assert masked("redis://user:pw@host:6379/0") == "redis://user:***@host:6379/0"
    assert masked("redis://:pw@host:6379/0") == "redis://:***@host:6379/0"
    assert masked("redis://host:6379/0") == "redis://host:6379/0"


def test_the_limiter_against_a_redis_that_never_comes_fails_within_its_wait():
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", "acct", 10, 20, max_outage_seconds=1)
    with pytest.raises(SharedLimiterUnavailableError, match="unreachable"):
        limiter.acquire(HEAVY)


def test_a_redis_that_lost_the_days_keys_gets_back_what_this_process_counted(redis_url):
    account = f"acct-{uuid.uuid4().hex[:8]}"
    counter = RedisDailyCounter(redis_url, account)
    for _ in range(5):
        counter.add(DAY, 1)
    counter.add(DAY, 2, kind="backfill")
    server = redis.Redis.from_url(redis_url)
    server.delete(*counter.keys(DAY), counter.epoch_key(DAY))  # a restart without persistence
    accepted, spent = counter.add(DAY, 1)
    assert accepted
    assert spent == (6, 2, 0)
    assert counter.get(DAY) == (6, 2, 0)
    # Another counter of the same process and account shares what was counted, and restores nothing
    # twice once Redis holds it again.
    other = RedisDailyCounter(redis_url, account)
    assert other.add(DAY, 1)[1] == (7, 2, 0)
    # Keys removed on purpose while the epoch stays (an operator zeroing the day): nothing comes back.
    server.delete(*counter.keys(DAY))
    assert counter.add(DAY, 1)[1] == (1, 0, 0)
    server.delete(*counter.keys(DAY), counter.epoch_key(DAY))
