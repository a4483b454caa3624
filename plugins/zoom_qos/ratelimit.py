"""Client-side request pacing per Zoom rate-limit category.

Zoom counts requests per account and per category (Heavy for the QoS endpoints,
Resource-intensive for the session list). Pacing on our side keeps a run under those rates
instead of learning them from 429s. One ``RateLimiter`` is shared by every thread of a task.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

HEAVY = "Heavy"
RESOURCE_INTENSIVE = "Resource-intensive"


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


class RateLimiter:
    """One bucket per category."""

    def __init__(self, heavy_per_second: float, resource_intensive_per_minute: float) -> None:
        self.buckets = {
            HEAVY: TokenBucket(heavy_per_second, max(1.0, heavy_per_second)),
            RESOURCE_INTENSIVE: TokenBucket(
                resource_intensive_per_minute / 60.0, max(1.0, resource_intensive_per_minute)
            ),
        }

    def acquire(self, category: str) -> float:
        return self.buckets[category].acquire()
