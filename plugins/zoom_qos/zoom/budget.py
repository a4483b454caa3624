"""A daily request budget, so backfills and live polling spend Zoom's daily cap without starving
the daily run.

Zoom caps every account at a number of requests per UTC day, shared by all endpoints
(Business+ 60,000, Pro 30,000) and reset at 00:00 UTC. A six-month backfill of a busy account
needs more than one day's cap. Learning that from Zoom's daily 429 would let a backfill spend the
whole cap and leave the scheduled run of the day nothing; so we count our own requests per UTC
day and refuse, *before sending*, any request past the caller's share.

The shares and the reserve (the one explanation; other docstrings point here). Scheduled,
backfill and live requests are counted apart (``Spent``):

- live polling's share, ``live_budget`` (the ``live_daily_request_budget`` extra), is carved out
  of the cap first: a live request may be sent while ``live + n <= live_budget`` (and the day's
  total stays within ``daily_limit``). It is kept whether or not live polling uses it, so
  neither the scheduled runs nor a backfill can take it, and live polling can take nothing of
  theirs;
- scheduled runs may use the rest, ``daily_limit - live_budget``: they send while
  ``scheduled + backfill + n <= daily_limit - live_budget``;
- backfills and manual range reloads leave ``reserve`` requests of that rest to the scheduled
  runs, *until those spend them*: a backfill may send while
  ``max(reserve, scheduled) + backfill + n <= daily_limit - live_budget``. Its day holds
  ``daily_limit - live_budget - max(reserve, scheduled)``, not ``... - reserve - scheduled``,
  because the scheduled runs' requests come out of the reserve and must not be charged to the
  backfill twice (as spend and as reserve).

``reserve + live_budget`` must be less than ``daily_limit``. A refusal raises
``DailyBudgetExhaustedError``, a ``DailyLimitReached`` (like Zoom's own daily 429) whose
``reset_at`` is the next 00:00 UTC: the extraction operator parks on it and resumes after the
reset; live polling's refusal is the subclass ``LiveBudgetExhaustedError`` (``kind == "live"``),
on which live polling pauses until then. Zoom's 429 stays the backstop for what we cannot count (other apps on
the same account, requests made before the counter existed).

The count lives where every process that talks to Zoom for the account sees it
(``zoom_qos.zoom.counters``): in Redis on a cluster (the rate limiter's ``rate_limit_redis_url``),
else in a locked file on the one machine a LocalExecutor uses. Call ``spend()`` once per HTTP
request, retries included, right before sending it: Zoom counts every request it receives.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any

from zoom_qos.zoom.counters import (
    KEEP_DAYS,
    REQUEST_KINDS,
    DailyCounter,
    FileDailyCounter,
    RedisDailyCounter,
    RequestKind,
    Spent,
    check_count,
)
from zoom_qos.zoom.errors import DailyBudgetExhaustedError, LiveBudgetExhaustedError, ZoomConfigError

# The counters are re-exported: this module stays the one to import the budget's names from.
__all__ = [
    "KEEP_DAYS",
    "DailyBudget",
    "REQUEST_KINDS",
    "DailyCounter",
    "FileDailyCounter",
    "LiveBudgetExhaustedError",
    "RedisDailyCounter",
    "RequestKind",
    "Spent",
    "UnlimitedBudget",
    "account_key",
    "budget_for",
    "is_backfill",
    "next_reset",
    "utc_now",
]

log = logging.getLogger(__name__)

def utc_now() -> datetime:
    return datetime.now(UTC)


def next_reset(now: datetime) -> datetime:
    """The next 00:00 UTC strictly after ``now`` (at exactly 00:00 a fresh day has just begun)."""
    day = _utc(now).date()
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


def account_key(api_key: str) -> str:
    """The account's key in shared counters: the API key hashed, as the client keys its rate limiter."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError(f"The budget's clock must return an aware datetime, got {now!r}")
    return now.astimezone(UTC)


# --- the refusal of live polling ---------------------------------------------------------------
# --- budgets ----------------------------------------------------------------------------------
class DailyBudget:
    """One caller's share of the account's requests for the current UTC day.

    ``live_budget`` is carved out of ``daily_limit`` for live polling (``live=True``), which may
    use only it; scheduled runs (neither flag, ``reserve=0``) may use the rest; backfills
    (``backfill=True``) leave ``reserve`` of the rest to them (see the module docstring). Every
    caller counts into the same counter, by kind. Holds no count of its own (the counter is
    thread- and process-safe), so threads may share one.
    """

    def __init__(
        self,
        counter: DailyCounter,
        daily_limit: int,
        reserve: int = 0,
        clock: Callable[[], datetime] = utc_now,
        *,
        backfill: bool = False,
        live: bool = False,
        live_budget: int = 0,
    ) -> None:
        for name, value in (("daily_limit", daily_limit), ("reserve", reserve), ("live_budget", live_budget)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number of requests, got {value!r}")
        if daily_limit < 1:
            raise ValueError(f"daily_limit must be at least 1, got {daily_limit}; without a known "
                             "cap use UnlimitedBudget (budget_for() does for daily_limit 0)")
        if not 0 <= reserve < daily_limit:
            raise ValueError(f"reserve must be at least 0 and less than daily_limit ({daily_limit:,}), "
                             f"got {reserve:,}")
        if live_budget < 0 or reserve + live_budget >= daily_limit:
            raise ValueError(f"live_budget must be at least 0 and, with the reserve ({reserve:,}), less "
                             f"than daily_limit ({daily_limit:,}); got {live_budget:,}")
        if backfill and live:
            raise ValueError("A budget is a backfill's or live polling's, not both")
        if reserve and not backfill:
            raise ValueError("Only a backfill leaves a reserve: scheduled runs are what it is kept for")
        self.counter = counter
        self.daily_limit = daily_limit
        self.reserve = reserve
        self.live_budget = live_budget
        self._counter_failed = False
        self.kind: RequestKind = "live" if live else "backfill" if backfill else "scheduled"
        self._clock = clock

    @property
    def backfill(self) -> bool:
        return self.kind == "backfill"

    @property
    def live(self) -> bool:
        return self.kind == "live"

    def _now(self) -> datetime:
        return _utc(self._clock())

    def _left(self, spent: Spent) -> int:
        return spent.left(self.daily_limit, self.reserve, kind=self.kind, live_budget=self.live_budget)

    def spend(self, n: int = 1, *, endpoint: str = "") -> int:
        """Count ``n`` requests about to be sent; returns how many remain for this caller today.

        Raises ``DailyBudgetExhaustedError`` (``reset_at`` = next 00:00 UTC) when they would
        pass today's share, counting none of them: a refused request is never sent.
        """
        check_count(n)
        now = self._now()
        try:
            accepted, spent = self.counter.add(now.date(), n, kind=self.kind, limit=self.daily_limit,
                                               reserve=self.reserve, live_budget=self.live_budget)
        except OSError as error:
            # The count is bookkeeping: an unwritable folder or a full disk must not stop the
            # extraction. Zoom's own daily 429 remains the backstop.
            if not self._counter_failed:
                self._counter_failed = True
                log.warning("The daily request count cannot be kept (%s): requests are not counted "
                            "against daily_request_limit; set [zoom_qos] budget_dir to a writable "
                            "folder or configure rate_limit_redis_url.", error)
            return self.daily_limit
        if not accepted:
            raise self._refusal(now, spent, n, endpoint)
        return max(0, self._left(spent))

    def _refusal(self, now: datetime, spent: Spent, n: int, endpoint: str) -> DailyBudgetExhaustedError:
        day, reset_at = now.date().isoformat(), next_reset(now)
        if self.live:
            return LiveBudgetExhaustedError(
                day=day, spent=spent.total, scheduled_spent=spent.scheduled, live_spent=spent.live,
                live_budget=self.live_budget, daily_limit=self.daily_limit, requested=n,
                reset_at=reset_at, endpoint=endpoint)
        if not self.live_budget:
            return DailyBudgetExhaustedError(
                day=day, spent=spent.total, scheduled_spent=spent.scheduled, daily_limit=self.daily_limit,
                reserve=self.reserve, requested=n, reset_at=reset_at, endpoint=endpoint)
        # Scheduled runs and backfills share the cap less live polling's share: the error's figures
        # are that part's (so a backfill's share in the message is right), and it says so.
        shared = self.daily_limit - self.live_budget
        error = DailyBudgetExhaustedError(
            day=day, spent=spent.scheduled + spent.backfill, scheduled_spent=spent.scheduled,
            daily_limit=shared, reserve=self.reserve, requested=n, reset_at=reset_at, endpoint=endpoint)
        error.args = (f"{error} (Scheduled runs and backfills share {shared:,} requests a day: "
                      f"daily_request_limit, {self.daily_limit:,}, less live polling's share, "
                      f"live_daily_request_budget, {self.live_budget:,}; live polling has spent "
                      f"{spent.live:,} of it, not counted above.)",)
        return error

    def spent(self) -> int:
        """Requests counted today by every caller of the account."""
        return self.spent_by_kind().total

    def spent_by_kind(self) -> Spent:
        """Today's requests of the account's scheduled runs, backfills and live polling."""
        return self.counter.get(self._now().date())

    def remaining(self) -> int:
        """Requests this caller may still send today."""
        return max(0, self._left(self.spent_by_kind()))

    def reset_at(self) -> datetime:
        """When today's count starts over: the next 00:00 UTC."""
        return next_reset(self._now())


class UnlimitedBudget:
    """No tracking (``daily_request_limit`` 0): only Zoom's own daily 429 stops a run."""

    daily_limit = 0
    reserve = 0

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock

    def spend(self, n: int = 1, *, endpoint: str = "") -> None:
        check_count(n)

    def spent(self) -> None:
        return None

    def remaining(self) -> None:
        return None

    def reset_at(self) -> datetime:
        return next_reset(_utc(self._clock()))


# --- choosing the budget for a run ------------------------------------------------------------
def is_backfill(run_type: object, params: Mapping[str, Any] | None = None) -> bool:
    """Whether a run must leave the reserve: a backfill, or any run given a ``from_date``/``to_date``.

    ``run_type`` is ``dag_run.run_type`` (``DagRunType`` or its string value). A manual range
    reload reads past days like a backfill and can be as large, so it leaves the reserve too; a
    manual trigger without a range reads one interval like a scheduled run and does not.
    """
    value = getattr(run_type, "value", run_type)
    if value == "backfill":
        return True
    params = params or {}
    return bool(params.get("from_date") or params.get("to_date"))


def budget_for(
    *,
    daily_limit: int,
    reserve: int,
    backfill: bool,
    account: str,
    live: bool = False,
    live_budget: int = 0,
    redis_url: str = "",
    directory: str | os.PathLike[str] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> DailyBudget | UnlimitedBudget:
    """The budget of one run: shared through Redis when ``redis_url`` is set, else a file.

    ``daily_limit``, ``reserve`` and ``live_budget`` are the connection extras
    ``daily_request_limit``, ``backfill_reserve_requests`` and ``live_daily_request_budget``;
    ``backfill`` is ``is_backfill(...)`` of the run (the reserve applies only then); ``live``
    marks live polling (its requests count against ``live_budget`` only); ``account`` is
    ``account_key(api_key)``; ``redis_url`` the client's resolved rate-limiter URL; ``directory``
    the folder of the file counter used without one (the deployment's ``[zoom_qos] budget_dir``).
    ``daily_limit`` 0 turns tracking off (live polling's included). The settings are checked for
    every run, so a bad reserve or live budget shows up in the next scheduled run, not only in
    the next backfill or live poll: ``ZoomConfigError`` (permanent) naming the extras, whether a
    value is of the wrong type or out of range. Both ``backfill`` and ``live``, or neither
    ``redis_url`` nor ``directory``, is the caller's mistake: ``ValueError``.

    Listing sessions cannot defer, so it should take ``backfill=False`` even in a backfill: a
    run that starts after the backfill's share is spent then lists (2 × ⌈sessions/300⌉
    requests, counted as a scheduled run's, so from the reserve) and parks in extraction
    instead of failing.
    """
    for name, value in (("daily_request_limit", daily_limit), ("backfill_reserve_requests", reserve),
                        ("live_daily_request_budget", live_budget)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ZoomConfigError(f"Connection extra {name!r} must be a whole number of requests, 0 or "
                                  f"more; got {value!r}: set it to one, or remove it to use the default")
    if backfill and live:
        raise ValueError("A run is a backfill or live polling, not both")
    if daily_limit == 0:
        return UnlimitedBudget(clock)
    if reserve + live_budget >= daily_limit:
        if live_budget:
            raise ZoomConfigError(
                f"Connection extras 'backfill_reserve_requests' ({reserve:,}) and "
                f"'live_daily_request_budget' ({live_budget:,}) together must be less than "
                f"'daily_request_limit' ({daily_limit:,}), or backfills could never send a request: "
                "lower one of the first two, or raise the limit"
            )
        raise ZoomConfigError(
            f"Connection extra 'backfill_reserve_requests' ({reserve:,}) must be less than "
            f"'daily_request_limit' ({daily_limit:,}), or backfills could never send a request: "
            "lower the reserve, or raise the limit"
        )
    counter: DailyCounter
    if redis_url:
        counter = RedisDailyCounter(redis_url, account)
    else:
        if directory is None:
            raise ValueError("The daily request count needs Redis or a folder: pass redis_url or "
                             "directory ([zoom_qos] rate_limit_redis_url or budget_dir)")
        counter = FileDailyCounter(directory, account)
    return DailyBudget(counter, daily_limit, reserve if backfill else 0, clock, backfill=backfill,
                       live=live, live_budget=live_budget)
