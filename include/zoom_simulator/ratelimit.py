"""Zoom-style rate limiting: a token bucket per category plus a shared daily counter.

Zoom limits per account and per category; Heavy and Resource-intensive calls also share
one daily cap. Modelling both lets the pipeline's back-off and daily-stop logic be tested.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from zoom_qos.zoom.published import HEAVY, MEDIUM, MEDIUM_PER_SECOND, RESOURCE_INTENSIVE

__all__ = ["HEAVY", "MEDIUM", "RESOURCE_INTENSIVE", "Decision", "RateLimiter", "next_utc_midnight"]


def next_utc_midnight(now: datetime | None = None) -> str:
    """ISO datetime of the next UTC midnight, the form Zoom uses in a daily Retry-After."""
    now = now or datetime.now(UTC)
    nxt = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return nxt.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Decision:
    """Outcome of one rate-limit check; `allowed` False carries what the 429 must say."""

    allowed: bool
    category: str
    limit_type: str = ""  # "QPS" or "Daily-limit"
    limit: int = 0
    remaining: int = 0
    retry_after_seconds: int = 0


class _Bucket:
    def __init__(self, capacity: float, refill_per_second: float) -> None:
        self.capacity = capacity
        self.rate = refill_per_second
        self.tokens = capacity
        self.stamp = time.monotonic()

    def take(self) -> tuple[bool, float]:
        """Take one token; return (ok, seconds until one is available)."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True, 0.0
        return False, (1.0 - self.tokens) / self.rate if self.rate > 0 else 86400.0


class RateLimiter:
    """Thread-safe limiter for the two categories the pipeline uses."""

    def __init__(self, heavy_per_second: float, resource_per_minute: float, daily_limit: int) -> None:
        self._lock = threading.Lock()
        self._heavy_per_second = heavy_per_second
        self._resource_per_minute = resource_per_minute
        self.daily_limit = daily_limit
        self.reset()

    def reset(self) -> None:
        """Refill every bucket and zero the daily counter."""
        with self._lock:
            self._buckets = {
                HEAVY: _Bucket(self._heavy_per_second, self._heavy_per_second),
                RESOURCE_INTENSIVE: _Bucket(self._resource_per_minute, self._resource_per_minute / 60.0),
                MEDIUM: _Bucket(MEDIUM_PER_SECOND, MEDIUM_PER_SECOND),
            }
            self._day = datetime.now(UTC).date()
            self._daily_used = 0

    def check(self, category: str) -> Decision:
        """Admit or refuse one request of `category`; admitted requests count toward the day."""
        with self._lock:
            today = datetime.now(UTC).date()
            if today != self._day:
                self._day, self._daily_used = today, 0
            capped = category != MEDIUM  # the daily cap counts Heavy and Resource-intensive calls
            if capped and self._daily_used >= self.daily_limit:
                return Decision(False, category, "Daily-limit", self.daily_limit, 0)
            bucket = self._buckets[category]
            ok, wait = bucket.take()
            limit = int({HEAVY: self._heavy_per_second, MEDIUM: MEDIUM_PER_SECOND}.get(
                category, self._resource_per_minute))
            if not ok:
                return Decision(False, category, "QPS", limit, 0, max(1, math.ceil(wait)))
            self._daily_used += capped
            return Decision(True, category, "QPS", limit, int(bucket.tokens))
