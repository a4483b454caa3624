import random
from datetime import UTC, datetime, timedelta

import pytest

from zoom_qos.zoom.retry import Backoff, parse_retry_after

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "header,expected",
    [
        ("5", NOW + timedelta(seconds=5)),
        ("0.5", NOW + timedelta(seconds=0.5)),
        ("2026-11-27T00:00:00Z", datetime(2026, 11, 27, tzinfo=UTC)),
        ("2026-11-27T01:00:00+01:00", datetime(2026, 11, 27, tzinfo=UTC)),
        ("2026-11-27T00:00:00", datetime(2026, 11, 27, tzinfo=UTC)),
        ("Thu, 26 Nov 2026 12:00:30 GMT", NOW + timedelta(seconds=30)),
        (None, None),
        ("", None),
        ("soon", None),
        ("-3", None),
    ],
)
def test_retry_after_forms(header, expected):
    assert parse_retry_after(header, NOW) == expected


def test_backoff_grows_with_jitter_and_is_capped():
    backoff = Backoff(base_seconds=1, max_seconds=8, rng=random.Random(1))
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (9, 8)]:
        delays = {backoff.delay(attempt) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered


def test_backoff_budget_in_attempts_and_total_time():
    backoff = Backoff(max_attempts=3, max_total_seconds=10)
    assert backoff.allows(3, waited_total=0, next_wait=1)
    assert not backoff.allows(4, waited_total=0, next_wait=1)
    assert not backoff.allows(2, waited_total=9.5, next_wait=1)
