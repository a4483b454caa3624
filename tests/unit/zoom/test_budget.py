"""The daily request budget: exact limits, refusals that cost nothing, the backfill reserve (held
for scheduled runs until they spend it), the 00:00 UTC rollover, and budgets of many threads
sharing one count (the counters on their own, across processes: test_counters.py)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from zoom_qos.core.errors import DailyLimitReached
from zoom_qos.zoom import budget as budget_module
from zoom_qos.zoom import counters
from zoom_qos.zoom.budget import (
    DailyBudget,
    LiveBudgetExhaustedError,
    UnlimitedBudget,
    account_key,
    budget_for,
    is_backfill,
    next_reset,
)
from zoom_qos.zoom.counters import FileDailyCounter, RedisDailyCounter, Spent
from zoom_qos.zoom.errors import DailyBudgetExhaustedError, ZoomApiError, ZoomConfigError
from zoom_qos.zoom.settings import ZoomSettings

DAY = date(2026, 11, 26)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock():
    return FakeClock(datetime(2026, 11, 26, 13, 45, tzinfo=UTC))


# --- the budget's arithmetic ------------------------------------------------------------------
def test_the_allowance_is_spent_to_the_exact_request_then_refused(clock, tmp_path):
    budget = DailyBudget(FileDailyCounter(tmp_path, "acct"), daily_limit=10, clock=clock)
    remaining = [budget.spend() for _ in range(10)]
    assert remaining == list(range(9, -1, -1))
    with pytest.raises(DailyBudgetExhaustedError):
        budget.spend()
    assert budget.spent() == 10
    assert budget.remaining() == 0


def test_a_refused_request_is_not_counted(clock, tmp_path):
    counter = FileDailyCounter(tmp_path, "acct")
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


@pytest.fixture(params=["file", "redis"])
def make_counter(request, tmp_path):
    """Builds counters of one kind that share one account's counts, as separate processes would."""
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
    live = budget_for(backfill=False, live=True, live_budget=10, **common)
    assert (live.kind, live.reserve, live.live_budget) == ("live", 0, 10)
    live.spend(4)
    assert json.loads((tmp_path / "acct.json").read_text()) == {
        "2026-11-26": {"scheduled": 2, "backfill": 3, "live": 4}}
    assert scheduled.spent_by_kind() == Spent(2, 3, 4) and scheduled.spent() == 9


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


# --- live polling's share --------------------------------------------------------------------
def _three(make_counter, clock, daily_limit=100, reserve=30, live_budget=20
           ) -> tuple[DailyBudget, DailyBudget, DailyBudget]:
    """(scheduled, backfill, live) budgets of one account."""
    common = dict(clock=clock, live_budget=live_budget)
    return (DailyBudget(make_counter(), daily_limit, **common),
            DailyBudget(make_counter(), daily_limit, reserve, backfill=True, **common),
            DailyBudget(make_counter(), daily_limit, live=True, **common))


def test_live_polling_gets_its_share_exactly_counted_apart(make_counter, clock):
    scheduled, backfill, live = _three(make_counter, clock)
    assert live.remaining() == 20
    assert live.spend(19) == 1
    assert live.spend() == 0
    with pytest.raises(LiveBudgetExhaustedError) as refused:
        live.spend(endpoint="videosdk/sessions")
    assert live.spent_by_kind() == Spent(0, 0, 20)  # the refusal counted nothing
    # the others' shares are untouched by live polling
    assert (scheduled.remaining(), backfill.remaining()) == (80, 50)
    error = refused.value
    assert isinstance(error, DailyBudgetExhaustedError) and isinstance(error, DailyLimitReached)
    assert error.kind == "live" and error.reset_at == datetime(2026, 11, 27, tzinfo=UTC)
    assert (error.live_spent, error.live_budget, error.spent, error.daily_limit) == (20, 20, 20, 100)
    assert (error.requested, error.endpoint, error.day) == (1, "videosdk/sessions", "2026-11-26")
    message = str(error)
    for part in ("the live polling's share (live_daily_request_budget = 20) of today's requests is spent",
                 "live polling resumes after 00:00 UTC", "2026-11-27T00:00:00+00:00", "nothing was sent"):
        assert part.lower() in message.lower(), message


def test_scheduled_runs_and_backfills_share_the_cap_less_the_live_share(make_counter, clock):
    scheduled, backfill, live = _three(make_counter, clock)
    # 100 - 20 live: scheduled runs get 80; a backfill 80 - max(30, scheduled)
    assert (scheduled.remaining(), backfill.remaining(), live.remaining()) == (80, 50, 20)
    backfill.spend(50)
    with pytest.raises(DailyBudgetExhaustedError) as refused:
        backfill.spend()
    assert not isinstance(refused.value, LiveBudgetExhaustedError)
    scheduled.spend(30)
    with pytest.raises(DailyBudgetExhaustedError):
        scheduled.spend()  # 30 + 50 = 80: the live share is not theirs, even unused
    assert live.spend(20) == 0  # ... and is all still there for live polling
    assert scheduled.spent_by_kind() == Spent(30, 50, 20) and scheduled.spent() == 100


def test_the_scheduled_runs_spending_past_the_reserve_still_shrinks_the_backfill(make_counter, clock):
    scheduled, backfill, live = _three(make_counter, clock)
    live.spend(5)
    scheduled.spend(45)
    assert backfill.remaining() == 35  # 100 - 20 - max(30, 45), whatever live polling spent
    backfill.spend(35)
    assert (scheduled.remaining(), backfill.remaining(), live.remaining()) == (0, 0, 15)


def test_a_live_budget_of_zero_gives_live_polling_nothing(make_counter, clock):
    scheduled, _, live = _three(make_counter, clock, live_budget=0)
    assert live.remaining() == 0 and scheduled.remaining() == 100
    with pytest.raises(LiveBudgetExhaustedError, match=r"live_daily_request_budget = 0\)"):
        live.spend()
    assert live.spent_by_kind() == Spent(0, 0, 0)


def test_live_polling_is_refused_when_the_whole_cap_is_spent(clock, tmp_path):
    # someone counted past their share (say a process with another live budget configured)
    counter = FileDailyCounter(tmp_path, "acct")
    DailyBudget(counter, 100, clock=clock).spend(99)
    live = DailyBudget(counter, 100, clock=clock, live=True, live_budget=20)
    assert live.remaining() == 1
    with pytest.raises(LiveBudgetExhaustedError) as refused:
        live.spend(2)
    message = str(refused.value)
    assert "99 of 100 requests" in message and "2 more requests would exceed it" in message
    assert "live polling resumes after 00:00 UTC" in message


def test_a_backfills_message_names_the_share_left_after_live_polling(clock, tmp_path):
    budget = budget_for(daily_limit=60_000, reserve=10_000, live_budget=3_000, backfill=True,
                        account="acct", directory=tmp_path, clock=clock)
    budget.spend(47_000)
    with pytest.raises(DailyBudgetExhaustedError) as refused:
        budget.spend()
    message = str(refused.value)
    for figure in ("47,000 of 57,000", "47,000 today", "daily_request_limit, 60,000",
                   "live_daily_request_budget, 3,000"):
        assert figure in message, message
    assert refused.value.reset_at == datetime(2026, 11, 27, tzinfo=UTC)


@pytest.mark.parametrize(
    ("limit", "reserve", "live_budget", "match"),
    [
        (30_000, 27_000, 3_000, r"'backfill_reserve_requests' \(27,000\) and 'live_daily_request_budget' "
                                r"\(3,000\) together must be less than 'daily_request_limit' \(30,000\)"),
        (10_000, 0, 10_000, "'live_daily_request_budget'"),
        (60_000, 0, -1, "'live_daily_request_budget'"),
        (60_000, 0, "3000", "'live_daily_request_budget'"),
    ],
)
def test_the_reserve_and_the_live_share_must_leave_room(tmp_path, limit, reserve, live_budget, match):
    for live in (False, True):  # checked for every run, whichever kind
        with pytest.raises(ZoomConfigError, match=match):
            budget_for(daily_limit=limit, reserve=reserve, live_budget=live_budget, backfill=False, live=live,
                       account="acct", directory=tmp_path)


def test_a_budget_is_not_both_a_backfills_and_live_pollings(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        budget_for(daily_limit=100, reserve=10, backfill=True, live=True, account="acct", directory=tmp_path)
    with pytest.raises(ValueError, match="not both"):
        DailyBudget(FileDailyCounter(tmp_path, "acct"), 100, backfill=True, live=True)
    with pytest.raises(ValueError, match="live_budget"):
        DailyBudget(FileDailyCounter(tmp_path, "acct"), 100, 50, backfill=True, live_budget=50)


def test_the_live_share_defaults_to_3000_and_is_a_connection_extra():
    assert ZoomSettings().live_daily_request_budget == 3_000
    assert ZoomSettings.from_extra({"live_daily_request_budget": "0"}).live_daily_request_budget == 0
    with pytest.raises(ZoomConfigError, match="live_daily_request_budget"):
        ZoomSettings.from_extra({"live_daily_request_budget": "some"})


# --- the day and its reset --------------------------------------------------------------------
def test_the_count_starts_over_at_midnight_utc(clock, tmp_path):
    clock.now = datetime(2026, 11, 26, 23, 59, 59, 999_999, tzinfo=UTC)
    counter = FileDailyCounter(tmp_path, "acct")
    budget = DailyBudget(counter, daily_limit=5, clock=clock)
    budget.spend(5)
    with pytest.raises(DailyBudgetExhaustedError) as refused:
        budget.spend()
    assert refused.value.reset_at == datetime(2026, 11, 27, tzinfo=UTC)
    clock.now = datetime(2026, 11, 27, tzinfo=UTC)  # 00:00:00.000 UTC: a new day
    assert budget.remaining() == 5
    assert budget.spend() == 4
    assert (counter.get(DAY).total, counter.get(date(2026, 11, 27)).total) == (5, 1)


def test_days_are_utc_days_whatever_the_clocks_zone(clock, tmp_path):
    # 20:30 in New York (UTC-5) on the 26th is 01:30 UTC on the 27th
    clock.now = datetime(2026, 11, 26, 20, 30, tzinfo=timezone(timedelta(hours=-5)))
    counter = FileDailyCounter(tmp_path, "acct")
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
def test_reset_at_is_the_next_midnight_utc(now, reset, tmp_path):
    assert next_reset(now) == reset
    assert DailyBudget(FileDailyCounter(tmp_path, "acct"), 10, clock=lambda: now).reset_at() == reset
    assert reset.utcoffset() == timedelta(0)


def test_a_naive_clock_is_refused(tmp_path):
    budget = DailyBudget(FileDailyCounter(tmp_path, "acct"), 10, clock=lambda: datetime(2026, 11, 26, 12))
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


def test_a_backfills_message_counts_the_scheduled_runs_requests(clock, tmp_path):
    counter = FileDailyCounter(tmp_path, "acct")
    DailyBudget(counter, daily_limit=60_000, clock=clock).spend(12_500)
    budget = DailyBudget(counter, daily_limit=60_000, reserve=10_000, clock=clock, backfill=True)
    budget.spend(47_500)
    with pytest.raises(DailyBudgetExhaustedError) as refused:
        budget.spend()
    message = str(refused.value)
    assert refused.value.scheduled_spent == 12_500
    for figure in ("60,000 of 60,000", "12,500 of them by scheduled runs", "47,500 today"):
        assert figure in message


def test_a_scheduled_runs_message_names_the_whole_limit(clock, tmp_path):
    budget = DailyBudget(FileDailyCounter(tmp_path, "acct"), daily_limit=30_000, clock=clock)
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
def test_daily_budget_rejects_bad_arguments(limit, reserve, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        DailyBudget(FileDailyCounter(tmp_path, "acct"), limit, reserve, backfill=True)


def test_only_a_backfill_leaves_a_reserve(tmp_path):
    with pytest.raises(ValueError, match="Only a backfill"):
        DailyBudget(FileDailyCounter(tmp_path, "acct"), 100, 30)
    assert DailyBudget(FileDailyCounter(tmp_path, "acct"), 100, 0, backfill=True).reserve == 0


@pytest.mark.parametrize("n", [0, -3, 1.5, True])
def test_spend_rejects_odd_counts(n, clock, tmp_path):
    with pytest.raises(ValueError, match="whole number"):
        DailyBudget(FileDailyCounter(tmp_path, "acct"), 10, clock=clock).spend(n)


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
    with pytest.raises(ZoomConfigError, match=match):
        budget_for(daily_limit=limit, reserve=reserve, backfill=False, account="acct", directory=tmp_path)


def test_the_factory_picks_redis_when_given_a_url_else_a_file(tmp_path):
    shared = budget_for(daily_limit=100, reserve=10, backfill=False, account="acct",
                        redis_url="redis://127.0.0.1:6379/15", directory=tmp_path)
    local = budget_for(daily_limit=100, reserve=10, backfill=False, account="acct", directory=tmp_path)
    assert isinstance(shared.counter, RedisDailyCounter)
    assert isinstance(local.counter, FileDailyCounter) and local.counter.path == tmp_path / "acct.json"


def test_a_file_counter_needs_a_folder(tmp_path):
    with pytest.raises(ValueError, match="budget_dir"):
        budget_for(daily_limit=10, reserve=0, backfill=False, account="acct")
    budget = budget_for(daily_limit=10, reserve=0, backfill=False, account="acct", directory=tmp_path)
    budget.spend()
    assert (tmp_path / "acct.json").exists()


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


def test_a_counter_that_cannot_be_written_does_not_stop_requests(tmp_path, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the counter's folder should be")
    budget = DailyBudget(FileDailyCounter(blocked, "acct"), 10)
    for _ in range(12):  # past the limit: nothing is counted, so nothing is refused
        budget.spend()
    assert caplog.text.count("cannot be kept") == 1 and "budget_dir" in caplog.text


def test_the_budget_module_still_offers_the_counters():
    # Importers of zoom_qos.zoom.budget keep working after the counters moved to their own module.
    for name in ("KEEP_DAYS", "DailyCounter", "FileDailyCounter", "RedisDailyCounter", "Spent"):
        assert getattr(budget_module, name) is getattr(counters, name)
        assert name in budget_module.__all__
