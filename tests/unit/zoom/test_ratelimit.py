from zoom_qos.zoom.published import HEAVY, RESOURCE_INTENSIVE
from zoom_qos.zoom.ratelimit import RateLimiter, TokenBucket


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_bucket_allows_a_burst_then_paces_at_the_rate():
    t = FakeTime()
    bucket = TokenBucket(rate=10, capacity=10, clock=t.clock, sleep=t.sleep)
    waits = [bucket.acquire() for _ in range(30)]
    assert waits[:10] == [0.0] * 10
    # 20 more requests at 10/s take two seconds
    assert abs(t.now - 2.0) < 1e-9
    assert all(abs(w - 0.1) < 1e-9 for w in waits[10:])


def test_sustained_rate_never_exceeds_the_limit():
    t = FakeTime()
    bucket = TokenBucket(rate=40, capacity=40, clock=t.clock, sleep=t.sleep)
    stamps = []
    for _ in range(400):
        bucket.acquire()
        stamps.append(t.now)
    # any one-second window after the initial burst holds at most 40 requests
    for i, start in enumerate(stamps):
        if start >= 1.0:
            assert sum(1 for s in stamps[i:] if s < start + 1.0 - 1e-6) <= 40  # float slack


def test_categories_are_separate_and_minute_limits_are_per_second_rates():
    limiter = RateLimiter(heavy_per_second=40, resource_intensive_per_minute=20)
    assert limiter.buckets[HEAVY].rate == 40
    assert abs(limiter.buckets[RESOURCE_INTENSIVE].rate - 20 / 60) < 1e-12
    assert limiter.buckets[RESOURCE_INTENSIVE].capacity == 10  # half the minute's quota as burst
