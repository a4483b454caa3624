"""The daily request counters (zoom_qos.zoom.counters): counts that no concurrent process loses or
pushes past a limit, old days pruned or expired, unreadable files survived, and the Redis keys."""

from __future__ import annotations

import json
import multiprocessing
from datetime import date, timedelta

import pytest

from zoom_qos.zoom.counters import KEEP_DAYS, FileDailyCounter, RedisDailyCounter, Spent

DAY = date(2026, 11, 26)


# --- atomicity across processes ---------------------------------------------------------------
def _add_many(directory: str, account: str, times: int, backfill: bool, limit: int | None, results) -> None:
    counter = FileDailyCounter(directory, account)
    kind = "backfill" if backfill else "scheduled"
    accepted = sum(1 for _ in range(times)
                   if counter.add(DAY, 1, kind=kind, limit=limit, reserve=300 if backfill else 0)[0])
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
        counter.add(DAY - timedelta(days=back), 1, kind="backfill" if back % 2 == 0 else "scheduled")
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
    assert counter.add(DAY, 5, kind="backfill", limit=10, reserve=5) == (True, Spent(3, 5))
    assert counter.add(DAY, 1, kind="backfill", limit=10, reserve=5) == (False, Spent(3, 5))  # refused
    assert counter.add(DAY, 3, limit=10) == (False, Spent(3, 5))
    assert counter.add(DAY, 2, limit=10) == (True, Spent(5, 5))
    assert counter.get(DAY) == Spent(5, 5)  # refusals were not counted
    keys = (f"zoom_qos:daily:{redis_account}:2026-11-26:scheduled",
            f"zoom_qos:daily:{redis_account}:2026-11-26:backfill",
            f"zoom_qos:daily:{redis_account}:2026-11-26:live")
    assert counter.keys(DAY) == keys
    assert [int(client.get(key) or 0) for key in keys] == [5, 5, 0]
    assert not client.exists(keys[2])  # a kind that sent nothing writes no key
    for key in keys[:2]:
        assert 0 < client.ttl(key) <= KEEP_DAYS * 86_400
    # a refusal on a fresh day writes nothing
    tomorrow = DAY + timedelta(days=1)
    assert counter.add(tomorrow, 11, limit=10) == (False, Spent(0, 0))
    assert client.exists(*counter.keys(tomorrow)) == 0
    assert counter.get(tomorrow) == Spent(0, 0)


# --- live polling's count ---------------------------------------------------------------------
@pytest.fixture(params=["file", "redis"])
def counter(request, tmp_path):
    if request.param == "file":
        return FileDailyCounter(tmp_path, "acct")
    return RedisDailyCounter(request.getfixturevalue("redis_url"), request.getfixturevalue("redis_account"))


def test_live_requests_are_counted_apart_within_their_share(counter):
    # limit 20, live share 5: live polling gets 5, scheduled runs and backfills share 15
    assert counter.add(DAY, 4, kind="live", limit=20, live_budget=5) == (True, Spent(0, 0, 4))
    assert counter.add(DAY, 2, kind="live", limit=20, live_budget=5) == (False, Spent(0, 0, 4))
    assert counter.add(DAY, 1, kind="live", limit=20, live_budget=5) == (True, Spent(0, 0, 5))
    assert counter.add(DAY, 16, limit=20, live_budget=5) == (False, Spent(0, 0, 5))
    assert counter.add(DAY, 12, limit=20, live_budget=5) == (True, Spent(12, 0, 5))
    # backfill: 20 - 5 - max(reserve 4, scheduled 12) = 3
    backfill = {"kind": "backfill", "limit": 20, "reserve": 4, "live_budget": 5}
    assert counter.add(DAY, 4, **backfill) == (False, Spent(12, 0, 5))
    assert counter.add(DAY, 3, **backfill) == (True, Spent(12, 3, 5))
    assert counter.add(DAY, 1, kind="live", limit=20, live_budget=5) == (False, Spent(12, 3, 5))
    assert counter.add(DAY, 2, kind="live") == (True, Spent(12, 3, 7))  # no limit: counted anyway
    assert counter.get(DAY) == Spent(12, 3, 7) and counter.get(DAY).total == 22


def test_a_live_request_never_passes_the_whole_cap(counter):
    # other callers counted past their shares (say with a smaller live budget configured)
    counter.add(DAY, 19)
    assert counter.add(DAY, 2, kind="live", limit=20, live_budget=5) == (False, Spent(19, 0, 0))
    assert counter.add(DAY, 1, kind="live", limit=20, live_budget=5) == (True, Spent(19, 0, 1))


def test_an_unknown_kind_is_refused(counter):
    with pytest.raises(ValueError, match="kind must be one of scheduled, backfill, live"):
        counter.add(DAY, 1, kind="manual")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="live_budget"):
        counter.add(DAY, 1, kind="live", limit=10, live_budget=-1)


def test_a_count_file_written_before_live_polling_still_loads(tmp_path):
    counter = FileDailyCounter(tmp_path, "acct")
    counter.path.write_text(json.dumps({DAY.isoformat(): {"scheduled": 7, "backfill": 2},
                                        (DAY - timedelta(days=1)).isoformat(): {"scheduled": 1}}))
    assert counter.get(DAY) == Spent(7, 2, 0)
    assert counter.add(DAY, 3, kind="live", limit=100, live_budget=10) == (True, Spent(7, 2, 3))
    assert json.loads(counter.path.read_text()) == {
        DAY.isoformat(): {"scheduled": 7, "backfill": 2, "live": 3},
        (DAY - timedelta(days=1)).isoformat(): {"scheduled": 1, "backfill": 0, "live": 0}}


def test_redis_keys_written_before_live_polling_still_load(redis_url, redis_account):
    import redis

    client = redis.Redis.from_url(redis_url)
    counter = RedisDailyCounter(redis_url, redis_account)
    scheduled, backfill, live = counter.keys(DAY)
    client.set(scheduled, 7)
    client.set(backfill, 2)
    assert counter.get(DAY) == Spent(7, 2, 0)
    assert counter.add(DAY, 3, kind="live", limit=100, live_budget=10) == (True, Spent(7, 2, 3))
    assert counter.add(DAY, 1, kind="backfill", limit=12, reserve=0, live_budget=3) == (False, Spent(7, 2, 3))
    assert int(client.get(live)) == 3 and 0 < client.ttl(live) <= KEEP_DAYS * 86_400
