"""A daily request budget, so backfills spend Zoom's daily cap without starving the daily run.

Zoom caps every account at a number of requests per UTC day, shared by all endpoints
(Business+ 60,000, Pro 30,000) and reset at 00:00 UTC. A six-month backfill of a busy account
needs more than one day's cap. Learning that from Zoom's daily 429 would let a backfill spend the
whole cap and leave the scheduled run of the day nothing; so we count our own requests per UTC
day and refuse, *before sending*, any request past the caller's share:

- scheduled runs may use the whole ``daily_limit``;
- backfills and manual range reloads leave ``reserve`` requests of it for the scheduled runs,
  until those spend them: scheduled and backfill requests are counted apart, and a backfill may
  use ``daily_limit - max(reserve, scheduled requests)``, so the scheduled run's requests are
  not charged to it twice (as spend and as reserve).

A refusal raises ``DailyBudgetExhaustedError``, a ``DailyLimitReached`` (like Zoom's own daily
429) whose ``reset_at`` is the next 00:00 UTC: the extraction operator parks on it and resumes
after the reset. Zoom's 429 stays the backstop for what we cannot count (other apps on
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
from typing import Any, NamedTuple, Protocol

from zoom_qos.errors import DailyBudgetExhaustedError

log = logging.getLogger(__name__)

# Defaults of the Zoom connection's extras ``daily_request_limit`` / ``backfill_reserve_requests``.
DEFAULT_DAILY_REQUEST_LIMIT = 60_000  # Business+; Pro accounts set 30,000; 0 turns tracking off
# A run reads its own day's sessions (the lookback day's are loaded already) and lists two days:
# about sessions + 2 × ⌈sessions/300⌉ requests. 10,000 covers the daily run of an account with up
# to ~9,500 single-page sessions a day, with room for a backfill's listings (which count as a
# scheduled run's), and leaves a backfill 50,000 a day on Business+ (20,000 on Pro). Busier
# accounts raise it to about their scheduled run's requests.
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
class Spent(NamedTuple):
    """One UTC day's requests of an account, by kind of caller.

    Counted apart because the reserve is room held for scheduled runs *until they use it*: what
    they spend comes out of the reserve, what backfills spend comes out of the rest. One sum
    would charge a scheduled run's requests twice to a backfill, as spend and as reserve.
    """

    scheduled: int = 0
    backfill: int = 0

    @property
    def total(self) -> int:
        return self.scheduled + self.backfill

    def left(self, limit: int, reserve: int = 0, *, backfill: bool = False) -> int:
        """Requests a caller may still send under ``limit`` (negative when past it).

        A scheduled caller may use all of ``limit``; a backfill leaves ``reserve`` to the
        scheduled runs, less what they already spent: ``limit - max(reserve, scheduled) - backfill``.
        """
        held = max(reserve, self.scheduled) if backfill else self.scheduled
        return limit - held - self.backfill

    def plus(self, n: int, *, backfill: bool) -> Spent:
        if backfill:
            return self._replace(backfill=self.backfill + n)
        return self._replace(scheduled=self.scheduled + n)


class DailyCounter(Protocol):
    """Requests counted per UTC day and kind of caller, shared by whoever uses the same counter."""

    def add(self, day: date, n: int, *, backfill: bool = False, limit: int | None = None,
            reserve: int = 0) -> tuple[bool, Spent]:
        """Count ``n`` requests of a scheduled run or a backfill on ``day``.

        With ``limit``, atomically: if ``n`` is more than ``Spent.left(limit, reserve,
        backfill=...)`` nothing is counted. Returns whether they were counted and the day's
        counts after the call (so a refusal reports the counts it was refused on).
        """
        ...

    def get(self, day: date) -> Spent:
        """Requests counted on ``day`` (zeros if none)."""
        ...


def _check_add(n: int, limit: int | None, reserve: int) -> None:
    _check_count(n)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise ValueError(f"limit must be a whole number of requests or None, got {limit!r}")
    if isinstance(reserve, bool) or not isinstance(reserve, int) or reserve < 0:
        raise ValueError(f"reserve must be a whole number of requests, 0 or more; got {reserve!r}")


def _within(spent: Spent, n: int, backfill: bool, limit: int | None, reserve: int) -> bool:
    return limit is None or n <= spent.left(limit, reserve, backfill=backfill)


class MemoryDailyCounter:
    """Counts in this process only (tests, or one process that is the account's only user)."""

    def __init__(self) -> None:
        self._counts: dict[date, Spent] = {}
        self._lock = threading.Lock()

    def add(self, day: date, n: int, *, backfill: bool = False, limit: int | None = None,
            reserve: int = 0) -> tuple[bool, Spent]:
        _check_add(n, limit, reserve)
        with self._lock:
            spent = self._counts.get(day, Spent())
            if not _within(spent, n, backfill, limit, reserve):
                return False, spent
            if day not in self._counts:  # a new day: forget the old ones
                oldest = day - timedelta(days=KEEP_DAYS)
                self._counts = {d: c for d, c in self._counts.items() if d >= oldest}
            self._counts[day] = spent = spent.plus(n, backfill=backfill)
            return True, spent

    def get(self, day: date) -> Spent:
        with self._lock:
            return self._counts.get(day, Spent())


# Check and count in one step, so concurrent callers can neither overshoot the limit nor be
# refused because of another caller's request that is being taken back (INCRBY/DECRBY would).
# Both keys are read in the same step: a scheduled run's requests change what a backfill may use.
# KEYS[1], KEYS[2]: the day's scheduled and backfill keys. ARGV[1]: n. ARGV[2]: 1 to count a
# backfill's requests, 0 a scheduled run's. ARGV[3]: the limit, -1 for none. ARGV[4]: the
# backfill's reserve. ARGV[5]: expiry (s). Returns {accepted 1/0, scheduled, backfill} after the
# call (a refusal counts nothing). Mirrors Spent.left().
_ADD_WITHIN = """
local n = tonumber(ARGV[1])
local is_backfill = ARGV[2] == '1'
local limit = tonumber(ARGV[3])
local reserve = tonumber(ARGV[4])
local scheduled = tonumber(redis.call('GET', KEYS[1]) or '0')
local backfill = tonumber(redis.call('GET', KEYS[2]) or '0')
local held = scheduled
if is_backfill and reserve > held then
  held = reserve
end
if limit >= 0 and held + backfill + n > limit then
  return {0, scheduled, backfill}
end
if is_backfill then
  backfill = redis.call('INCRBY', KEYS[2], n)
else
  scheduled = redis.call('INCRBY', KEYS[1], n)
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
return {1, scheduled, backfill}
"""


class RedisDailyCounter:
    """The account's counts shared by every task, process and worker of a cluster, in Redis.

    Two keys per account and UTC day, ``zoom_qos:daily:{account}:{YYYY-MM-DD}:scheduled`` and
    ``...:backfill``, both expiring ``KEEP_DAYS`` after the day's last write, so old days vanish
    by themselves. One Lua script reads both and counts, so the check sees both kinds at once.
    """

    def __init__(self, url: str, account: str, *, prefix: str = "zoom_qos:daily") -> None:
        import redis  # only deployments that share a counter need the client

        if not account:
            raise ValueError("The daily counter needs an account key (see account_key())")
        self._redis = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._script = self._redis.register_script(_ADD_WITHIN)
        self._prefix = f"{prefix}:{account}"
        self.expiry_seconds = KEEP_DAYS * 86_400

    def keys(self, day: date) -> tuple[str, str]:
        """The day's (scheduled, backfill) keys."""
        base = f"{self._prefix}:{day.isoformat()}"
        return f"{base}:scheduled", f"{base}:backfill"

    def add(self, day: date, n: int, *, backfill: bool = False, limit: int | None = None,
            reserve: int = 0) -> tuple[bool, Spent]:
        _check_add(n, limit, reserve)
        args = [n, int(backfill), -1 if limit is None else limit, reserve, self.expiry_seconds]
        accepted, scheduled, backfilled = self._script(keys=list(self.keys(day)), args=args)
        return bool(int(accepted)), Spent(int(scheduled), int(backfilled))

    def get(self, day: date) -> Spent:
        scheduled, backfill = self._redis.mget(self.keys(day))
        return Spent(int(scheduled or 0), int(backfill or 0))


class FileDailyCounter:
    """The account's counts shared by the processes of one machine, in a small JSON file.

    For a LocalExecutor (every task a process on one host). ``{directory}/{account}.json`` maps
    UTC days to ``{"scheduled": n, "backfill": n}``; every update holds an exclusive ``flock``
    on ``{account}.lock`` and replaces the JSON file atomically, so concurrent processes and
    threads never lose a count and a killed writer never leaves half a file. ``flock`` locks
    belong to the open file, so threads of one process exclude each other too (each call opens
    the lock file anew). Processes on *other* machines do not see this file: a cluster needs the
    Redis counter.
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

    def _read(self) -> dict[str, Spent]:
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
        counts = {}
        for day, value in raw.items():
            if isinstance(value, dict):
                counts[str(day)] = Spent(*(v if _is_count(v := value.get(kind, 0)) else 0
                                           for kind in Spent._fields))
        return counts

    def _write(self, counts: dict[str, Spent]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{self.path.stem}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump({day: spent._asdict() for day, spent in counts.items()}, handle, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def add(self, day: date, n: int, *, backfill: bool = False, limit: int | None = None,
            reserve: int = 0) -> tuple[bool, Spent]:
        _check_add(n, limit, reserve)
        with self._locked(fcntl.LOCK_EX):
            counts = self._read()
            spent = counts.get(day.isoformat(), Spent())
            if not _within(spent, n, backfill, limit, reserve):
                return False, spent
            oldest = (day - timedelta(days=KEEP_DAYS)).isoformat()
            counts = {d: c for d, c in counts.items() if d >= oldest}  # ISO dates sort as dates
            counts[day.isoformat()] = spent = spent.plus(n, backfill=backfill)
            self._write(counts)
            return True, spent

    def get(self, day: date) -> Spent:
        with self._locked(fcntl.LOCK_SH):
            return self._read().get(day.isoformat(), Spent())


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --- budgets ----------------------------------------------------------------------------------
class DailyBudget:
    """One caller's share of the account's requests for the current UTC day.

    Scheduled runs (``backfill=False``, ``reserve=0``) may use all of ``daily_limit``. Backfills
    (``backfill=True``) leave ``reserve`` requests to the scheduled runs *until those spend
    them*: a backfill may send while ``max(reserve, scheduled) + backfill + n <= daily_limit``,
    so its day holds ``daily_limit - max(reserve, scheduled runs' requests)`` rather than
    ``daily_limit - reserve - scheduled runs' requests``. Every caller counts into the same
    counter, by kind. Holds no state of its own (the counter is thread- and process-safe), so
    threads may share one.
    """

    def __init__(
        self,
        counter: DailyCounter,
        daily_limit: int,
        reserve: int = 0,
        clock: Callable[[], datetime] = utc_now,
        *,
        backfill: bool = False,
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
        if reserve and not backfill:
            raise ValueError("Only a backfill leaves a reserve: scheduled runs are what it is kept for")
        self.counter = counter
        self.daily_limit = daily_limit
        self.reserve = reserve
        self._counter_failed = False
        self.backfill = backfill
        self._clock = clock

    def _now(self) -> datetime:
        return _utc(self._clock())

    def _left(self, spent: Spent) -> int:
        return spent.left(self.daily_limit, self.reserve, backfill=self.backfill)

    def spend(self, n: int = 1, *, endpoint: str = "") -> int:
        """Count ``n`` requests about to be sent; returns how many remain for this caller today.

        Raises ``DailyBudgetExhaustedError`` (``reset_at`` = next 00:00 UTC) when they would
        pass today's share, counting none of them: a refused request is never sent.
        """
        _check_count(n)
        now = self._now()
        try:
            accepted, spent = self.counter.add(now.date(), n, backfill=self.backfill,
                                               limit=self.daily_limit, reserve=self.reserve)
        except OSError as error:
            # The count is bookkeeping: an unwritable folder or a full disk must not stop the
            # extraction. Zoom's own daily 429 remains the backstop.
            if not self._counter_failed:
                self._counter_failed = True
                log.warning("The daily request count cannot be kept (%s): requests are not counted "
                            "against daily_request_limit; set ZOOM_QOS_BUDGET_DIR to a writable "
                            "folder or configure rate_limit_redis_url.", error)
            return self.daily_limit
        if not accepted:
            raise DailyBudgetExhaustedError(
                day=now.date().isoformat(), spent=spent.total, scheduled_spent=spent.scheduled,
                daily_limit=self.daily_limit, reserve=self.reserve,
                requested=n, reset_at=next_reset(now), endpoint=endpoint,
            )
        return max(0, self._left(spent))

    def spent(self) -> int:
        """Requests counted today by every caller of the account."""
        return self.spent_by_kind().total

    def spent_by_kind(self) -> Spent:
        """Today's requests of the account's scheduled runs and of its backfills."""
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
    run that starts after the backfill's share is spent then lists (2 × ⌈sessions/300⌉
    requests, counted as a scheduled run's, so from the reserve) and parks in extraction
    instead of failing.
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
    return DailyBudget(counter, daily_limit, reserve if backfill else 0, clock, backfill=backfill)
