"""Client-side request pacing per Zoom rate-limit category.

Zoom counts requests per account and per category (Heavy for the QoS endpoints,
Resource-intensive for the session list). Pacing on our side keeps a run under those rates
instead of learning them from 429s. One ``RateLimiter`` is shared by every thread of a task.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from zoom_qos.zoom.published import HEAVY, MEDIUM, MEDIUM_PER_SECOND, RESOURCE_INTENSIVE
from zoom_qos.zoom.retry import DEFAULT_MAX_TOTAL_SECONDS
from zoom_qos.zoom.shared_redis import RedisOutage, connect


class TokenBucket:
    """Allows ``capacity`` requests at once, refilled at ``rate`` per second."""

    def __init__(
        self,
        rate: float,
        capacity: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError(f"A rate limit needs rate > 0 and capacity >= 1, got {rate}, {capacity}")
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until one is available. Returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                # The epsilon absorbs float rounding: without it a refill that lands at
                # 0.9999999999 would ask for a sleep too short to move the clock.
                if self._tokens >= 1 - 1e-9:
                    self._tokens = max(0.0, self._tokens - 1)
                    return waited
                pause = (1 - self._tokens) / self.rate
            self._sleep(pause)
            waited += pause


def burst_for(per_period: float) -> float:
    """Requests allowed back to back: half of Zoom's per-period allowance.

    Zoom allows a full period's quota at once; keeping half of it unused leaves slack for
    network jitter (requests that leave evenly paced can arrive bunched), so pacing at the
    full rate still never trips the server's own bucket.
    """
    return max(1.0, per_period / 2)


class RateLimiter:
    """One bucket per category, for the tasks of one process."""

    def __init__(self, heavy_per_second: float, resource_intensive_per_minute: float) -> None:
        self.buckets = {
            HEAVY: TokenBucket(heavy_per_second, burst_for(heavy_per_second)),
            RESOURCE_INTENSIVE: TokenBucket(
                resource_intensive_per_minute / 60.0, burst_for(resource_intensive_per_minute)
            ),
            MEDIUM: TokenBucket(MEDIUM_PER_SECOND, burst_for(MEDIUM_PER_SECOND)),
        }

    def acquire(self, category: str) -> float:
        return self.buckets[category].acquire()


# Generic cell rate algorithm, reservation style: every caller gets a slot and the time to wait
# for it, atomically, from the Redis server's clock (so workers' clocks need not agree).
# KEYS[1]: the category's key. ARGV[1]: seconds between requests. ARGV[2]: burst size.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return string.format('%.6f', wait)
"""


class RedisRateLimiter:
    """The account's rates shared by every task, process and worker, through Redis.

    Zoom counts requests per account, so pacing in each process alone would let N concurrent
    tasks send N times the limit. Each request reserves the next free slot of its category
    in Redis and sleeps until then. While Redis is away no slot is given, so nothing is sent
    (``zoom.shared_redis``); a Redis that comes back empty starts with a fresh bucket, which holds
    the rate since at most half a period's allowance goes at once (``burst_for``).
    """

    def __init__(
        self,
        url: str,
        account: str,
        heavy_per_second: float,
        resource_intensive_per_minute: float,
        sleep: Callable[[float], None] = time.sleep,
        max_outage_seconds: float = DEFAULT_MAX_TOTAL_SECONDS,
    ) -> None:
        self._redis = connect(url)
        self._outage = RedisOutage(url, max_outage_seconds, sleep=sleep)
        self._script = self._redis.register_script(_GCRA)
        self._sleep = sleep
        self._prefix = f"zoom_qos:ratelimit:{account}"
        self._params = {
            HEAVY: (1.0 / heavy_per_second, burst_for(heavy_per_second)),
            RESOURCE_INTENSIVE: (60.0 / resource_intensive_per_minute,
                                 burst_for(resource_intensive_per_minute)),
            MEDIUM: (1.0 / MEDIUM_PER_SECOND, burst_for(MEDIUM_PER_SECOND)),
        }

    def acquire(self, category: str) -> float:
        interval, burst = self._params[category]
        wait = float(self._outage.call(
            f"pacing a {category} request",
            lambda: self._script(keys=[f"{self._prefix}:{category}"], args=[interval, burst])))
        if wait > 0:
            self._sleep(wait)
        return wait

    def reset(self) -> None:
        """Forget every reservation (tests)."""
        for category in self._params:
            self._redis.delete(f"{self._prefix}:{category}")
