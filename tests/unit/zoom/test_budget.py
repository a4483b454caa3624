"""The daily request budget: exact limits, refusals that cost nothing, the backfill reserve (held
for scheduled runs until they spend it), the 00:00 UTC rollover, and counts shared across
threads, processes and Redis."""

from __future__ import annotations

import json
import multiprocessing
import threading
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from zoom_qos.errors import DailyBudgetExhaustedError, DailyLimitReached, ZoomApiError
from zoom_qos.zoom.budget import (
    KEEP_DAYS,
    DailyBudget,
    FileDailyCounter,
    MemoryDailyCounter,
    RedisDailyCounter,
    Spent,
    UnlimitedBudget,
    account_key,
    budget_for,
    default_budget_dir,
    is_backfill,
    next_reset,
)

DAY = date(2026, 11, 26)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock():
    return FakeClock(datetime(2026, 11, 26, 13, 45, tzinfo=UTC))


@pytest.fixture
def redis_account(redis_url):
    """A unique account per test, its keys deleted afterwards."""
    import redis

    account = f"test-{uuid.uuid4().hex[:12]}"
    yield account
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"zoom_qos:daily:{account}:*"):
        client.delete(key)


# --- the budget's arithmetic ------------------------------------------------------------------
def test_the_allowance_is_spent_to_the_exact_request_then_refused(clock):
    budget = DailyBudget(MemoryDailyCounter(), daily_limit=10, clock=clock)
    remaining = [budget.spend() for _ in range(10)]
    assert remaining == list(range(9, -1, -1))
    with pytest.raises(DailyBudgetExhaustedError):
        budget.spend()
    assert budget.spent() == 10
    assert budget.remaining() == 0


def test_a_refused_request_is_not_counted(clock):
    counter = MemoryDailyCounter()
    budget = DailyBudget(counter, daily_limit=10, clock=clock)
    budget.spend(8)
    with pytest.raises(DailyBudgetExhaustedError) as refused:
        budget.spend(3)  # all or nothing: not 2 of the 3
    assert refused.value.requested == 3
    assert counter.get(DAY) == Spent(8, 0)
    for _ in range(3):  # refusals again and again cost nothing either
        with pytest.raises(DailyBudgetExhaustedError):
            budget.spend(3)
    assert budget.spend(2) == 0
    assert counter.get(DAY) == Spent(10, 0)


@pytest.fixture(params=["memory", "file", "redis"])
def make_counter(request, tmp_path):
    """Builds counters of one kind that share one account's counts, as separate processes would."""
    if request.param == "memory":
        shared = MemoryDailyCounter()
        return lambda: shared
    if request.param == "file":
        return lambda: FileDailyCounter(tmp_path, "acct")
    url = request.getfixturevalue("redis_url")
    account = request.getfixturevalue("redis_account")
    return lambda: RedisDailyCounter(url, account)


def _budgets(make_counter, clock, daily_limit=100, reserve=30) -> tuple[DailyBudget, DailyBudget]:
    """(scheduled, backfill) budgets of one account."""
    return (DailyBudget(make_counter(), daily_limit, clock=clock),
            DailyBudget(make_counter(), daily_limit, reserve, clock=clock, backfill=True))


def test_a_backfill_alone_gets_the_limit_less_the_reserve_exactly(make_counter, clock):
    scheduled, backfill = _budgets(make_counter, clock)
    assert backfill.remaining() == 70
    assert backfill.spend(69) == 1
    assert backfill.spend() == 0
    with pytest.raises(DailyBudgetExhaustedError) as refused:
        backfill.spend()
    assert (refused.value.spent, refused.value.scheduled_spent) == (70, 0)
    assert backfill.spent_by_kind() == Spent(scheduled=0, backfill=70)  # the refusal counted nothing
    # the reserve is still there for the scheduled run, to the last request
    assert scheduled.remaining() == 30
    assert scheduled.spend(29) == 1
    assert scheduled.spend() == 0
    with pytest.raises(DailyBudgetExhaustedError):
        scheduled.spend()
    assert scheduled.spent_by_kind() == Spent(scheduled=30, backfill=70)


def test_a_scheduled_run_alone_gets_the_whole_limit_exactly(make_counter, clock):
    scheduled, backfill = _budgets(make_counter, clock)
    assert scheduled.spend(99) == 1
    assert backfill.remaining() == 1  # 100 - max(30, 99): the reserve is spent, not charged again
    assert scheduled.spend() == 0
    assert backfill.remaining() == 0
    with pytest.raises(DailyBudgetExhaustedError):
        scheduled.spend()
    with pytest.raises(DailyBudgetExhaustedError):
        backfill.spend()
    assert scheduled.spent_by_kind() == Spent(scheduled=100, backfill=0)


@pytest.mark.parametrize(
    ("scheduled_spent", "backfill_share"),
    [(0, 70), (10, 70), (30, 70), (31, 69), (50, 50), (100, 0)],
)
def test_the_reserve_shrinks_as_the_scheduled_run_spends_it(make_counter, clock, scheduled_spent,
                                                            backfill_share):
    # share = limit - max(reserve, scheduled): the scheduled run's requests come out of the
    # reserve first, and only what it spends beyond the reserve comes out of the backfill's share
    scheduled, backfill = _budgets(make_counter, clock)
    if scheduled_spent:
        scheduled.spend(scheduled_spent)
    assert backfill.remaining() == backfill_share
    if backfill_share:
        assert backfill.spend(backfill_share) == 0
    with pytest.raises(DailyBudgetExhaustedError):
        backfill.spend()
    assert backfill.spent_by_kind() == Spent(scheduled_spent, backfill_share)


def test_a_scheduled_run_sized_like_the_reserve_is_not_charged_twice(make_counter, clock):
    # the reserve is sized to the scheduled run (30 requests): the backfill keeps 100 - 30, not
    # 100 - 30 - 30, whichever of them spends first
    scheduled, backfill = _budgets(make_counter, clock)
    backfill.spend(35)
    scheduled.spend(30)
    assert backfill.remaining() == 35
    backfill.spend(35)
    with pytest.raises(DailyBudgetExhaustedError) as refused:
        backfill.spend()
    assert (refused.value.spent, refused.value.scheduled_spent) == (100, 30)
    with pytest.raises(DailyBudgetExhaustedError):
        scheduled.spend()  # the cap is reached: the scheduled run is refused too


def test_a_scheduled_run_may_spend_past_the_reserve_what_backfills_left(make_counter, clock):
    scheduled, backfill = _budgets(make_counter, clock)
    backfill.spend(40)
    assert scheduled.remaining() == 60
    scheduled.spend(55)
    assert backfill.remaining() == 5  # 100 - max(30, 55) - 40
    with pytest.raises(DailyBudgetExhaustedError):
        backfill.spend(6)
    backfill.spend(5)
    assert (scheduled.remaining(), backfill.remaining()) == (0, 0)
    assert scheduled.spent() == 100


def test_the_factory_counts_each_kind_apart(tmp_path, clock):
    common = dict(daily_limit=100, reserve=30, account="acct", directory=tmp_path, clock=clock)
    backfill = budget_for(backfill=True, **common)
    scheduled = budget_for(backfill=False, **common)
    assert (backfill.reserve, scheduled.reserve) == (30, 0)
    assert (backfill.backfill, scheduled.backfill) == (True, False)
    backfill.spend(3)
    scheduled.spend(2)
    assert json.loads((tmp_path / "acct.json").read_text()) == {
        "2026-11-26": {"scheduled": 2, "backfill": 3}}
    assert scheduled.spent_by_kind() == Spent(2, 3) and scheduled.spent() == 5


@pytest.mark.parametrize(
    ("run_type", "params", "expected"),
    [
        ("backfill", {}, True),
        ("scheduled", {}, False),
        ("manual", {}, False),
        ("manual", {"from_date": None, "to_date": None}, False),
        ("manual", {"from_date": "2026-06-01", "to_date": "2026-06-30"}, True),
        ("manual", {"to_date": "2026-06-30"}, True),
        ("asset_triggered", {}, False),
    ],
)
def test_which_runs_leave_the_reserve(run_type, params, expected):
    assert is_backfill(run_type, params) is expected


def test_airflows_run_type_enum_is_understood():
    from airflow.utils.types import DagRunType

    assert is_backfill(DagRunType.BACKFILL_JOB) is True
    assert is_backfill(DagRunType.SCHEDULED, None) is False


# --- the day and its reset --------------------------------------------------------------------
def test_the_count_starts_over_at_midnight_utc(clock):
    clock.now = datetime(2026, 11, 26, 23, 59, 59, 999_999, tzinfo=UTC)
    counter = MemoryDailyCounter()
    budget = DailyBudget(counter, daily_limit=5, clock=clock)
    budget.spend(5)
    with pytest.raises(DailyBudgetExhaustedError) as refused:
        budget.spend()
    assert refused.value.reset_at == datetime(2026, 11, 27, tzinfo=UTC)
    clock.now = datetime(2026, 11, 27, tzinfo=UTC)  # 00:00:00.000 UTC: a new day
    assert budget.remaining() == 5
    assert budget.spend() == 4
    assert (counter.get(DAY).total, counter.get(date(2026, 11, 27)).total) == (5, 1)


def test_days_are_utc_days_whatever_the_clocks_zone(clock):
    # 20:30 in New York (UTC-5) on the 26th is 01:30 UTC on the 27th
    clock.now = datetime(2026, 11, 26, 20, 30, tzinfo=timezone(timedelta(hours=-5)))
    counter = MemoryDailyCounter()
    budget = DailyBudget(counter, daily_limit=5, clock=clock)
    budget.spend()
    assert counter.get(date(2026, 11, 27)) == Spent(1, 0)
    assert budget.reset_at() == datetime(2026, 11, 28, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "reset"),
    [
        (datetime(2026, 11, 26, 0, 0, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC)),
        (datetime(2026, 11, 26, 13, 45, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC)),
        (datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2028, 2, 28, 12, 0, tzinfo=UTC), datetime(2028, 2, 29, tzinfo=UTC)),
    ],
)
def test_reset_at_is_the_next_midnight_utc(now, reset):
    assert next_reset(now) == reset
    assert DailyBudget(MemoryDailyCounter(), 10, clock=lambda: now).reset_at() == reset
    assert reset.utcoffset() == timedelta(0)


def test_a_naive_clock_is_refused():
    budget = DailyBudget(MemoryDailyCounter(), 10, clock=lambda: datetime(2026, 11, 26, 12))
    with pytest.raises(ValueError, match="aware"):
        budget.spend()


# --- the error --------------------------------------------------------------------------------
def test_the_error_parks_like_zooms_daily_429_and_keeps_secrets_out(tmp_path, clock):
    api_key = "live-api-key-7d1c0b9e"
    account = account_key(api_key)
    budget = budget_for(daily_limit=60_000, reserve=10_000, backfill=True, account=account,
                        directory=tmp_path, clock=clock)
    budget.spend(50_000)
    with pytest.raises(DailyLimitReached) as refused:  # what the operator parks on
        budget.spend(endpoint="videosdk/sessions/abc/users/qos")
    error = refused.value
    # our own refusal, before sending: not dressed as an answer from Zoom
    assert isinstance(error, DailyBudgetExhaustedError) and not isinstance(error, ZoomApiError)
    assert error.reset_at == datetime(2026, 11, 27, tzinfo=UTC)
    assert (error.spent, error.scheduled_spent) == (50_000, 0)
    assert (error.daily_limit, error.reserve) == (60_000, 10_000)
    assert error.day == "2026-11-26"
    message = str(error)
    for figure in ("50,000 of 60,000", "0 of them by scheduled runs", "(backfill_reserve_requests, 10,000)",
                   "50,000 today", "00:00 UTC", "2026-11-27T00:00:00+00:00", "nothing was sent"):
        assert figure in message
    assert api_key not in message and account not in message


def test_a_backfills_message_counts_the_scheduled_runs_requests(clock):
    counter = MemoryDailyCounter()
    DailyBudget(counter, daily_limit=60_000, clock=clock).spend(12_500)
    budget = DailyBudget(counter, daily_limit=60_000, reserve=10_000, clock=clock, backfill=True)
    budget.spend(47_500)
    with pytest.raises(DailyBudgetExhaustedError) as refused:
        budget.spend()
    message = str(refused.value)
    assert refused.value.scheduled_spent == 12_500
    for figure in ("60,000 of 60,000", "12,500 of them by scheduled runs", "47,500 today"):
        assert figure in message


def test_a_scheduled_runs_message_names_the_whole_limit(clock):
    budget = DailyBudget(MemoryDailyCounter(), daily_limit=30_000, clock=clock)
    budget.spend(29_999)
    with pytest.raises(DailyBudgetExhaustedError, match=r"spent: 29,999 of 30,000 requests") as refused:
        budget.spend(2)
    assert "2 more requests would exceed it" in str(refused.value)
    assert "backfill" not in str(refused.value)


# --- validation and the factory ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("limit", "reserve", "match"),
    [
        (0, 0, "UnlimitedBudget"),
        (-1, 0, "at least 1"),
        (100, 100, "less than daily_limit"),
        (100, -1, "at least 0"),
        (100.0, 0, "whole number"),
        (True, 0, "whole number"),
    ],
)
def test_daily_budget_rejects_bad_arguments(limit, reserve, match):
    with pytest.raises(ValueError, match=match):
        DailyBudget(MemoryDailyCounter(), limit, reserve, backfill=True)


def test_only_a_backfill_leaves_a_reserve():
    with pytest.raises(ValueError, match="Only a backfill"):
        DailyBudget(MemoryDailyCounter(), 100, 30)
    assert DailyBudget(MemoryDailyCounter(), 100, 0, backfill=True).reserve == 0


@pytest.mark.parametrize("n", [0, -3, 1.5, True])
def test_spend_rejects_odd_counts(n, clock):
    with pytest.raises(ValueError, match="whole number"):
        DailyBudget(MemoryDailyCounter(), 10, clock=clock).spend(n)


def test_a_daily_limit_of_zero_tracks_nothing(tmp_path, clock):
    budget = budget_for(daily_limit=0, reserve=10_000, backfill=True, account="acct",
                        directory=tmp_path, clock=clock)
    assert isinstance(budget, UnlimitedBudget)
    for _ in range(3):
        budget.spend(1_000_000)
    assert budget.remaining() is None
    assert budget.reset_at() == datetime(2026, 11, 27, tzinfo=UTC)
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    ("limit", "reserve", "match"),
    [
        (30_000, 30_000, r"'backfill_reserve_requests' \(30,000\) must be less than 'daily_request_limit'"),
        (-5, 0, "'daily_request_limit'"),
        (60_000, -1, "'backfill_reserve_requests'"),
        ("60000", 0, "'daily_request_limit'"),
    ],
)
def test_the_factory_names_the_setting_that_is_wrong(tmp_path, limit, reserve, match):
    # a scheduled run too: a bad reserve must surface before the next backfill
    with pytest.raises(ValueError, match=match):
        budget_for(daily_limit=limit, reserve=reserve, backfill=False, account="acct", directory=tmp_path)


def test_the_factory_picks_redis_when_given_a_url_else_a_file(tmp_path):
    shared = budget_for(daily_limit=100, reserve=10, backfill=False, account="acct",
                        redis_url="redis://127.0.0.1:6379/15", directory=tmp_path)
    local = budget_for(daily_limit=100, reserve=10, backfill=False, account="acct", directory=tmp_path)
    assert isinstance(shared.counter, RedisDailyCounter)
    assert isinstance(local.counter, FileDailyCounter) and local.counter.path == tmp_path / "acct.json"


def test_the_file_counter_directory_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOOM_QOS_BUDGET_DIR", str(tmp_path / "budget"))
    assert default_budget_dir() == tmp_path / "budget"
    monkeypatch.delenv("ZOOM_QOS_BUDGET_DIR")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    assert default_budget_dir() == tmp_path / "home" / "zoom_qos_budget"
    budget = budget_for(daily_limit=10, reserve=0, backfill=False, account="acct")
    budget.spend()
    assert (tmp_path / "home" / "zoom_qos_budget" / "acct.json").exists()


def test_account_key_is_the_hooks_hash_of_the_api_key():
    import hashlib

    assert account_key("k") == hashlib.sha256(b"k").hexdigest()[:16]
    assert len(account_key("another")) == 16


# --- atomicity: threads, processes, Redis ----------------------------------------------------
def _contend(budgets: list[DailyBudget], attempts: int) -> list[int]:
    """Each budget in its own thread spends one request at a time; the requests each was granted."""
    accepted = [0] * len(budgets)
    start = threading.Barrier(len(budgets))

    def worker(i: int) -> None:
        start.wait()
        for _ in range(attempts):
            try:
                budgets[i].spend()
                accepted[i] += 1
            except DailyBudgetExhaustedError:
                pass

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(budgets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return accepted


def test_threads_of_backfills_get_exactly_the_share(make_counter, clock):
    # each thread its own counter (own file handle, own Redis connections), as workers would be
    budgets = [DailyBudget(make_counter(), 600, reserve=100, clock=clock, backfill=True) for _ in range(8)]
    accepted = _contend(budgets, 100)
    assert sum(accepted) == 500  # 800 asked, exactly the share granted
    assert budgets[0].spent_by_kind() == Spent(0, 500)
    assert budgets[0].remaining() == 0


def test_threads_of_both_kinds_never_pass_the_limit_or_the_reserve(make_counter, clock):
    scheduled = [DailyBudget(make_counter(), 600, clock=clock) for _ in range(4)]
    backfill = [DailyBudget(make_counter(), 600, reserve=100, clock=clock, backfill=True) for _ in range(4)]
    accepted = _contend(scheduled + backfill, 150)
    spent = scheduled[0].spent_by_kind()
    # what was granted is what was counted, the cap is spent to the last request (the scheduled
    # runs ask for all of it), and backfills never took room the scheduled runs still held
    assert spent == Spent(sum(accepted[:4]), sum(accepted[4:]))
    assert spent.total == 600
    assert spent.backfill <= 600 - max(100, spent.scheduled)


def _add_many(directory: str, account: str, times: int, backfill: bool, limit: int | None, results) -> None:
    counter = FileDailyCounter(directory, account)
    accepted = sum(1 for _ in range(times)
                   if counter.add(DAY, 1, backfill=backfill, limit=limit, reserve=300 if backfill else 0)[0])
    results.put((backfill, accepted))


def _in_two_processes(tmp_path, jobs: list[tuple[int, bool, int | None]]) -> dict[bool, int]:
    """Runs ``(times, backfill, limit)`` jobs in processes of their own; requests accepted by kind."""
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_add_many, args=(str(tmp_path), "acct", *job, results)) for job in jobs]
    for proc in procs:
        proc.start()
    accepted = {False: 0, True: 0}
    for _ in procs:
        backfill, count = results.get(timeout=60)
        accepted[backfill] += count
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    return accepted


def test_the_file_counter_loses_nothing_across_processes(tmp_path):
    assert _in_two_processes(tmp_path, [(500, False, None), (500, True, None)]) == {False: 500, True: 500}
    assert FileDailyCounter(tmp_path, "acct").get(DAY) == Spent(500, 500)


def test_the_file_counter_never_overshoots_across_processes(tmp_path):
    # reserve 300: two backfills share 1,000 - 300
    assert _in_two_processes(tmp_path, [(500, True, 1000), (500, True, 1000)]) == {False: 0, True: 700}
    assert FileDailyCounter(tmp_path, "acct").get(DAY) == Spent(0, 700)


def test_the_file_counter_keeps_both_kinds_within_bounds_across_processes(tmp_path):
    accepted = _in_two_processes(tmp_path, [(600, False, 1000), (1000, True, 1000)])
    spent = FileDailyCounter(tmp_path, "acct").get(DAY)
    assert spent == Spent(accepted[False], accepted[True])
    assert spent.total == 1000
    assert spent.backfill <= 1000 - max(300, spent.scheduled)


# --- the file counter -------------------------------------------------------------------------
def test_the_file_counter_prunes_old_days(tmp_path):
    counter = FileDailyCounter(tmp_path, "acct")
    for back in range(10, -1, -1):
        counter.add(DAY - timedelta(days=back), 1, backfill=back % 2 == 0)
    kept = json.loads(counter.path.read_text())
    assert sorted(kept) == [(DAY - timedelta(days=b)).isoformat() for b in range(KEEP_DAYS, -1, -1)]
    assert counter.get(DAY - timedelta(days=KEEP_DAYS + 1)) == Spent(0, 0)
    assert counter.get(DAY) == Spent(0, 1) and counter.get(DAY - timedelta(days=1)) == Spent(1, 0)
    assert not list(tmp_path.glob("*.tmp"))


def test_an_unreadable_count_file_starts_over_instead_of_blocking(tmp_path, caplog):
    counter = FileDailyCounter(tmp_path, "acct")
    counter.path.write_text("{not json")
    assert counter.add(DAY, 3) == (True, Spent(3, 0))
    assert "unreadable" in caplog.text


@pytest.mark.parametrize("account", ["", "../etc", "a/b", "x" * 65])
def test_the_file_counter_refuses_account_keys_that_are_not_file_names(tmp_path, account):
    with pytest.raises(ValueError, match="account key"):
        FileDailyCounter(tmp_path, account)


# --- the Redis counter ------------------------------------------------------------------------
def test_the_redis_counter_counts_each_kind_per_day_with_an_expiry(redis_url, redis_account):
    import redis

    client = redis.Redis.from_url(redis_url)
    counter = RedisDailyCounter(redis_url, redis_account)
    assert counter.add(DAY, 3) == (True, Spent(3, 0))
    # limit 10, reserve 5: backfills may use 10 - max(5, 3) = 5
    assert counter.add(DAY, 5, backfill=True, limit=10, reserve=5) == (True, Spent(3, 5))
    assert counter.add(DAY, 1, backfill=True, limit=10, reserve=5) == (False, Spent(3, 5))  # refused
    assert counter.add(DAY, 3, limit=10) == (False, Spent(3, 5))
    assert counter.add(DAY, 2, limit=10) == (True, Spent(5, 5))
    assert counter.get(DAY) == Spent(5, 5)  # refusals were not counted
    keys = (f"zoom_qos:daily:{redis_account}:2026-11-26:scheduled",
            f"zoom_qos:daily:{redis_account}:2026-11-26:backfill")
    assert counter.keys(DAY) == keys
    assert [int(client.get(key)) for key in keys] == [5, 5]
    for key in keys:
        assert 0 < client.ttl(key) <= KEEP_DAYS * 86_400
    # a refusal on a fresh day writes nothing
    tomorrow = DAY + timedelta(days=1)
    assert counter.add(tomorrow, 11, limit=10) == (False, Spent(0, 0))
    assert client.exists(*counter.keys(tomorrow)) == 0
    assert counter.get(tomorrow) == Spent(0, 0)


def test_a_counter_that_cannot_be_written_does_not_stop_requests(tmp_path, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the counter's folder should be")
    budget = DailyBudget(FileDailyCounter(blocked, "acct"), 10)
    for _ in range(12):  # past the limit: nothing is counted, so nothing is refused
        budget.spend()
    assert caplog.text.count("cannot be kept") == 1 and "ZOOM_QOS_BUDGET_DIR" in caplog.text
