from datetime import UTC, date, datetime

import pytest

from zoom_qos.pipeline.windows import Window, available_part, batch_sizes, month_ranges, requested_window

TODAY = date(2026, 11, 26)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_interval_is_one_day_plus_lookback():
    w = requested_window(utc(2026, 11, 20), utc(2026, 11, 21), None, None, 1, TODAY)
    assert w == Window(date(2026, 11, 19), date(2026, 11, 20))


def test_zero_lookback():
    w = requested_window(utc(2026, 11, 20), utc(2026, 11, 21), None, None, 0, TODAY)
    assert w == Window(date(2026, 11, 20), date(2026, 11, 20))


def test_params_override_interval_without_lookback():
    w = requested_window(utc(2026, 11, 20), utc(2026, 11, 21), "2026-10-01", "2026-10-03", 1, TODAY)
    assert w == Window(date(2026, 10, 1), date(2026, 10, 3))


def test_missing_interval_means_yesterday():
    assert requested_window(None, None, None, None, 0, TODAY) == Window(date(2026, 11, 25),
                                                                        date(2026, 11, 25))


@pytest.mark.parametrize("from_date,to_date", [("2026-11-02", "2026-11-01"), ("2026-13-01", None),
                                               ("nope", "2026-11-01")])
def test_bad_params_are_clear_errors(from_date, to_date):
    with pytest.raises(ValueError, match="date|after"):
        requested_window(None, None, from_date, to_date, 1, TODAY)


def test_older_than_six_months_is_cut_off_with_a_log(caplog):
    part = available_part(Window(date(2026, 5, 1), date(2026, 6, 30)), TODAY)
    assert part == Window(date(2026, 5, 27), date(2026, 6, 30))
    assert "six" in caplog.text or "6 months" in caplog.text


def test_entirely_too_old_is_none():
    assert available_part(Window(date(2025, 1, 1), date(2025, 1, 2)), TODAY) is None


def test_future_days_dropped():
    assert available_part(Window(date(2026, 11, 25), date(2026, 11, 30)), TODAY) == Window(
        date(2026, 11, 25), TODAY)


def test_month_ranges_never_cross_a_month():
    ranges = month_ranges(Window(date(2026, 10, 30), date(2026, 12, 2)))
    assert ranges == [Window(date(2026, 10, 30), date(2026, 10, 31)),
                      Window(date(2026, 11, 1), date(2026, 11, 30)),
                      Window(date(2026, 12, 1), date(2026, 12, 2))]
    assert month_ranges(Window(date(2026, 12, 31), date(2027, 1, 1))) == [
        Window(date(2026, 12, 31), date(2026, 12, 31)), Window(date(2027, 1, 1), date(2027, 1, 1))]


def test_batches_cover_everything_and_stay_below_the_map_limit():
    assert batch_sizes(0, 100, 500) == []
    assert batch_sizes(250, 100, 500) == [84, 83, 83]
    sizes = batch_sizes(10_000, 10, 500)
    assert len(sizes) == 500 and sum(sizes) == 10_000 and max(sizes) - min(sizes) <= 1
