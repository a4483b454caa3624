"""The Redis that shares an account's pacing and daily count, and what happens while it is away.

Without it no process knows what the others send, so a process that paced alone could push the
account past Zoom's rate together with the others. So while Redis is unreachable **no request is
sent**: every call waits for it (backing off up to 10 s between tries, logging when it goes and
when it comes back) for at most ``max_wait_seconds`` (10 minutes, the default retry budget of
a request), then fails with
``SharedLimiterUnavailableError``; the task's retry goes on from what was staged. A Redis that
comes back empty (restarted without persistence) has lost the day's count: each counter puts back
what its own process counted (``RedisDailyCounter``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from zoom_qos.zoom.errors import SharedLimiterUnavailableError
from zoom_qos.zoom.retry import DEFAULT_MAX_TOTAL_SECONDS

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Waits between tries while Redis is away: from the first to the longest.
FIRST_WAIT_SECONDS = 0.5
LONGEST_WAIT_SECONDS = 10.0


def connect(url: str) -> redis.Redis:
    """A client of ``url`` whose calls fail within seconds when the server is gone (they are
    retried by :class:`RedisOutage`, not inside redis-py)."""
    import redis  # only deployments that share a limiter need the client

    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)


def masked(url: str) -> str:
    """``url`` as a message may show it: without a password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=user + netloc).geturl()


class RedisOutage:
    """Calls to one Redis server that ride out its absence for a bounded time (module docstring).

    Shared by the threads of a task: the outage is logged once when it starts and once when it
    ends, not by every waiting thread.
    """

    def __init__(self, url: str, max_wait_seconds: float = DEFAULT_MAX_TOTAL_SECONDS,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.where = masked(url)
        self.max_wait_seconds = max_wait_seconds
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self.outages = 0

    def call(self, what: str, action: Callable[[], T]) -> T:
        """``action()``, tried again while Redis is unreachable; ``what`` names it in messages."""
        import redis  # the redis extra: only with a shared limiter

        started: float | None = None
        wait = FIRST_WAIT_SECONDS
        while True:
            try:
                result = action()
            except (redis.ConnectionError, redis.TimeoutError) as error:
                now = self._clock()
                started = now if started is None else started
                self._went(error, what)
                waited = now - started
                if waited >= self.max_wait_seconds:
                    raise SharedLimiterUnavailableError(
                        f"Redis at {self.where} (the account's shared rate limit and daily request "
                        f"count) has been unreachable for {waited:.0f}s ({error}); nothing was sent to "
                        "Zoom meanwhile. Check that Redis is running ([zoom_qos] rate_limit_redis_url), "
                        "then clear the task: what was staged is kept.") from error
                self._sleep(min(wait, self.max_wait_seconds - waited))
                wait = min(wait * 2, LONGEST_WAIT_SECONDS)
                continue
            self._back()
            return result

    def _went(self, error: BaseException, what: str) -> None:
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = self._clock()
            self.outages += 1
        log.warning("Redis at %s is unreachable (%s) while %s: no request is sent to Zoom until it is "
                    "back (waiting up to %.0fs).", self.where, error, what, self.max_wait_seconds)

    def _back(self) -> None:
        if self._down_since is None:  # the usual case, without taking the lock
            return
        with self._lock:
            if self._down_since is None:
                return
            away, self._down_since = self._clock() - self._down_since, None
        log.warning("Redis at %s is back after %.1fs; requests go on.", self.where, away)
