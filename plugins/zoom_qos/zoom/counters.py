"""Where an account's daily request count lives, so every process that talks to Zoom for it sees it.

The budget (``zoom_qos.zoom.budget``, whose docstring explains the shares and the reserve) decides
what a caller may spend; a counter only keeps the count and checks a request against a limit *in
the same atomic step*, because concurrent callers that checked and counted apart could together
pass the limit. Two stores, by deployment: ``RedisDailyCounter`` for a cluster (every worker sees
the rate limiter's Redis), ``FileDailyCounter`` for the one machine a LocalExecutor uses.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Literal, NamedTuple, Protocol, get_args

from zoom_qos.zoom.retry import DEFAULT_MAX_TOTAL_SECONDS
from zoom_qos.zoom.shared_redis import RedisOutage, connect

log = logging.getLogger(__name__)

# How long a day's count outlives its day: long enough for clocks that disagree around midnight
# and for someone to look at yesterday's figure, short enough that nothing accumulates.
KEEP_DAYS = 2
_ACCOUNT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

#: Who sends a request, for the budget's shares: a scheduled run (or a manual trigger without
#: dates), a backfill or range reload, or live polling.
RequestKind = Literal["scheduled", "backfill", "live"]
REQUEST_KINDS: tuple[RequestKind, ...] = get_args(RequestKind)


def check_count(n: int, what: str = "n") -> None:
    """Refuse anything but a whole number of requests, at least 1 (``True`` is not a count)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{what} must be a whole number of requests, at least 1; got {n!r}")


class Spent(NamedTuple):
    """One UTC day's requests of an account, by kind of caller.

    Counted apart because each kind has its own share (``zoom_qos.zoom.budget`` explains them):
    live polling's is carved out of the cap, and a backfill's depends on what the scheduled runs
    spent (the reserve arithmetic); one sum could not tell.
    """

    scheduled: int = 0
    backfill: int = 0
    live: int = 0

    @property
    def total(self) -> int:
        return self.scheduled + self.backfill + self.live

    def left(self, limit: int, reserve: int = 0, *, kind: RequestKind = "scheduled",
             live_budget: int = 0) -> int:
        """Requests a caller of ``kind`` may still send under ``limit`` (negative when past it).

        The one implementation of the budget's shares (``zoom_qos.zoom.budget`` explains them);
        the Redis script mirrors it. ``live_budget`` is live polling's share, carved out of
        ``limit`` first; scheduled runs and backfills share the rest. Nobody passes ``limit``.
        """
        _check_kind(kind)
        overall = limit - self.total
        if kind == "live":
            return min(live_budget - self.live, overall)
        held = max(reserve, self.scheduled) if kind == "backfill" else self.scheduled
        return min(limit - live_budget - held - self.backfill, overall)

    def plus(self, n: int, *, kind: RequestKind) -> Spent:
        _check_kind(kind)
        return self._replace(**{kind: getattr(self, kind) + n})


class DailyCounter(Protocol):
    """Requests counted per UTC day and kind of caller, shared by whoever uses the same counter."""

    def add(self, day: date, n: int, *, kind: RequestKind = "scheduled", limit: int | None = None,
            reserve: int = 0, live_budget: int = 0) -> tuple[bool, Spent]:
        """Count ``n`` requests of a scheduled run, a backfill or live polling on ``day``.

        With ``limit``, atomically: if ``n`` is more than ``Spent.left(limit, reserve, kind=...,
        live_budget=...)`` nothing is counted. Returns whether they were counted and the day's
        counts after the call (so a refusal reports the counts it was refused on).
        """
        ...

    def get(self, day: date) -> Spent:
        """Requests counted on ``day`` (zeros if none)."""
        ...


def _check_kind(kind: object) -> None:
    if kind not in REQUEST_KINDS:
        raise ValueError(f"kind must be one of {', '.join(REQUEST_KINDS)}; got {kind!r}")


def _check_add(n: int, kind: RequestKind, limit: int | None, reserve: int, live_budget: int) -> None:
    check_count(n)
    _check_kind(kind)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise ValueError(f"limit must be a whole number of requests or None, got {limit!r}")
    for name, value in (("reserve", reserve), ("live_budget", live_budget)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a whole number of requests, 0 or more; got {value!r}")


def _within(spent: Spent, n: int, kind: RequestKind, limit: int | None, reserve: int,
            live_budget: int) -> bool:
    return limit is None or n <= spent.left(limit, reserve, kind=kind, live_budget=live_budget)


# Check and count in one step, so concurrent callers can neither overshoot the limit nor be
# refused because of another caller's request that is being taken back (INCRBY/DECRBY would).
# All keys are read in the same step: every kind's requests change the others' room.
# KEYS[1..3]: the day's scheduled, backfill and live keys (a missing key counts 0, so days counted
# before live polling existed read as they were). ARGV[1]: n. ARGV[2]: the kind, 1 = scheduled,
# 2 = backfill, 3 = live (the index of its key). ARGV[3]: the limit, -1 for none. ARGV[4]: the
# backfill's reserve. ARGV[5]: expiry (s). ARGV[6]: live polling's share of the limit. Returns
# {accepted 1/0, scheduled, backfill, live, epoch} after the call (a refusal counts nothing).
# Mirrors Spent.left(). KEYS[4] holds the day's epoch: a token the first call of the day (or the
# first after Redis lost its keys) sets to ARGV[7]; a new epoch tells callers the count started over.
_ADD_WITHIN = """
local epoch = redis.call('GET', KEYS[4])
if not epoch then
  epoch = ARGV[7]
  redis.call('SET', KEYS[4], epoch, 'EX', tonumber(ARGV[5]))
end
local n = tonumber(ARGV[1])
local kind = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local reserve = tonumber(ARGV[4])
local live_budget = tonumber(ARGV[6])
local counts = {}
for i = 1, 3 do
  counts[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
end
if limit >= 0 then
  local left
  if kind == 3 then
    left = live_budget - counts[3]
  else
    local held = counts[1]
    if kind == 2 and reserve > held then
      held = reserve
    end
    left = limit - live_budget - held - counts[2]
  end
  local overall = limit - counts[1] - counts[2] - counts[3]
  if overall < left then
    left = overall
  end
  if n > left then
    return {0, counts[1], counts[2], counts[3], epoch}
  end
end
counts[kind] = redis.call('INCRBY', KEYS[kind], n)
for i = 1, 4 do
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[5]))
end
return {1, counts[1], counts[2], counts[3], epoch}
"""


class _Counted(NamedTuple):
    """What one process counted into one Redis day, and under which epoch of it."""

    epoch: bytes
    spent: Spent


class RedisDailyCounter:
    """The account's counts shared by every task, process and worker of a cluster, in Redis.

    Three keys per account and UTC day, ``zoom_qos:daily:{account}:{YYYY-MM-DD}:scheduled``,
    ``...:backfill`` and ``...:live``, expiring ``KEEP_DAYS`` after the day's last write, so old
    days vanish by themselves. One Lua script reads them all and counts, so the check sees every
    kind at once. A missing key counts 0: the keys of a day counted before live polling existed
    (no ``:live``) read as they were.

    While Redis is away a call waits for it (``zoom.shared_redis``: nothing is sent meanwhile, so
    nothing goes uncounted). A Redis that comes back without the day's keys (restarted without
    persistence) would forget what was sent. A fourth key, ``...:epoch``, tells: the day's first
    call sets it to a token of its own, so a new token means the count started over; each process
    then puts back, once, what its counters had counted under the old one. The count so never drops
    below what the processes still running sent (all of a run's tasks under ``airflow dags test``;
    the running tasks of a cluster). What tasks that ended before the restart counted is gone with
    it: run Redis with ``appendonly yes`` where that matters.
    """

    #: What this process counted, per Redis server, account and day (shared by its counters).
    _counted: dict[tuple[str, str, date], _Counted] = {}
    _counted_lock = threading.Lock()

    def __init__(self, url: str, account: str, *, prefix: str = "zoom_qos:daily",
                 max_outage_seconds: float = DEFAULT_MAX_TOTAL_SECONDS) -> None:
        if not account:
            raise ValueError("The daily counter needs an account key (see account_key())")
        self._redis = connect(url)
        self._outage = RedisOutage(url, max_outage_seconds)
        self._script = self._redis.register_script(_ADD_WITHIN)
        self._prefix = f"{prefix}:{account}"
        self.expiry_seconds = KEEP_DAYS * 86_400
        self._url = url

    def keys(self, day: date) -> tuple[str, str, str]:
        """The day's (scheduled, backfill, live) keys, in ``Spent``'s order."""
        base = f"{self._prefix}:{day.isoformat()}"
        return f"{base}:scheduled", f"{base}:backfill", f"{base}:live"

    def add(self, day: date, n: int, *, kind: RequestKind = "scheduled", limit: int | None = None,
            reserve: int = 0, live_budget: int = 0) -> tuple[bool, Spent]:
        _check_add(n, kind, limit, reserve, live_budget)
        args = [n, REQUEST_KINDS.index(kind) + 1, -1 if limit is None else limit, reserve,
                self.expiry_seconds, live_budget]
        keys = [*self.keys(day), self.epoch_key(day)]
        token = uuid.uuid4().hex
        accepted, *counts, epoch = self._outage.call(
            "counting a request", lambda: self._script(keys=keys, args=[*args, token]))
        spent = Spent(*(int(count) for count in counts))
        key = (self._url, self._prefix, day)
        with self._counted_lock:
            before = self._counted.get(key)
            lost = before.spent if before is not None and before.epoch != epoch else Spent()
            mine = before.spent if before is not None else Spent()
            self._counted[key] = _Counted(epoch, mine.plus(n, kind=kind) if int(accepted) else mine)
        return bool(int(accepted)), self._restore(day, spent, lost)

    def epoch_key(self, day: date) -> str:
        """The key whose token changes when the day's count starts over (see the class docstring)."""
        return f"{self._prefix}:{day.isoformat()}:epoch"

    def _restore(self, day: date, spent: Spent, lost: Spent) -> Spent:
        """``spent`` as Redis returned it, after putting back ``lost``: what this process had
        counted before Redis started the day over."""
        if not lost.total:
            return spent

        def put_back() -> None:
            pipe = self._redis.pipeline()
            for key, missing in zip(self.keys(day), lost, strict=True):
                if missing:
                    pipe.incrby(key, missing)
                    pipe.expire(key, self.expiry_seconds)
            pipe.execute()

        self._outage.call("restoring the daily count", put_back)
        log.warning("Redis had lost %d of this process's requests counted for %s (restarted without "
                    "persistence?): counted again.", lost.total, day.isoformat())
        return Spent(*(s + m for s, m in zip(spent, lost, strict=True)))

    def get(self, day: date) -> Spent:
        values = self._outage.call("reading the daily count", lambda: self._redis.mget(self.keys(day)))
        return Spent(*(int(count or 0) for count in values))


class FileDailyCounter:
    """The account's counts shared by the processes of one machine, in a small JSON file.

    For a LocalExecutor (every task a process on one host). ``{directory}/{account}.json`` maps
    UTC days to ``{"scheduled": n, "backfill": n, "live": n}`` (a kind missing from a day, as
    in files written before live polling existed, counts 0); every update holds an exclusive ``flock``
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

    def add(self, day: date, n: int, *, kind: RequestKind = "scheduled", limit: int | None = None,
            reserve: int = 0, live_budget: int = 0) -> tuple[bool, Spent]:
        _check_add(n, kind, limit, reserve, live_budget)
        with self._locked(fcntl.LOCK_EX):
            counts = self._read()
            spent = counts.get(day.isoformat(), Spent())
            if not _within(spent, n, kind, limit, reserve, live_budget):
                return False, spent
            oldest = (day - timedelta(days=KEEP_DAYS)).isoformat()
            counts = {d: c for d, c in counts.items() if d >= oldest}  # ISO dates sort as dates
            counts[day.isoformat()] = spent = spent.plus(n, kind=kind)
            self._write(counts)
            return True, spent

    def get(self, day: date) -> Spent:
        with self._locked(fcntl.LOCK_SH):
            return self._read().get(day.isoformat(), Spent())


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
