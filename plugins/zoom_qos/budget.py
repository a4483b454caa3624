"""A daily request budget, so backfills spend Zoom's daily cap without starving the daily run.

Zoom caps every account at a number of requests per UTC day, shared by all endpoints
(Business+ 60,000, Pro 30,000) and reset at 00:00 UTC. A six-month backfill of a busy account
needs more than one day's cap. Learning that from Zoom's daily 429 would let a backfill spend the
whole cap and leave the scheduled run of the day nothing; so we count our own requests per UTC
day and refuse, *before sending*, any request past the caller's share:

- scheduled runs may use the whole ``daily_limit``;
- backfills and manual range reloads leave ``reserve`` requests of it for the scheduled runs.

A refusal raises ``DailyBudgetExhaustedError``, a ``ZoomDailyLimitError`` whose ``reset_at`` is
the next 00:00 UTC: the extraction operator parks on it exactly as on Zoom's own daily 429 and
resumes after the reset. Zoom's 429 stays the backstop for what we cannot count (other apps on
the same account, requests made before the counter existed).

The count lives where every process that talks to Zoom for the account sees it: in Redis on a
cluster (the rate limiter's ``rate_limit_redis_url``), else in a locked file on the one machine
a LocalExecutor uses. Call ``spend()`` once per HTTP request, retries included, right before
sending it: Zoom counts every request it receives.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol

from zoom_qos.errors import DailyBudgetExhaustedError

log = logging.getLogger(__name__)

# Defaults of the Zoom connection's extras ``daily_request_limit`` / ``backfill_reserve_requests``.
DEFAULT_DAILY_REQUEST_LIMIT = 60_000  # Business+; Pro accounts set 30,000; 0 turns tracking off
# A scheduled run reads its day plus the lookback day, about 2 × (sessions + sessions/300)
# requests: 10,000 covers the daily run of an account with up to ~5,000 sessions a day and still
# leaves a backfill 50,000 a day on Business+ (20,000 on Pro). Busier accounts raise it.
DEFAULT_BACKFILL_RESERVE_REQUESTS = 10_000

# How long a day's count outlives its day: long enough for clocks that disagree around midnight
# and for someone to look at yesterday's figure, short enough that nothing accumulates.
KEEP_DAYS = 2
BUDGET_DIR_ENV = "ZOOM_QOS_BUDGET_DIR"
_ACCOUNT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def utc_now() -> datetime:
    return datetime.now(UTC)


def next_reset(now: datetime) -> datetime:
    """The next 00:00 UTC strictly after ``now`` (at exactly 00:00 a fresh day has just begun)."""
    day = _utc(now).date()
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


def account_key(api_key: str) -> str:
    """The account's key in shared counters: the API key hashed, as the hook keys its rate limiter."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError(f"The budget's clock must return an aware datetime, got {now!r}")
    return now.astimezone(UTC)


def _check_count(n: int, what: str = "n") -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{what} must be a whole number of requests, at least 1; got {n!r}")


# --- counters ---------------------------------------------------------------------------------
class DailyCounter(Protocol):
    """Requests counted per UTC day, shared by whoever uses the same counter."""

    def add(self, day: date, n: int, limit: int | None = None) -> int | None:
        """Count ``n`` requests on ``day``; the new total.

        With ``limit``, atomically: if the total would pass ``limit`` nothing is counted and
        the answer is None.
        """
        ...

    def get(self, day: date) -> int:
        """Requests counted on ``day`` (0 if none)."""
        ...


class MemoryDailyCounter:
    """Counts in this process only (tests, or one process that is the account's only user)."""

    def __init__(self) -> None:
        self._counts: dict[date, int] = {}
        self._lock = threading.Lock()

    def add(self, day: date, n: int, limit: int | None = None) -> int | None:
        _check_count(n)
        with self._lock:
            total = self._counts.get(day, 0) + n
            if limit is not None and total > limit:
                return None
            if day not in self._counts:  # a new day: forget the old ones
                oldest = day - timedelta(days=KEEP_DAYS)
                self._counts = {d: c for d, c in self._counts.items() if d >= oldest}
            self._counts[day] = total
            return total

    def get(self, day: date) -> int:
        with self._lock:
            return self._counts.get(day, 0)


# Check and count in one step, so concurrent callers can neither overshoot the limit nor be
# refused because of another caller's request that is being taken back (INCRBY/DECRBY would).
# KEYS[1]: the day's key. ARGV[1]: n. ARGV[2]: the limit, -1 for none. ARGV[3]: expiry (s).
# Returns {1, new total} or {0, current total} (refused, nothing counted).
_ADD_WITHIN = """
local n = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if limit >= 0 and current + n > limit then
  return {0, current}
end
local total = redis.call('INCRBY', KEYS[1], n)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {1, total}
"""


class RedisDailyCounter:
    """The account's count shared by every task, process and worker of a cluster, in Redis.

    One key per account and UTC day (``zoom_qos:daily:{account}:{YYYY-MM-DD}``), expiring
    ``KEEP_DAYS`` after its last write, so old days vanish by themselves.
    """

    def __init__(self, url: str, account: str, *, prefix: str = "zoom_qos:daily") -> None:
        import redis  # only deployments that share a counter need the client

        if not account:
            raise ValueError("The daily counter needs an account key (see account_key())")
        self._redis = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._script = self._redis.register_script(_ADD_WITHIN)
        self._prefix = f"{prefix}:{account}"
        self.expiry_seconds = KEEP_DAYS * 86_400

    def key(self, day: date) -> str:
        return f"{self._prefix}:{day.isoformat()}"

    def add(self, day: date, n: int, limit: int | None = None) -> int | None:
        _check_count(n)
        args = [n, -1 if limit is None else limit, self.expiry_seconds]
        accepted, total = self._script(keys=[self.key(day)], args=args)
        return int(total) if int(accepted) else None

    def get(self, day: date) -> int:
        value = self._redis.get(self.key(day))
        return int(value) if value is not None else 0


class FileDailyCounter:
    """The account's count shared by the processes of one machine, in a small JSON file.

    For a LocalExecutor (every task a process on one host). ``{directory}/{account}.json`` maps
    UTC days to counts; every update holds an exclusive ``flock`` on ``{account}.lock`` and
    replaces the JSON file atomically, so concurrent processes and threads never lose a count
    and a killed writer never leaves half a file. ``flock`` locks belong to the open file, so
    threads of one process exclude each other too (each call opens the lock file anew).
    Processes on *other* machines do not see this file: a cluster needs the Redis counter.
    """

    def __init__(self, directory: str | os.PathLike[str], account: str) -> None:
        if not _ACCOUNT.match(account or ""):
            raise ValueError("The daily counter's account key must be 1-64 letters, digits, '_', '.' or '-'")
        self.directory = Path(directory)
        self.path = self.directory / f"{account}.json"
        self._lock_path = self.directory / f"{account}.lock"

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _read(self) -> dict[str, int]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            # Files are replaced atomically, so this is outside interference; Zoom's own 429
            # remains the backstop, and blocking every extraction over it would be worse.
            log.warning("Daily request counter %s is unreadable (%s); counting from 0", self.path, error)
            return {}
        if not isinstance(raw, dict):
            return {}
        return {str(k): int(v) for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool)}

    def _write(self, counts: dict[str, int]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{self.path.stem}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(counts, handle, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def add(self, day: date, n: int, limit: int | None = None) -> int | None:
        _check_count(n)
        with self._locked(fcntl.LOCK_EX):
            counts = self._read()
            total = counts.get(day.isoformat(), 0) + n
            if limit is not None and total > limit:
                return None
            oldest = (day - timedelta(days=KEEP_DAYS)).isoformat()
            counts = {d: c for d, c in counts.items() if d >= oldest}  # ISO dates sort as dates
            counts[day.isoformat()] = total
            self._write(counts)
            return total

    def get(self, day: date) -> int:
        with self._locked(fcntl.LOCK_SH):
            return self._read().get(day.isoformat(), 0)


# --- budgets ----------------------------------------------------------------------------------
class DailyBudget:
    """One caller's share of the account's requests for the current UTC day.

    The share is ``daily_limit - reserve``: scheduled runs pass ``reserve=0``; backfills pass
    the requests they must leave for the scheduled runs. Every caller counts into the same
    counter, so a scheduled run's requests also shrink what a backfill may still use. Holds no
    state of its own (the counter is thread- and process-safe), so threads may share one.
    """

    def __init__(
        self,
        counter: DailyCounter,
        daily_limit: int,
        reserve: int = 0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        for name, value in (("daily_limit", daily_limit), ("reserve", reserve)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number of requests, got {value!r}")
        if daily_limit < 1:
            raise ValueError(f"daily_limit must be at least 1, got {daily_limit}; without a known "
                             "cap use UnlimitedBudget (budget_for() does for daily_limit 0)")
        if not 0 <= reserve < daily_limit:
            raise ValueError(f"reserve must be at least 0 and less than daily_limit ({daily_limit:,}), "
                             f"got {reserve:,}")
        self.counter = counter
        self.daily_limit = daily_limit
        self.reserve = reserve
        self.allowance = daily_limit - reserve
        self._clock = clock

    def _now(self) -> datetime:
        return _utc(self._clock())

    def spend(self, n: int = 1, *, endpoint: str = "") -> int:
        """Count ``n`` requests about to be sent; returns how many remain for today.

        Raises ``DailyBudgetExhaustedError`` (``reset_at`` = next 00:00 UTC) when they would
        pass today's allowance, counting none of them: a refused request is never sent.
        """
        _check_count(n)
        now = self._now()
        total = self.counter.add(now.date(), n, self.allowance)
        if total is None:
            raise DailyBudgetExhaustedError(
                day=now.date().isoformat(), spent=self.counter.get(now.date()),
                daily_limit=self.daily_limit, reserve=self.reserve, requested=n,
                reset_at=next_reset(now), endpoint=endpoint,
            )
        return self.allowance - total

    def spent(self) -> int:
        """Requests counted today by every caller of the account."""
        return self.counter.get(self._now().date())

    def remaining(self) -> int:
        """Requests this caller may still send today."""
        return max(0, self.allowance - self.spent())

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
        _check_count(n)

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


def default_budget_dir() -> Path:
    """Where file counters live: ``$ZOOM_QOS_BUDGET_DIR``, else ``$AIRFLOW_HOME/zoom_qos_budget``."""
    explicit = os.environ.get(BUDGET_DIR_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("AIRFLOW_HOME", "").strip() or "~/airflow"  # Airflow's own default
    return Path(home).expanduser() / "zoom_qos_budget"


def budget_for(
    *,
    daily_limit: int,
    reserve: int,
    backfill: bool,
    account: str,
    redis_url: str = "",
    directory: str | os.PathLike[str] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> DailyBudget | UnlimitedBudget:
    """The budget of one run: shared through Redis when ``redis_url`` is set, else a file.

    ``daily_limit`` and ``reserve`` are the connection extras ``daily_request_limit`` and
    ``backfill_reserve_requests``; ``backfill`` is ``is_backfill(...)`` of the run (the reserve
    applies only then); ``account`` is ``account_key(api_key)``; ``redis_url`` the hook's
    resolved rate-limiter URL (extra or ``ZOOM_QOS_RATE_LIMIT_REDIS_URL``); ``directory``
    overrides ``default_budget_dir()``. ``daily_limit`` 0 turns tracking off. The settings
    are checked for every run, so a bad reserve shows up in the next scheduled run, not only
    in the next backfill.

    Listing sessions cannot defer, so it should take ``backfill=False`` even in a backfill: a
    run that starts after the backfill's share is spent then lists (a few dozen requests, from
    the reserve) and parks in extraction instead of failing.
    """
    for name, value in (("daily_request_limit", daily_limit), ("backfill_reserve_requests", reserve)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"Connection extra {name!r} must be a whole number of requests, 0 or more; "
                             f"got {value!r}")
    if daily_limit == 0:
        return UnlimitedBudget(clock)
    if reserve >= daily_limit:
        raise ValueError(
            f"Connection extra 'backfill_reserve_requests' ({reserve:,}) must be less than "
            f"'daily_request_limit' ({daily_limit:,}), or backfills could never send a request"
        )
    counter: DailyCounter
    if redis_url:
        counter = RedisDailyCounter(redis_url, account)
    else:
        counter = FileDailyCounter(directory if directory is not None else default_budget_dir(), account)
    return DailyBudget(counter, daily_limit, reserve if backfill else 0, clock)
