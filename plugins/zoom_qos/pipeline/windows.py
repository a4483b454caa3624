"""Which days a run reads, and how they are cut into requests Zoom accepts.

Zoom lists past sessions for ``from``/``to`` ranges of at most one month, inside the last six
months. A run covers its data interval (whole UTC days) plus a lookback, so sessions that were
still live at the previous run are read once they are past. Ranges are cut at calendar-month
boundaries, which satisfies both readings of "at most one month".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pendulum

from zoom_qos.core.config import LISTING_PARAMS
from zoom_qos.core.errors import InvalidParamError, InvalidWindowError

log = logging.getLogger(__name__)

RETENTION_MONTHS = 6


@dataclass(frozen=True)
class Window:
    """Inclusive range of UTC days."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValueError(f"A window cannot start ({self.start}) after it ends ({self.end})")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def check_listing_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with every integer param of the listing (``config.LISTING_PARAMS``) as an int,
    those left out (or None) at their defaults. Airflow checks the DAG's ``Param``s when a run
    is triggered, but scripts and tests call the listing with a plain dict, so it checks them
    again first: a value that is not a whole number in its range raises ``InvalidParamError``
    (permanent) naming the param, the value and the range, before any request or write."""
    checked = {name: value for name, value in params.items() if value is not None}
    for name, bounds in LISTING_PARAMS.items():
        checked[name] = checked_param(name, checked.get(name, bounds.default))
    return checked


def checked_param(name: str, value: object) -> int:
    """Param ``name`` (one of ``config.LISTING_PARAMS``) as an int within its range, or
    ``InvalidParamError`` saying what it must be."""
    bounds = LISTING_PARAMS[name]
    number = _whole_number(value)
    if number is None or not bounds.minimum <= number <= bounds.maximum:
        raise InvalidParamError(
            f"The param {name} must be a whole number from {bounds.minimum:,} to {bounds.maximum:,}, "
            f"got {value!r}: trigger the run again with a value in that range, or leave it out to "
            f"use the default, {bounds.default:,}. Nothing was requested from Zoom.")
    return number


def _whole_number(value: object) -> int | None:
    """``value`` when it is a whole number: an int, an integral float (JSON may write 3.0), or
    its digits as text (a templated param arrives as "3"); None for anything else, booleans
    included (True is no count of days, though Python calls it 1)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None  # NaN and infinity are not integers
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def parse_day(value: str, name: str) -> date:
    """The day a param names; ``InvalidWindowError`` (permanent: no retry changes a param) naming
    the param and the expected form otherwise."""
    try:
        return date.fromisoformat(value.strip())
    except (AttributeError, ValueError) as exc:
        raise InvalidWindowError(
            f"The param {name} must be a real calendar day as YYYY-MM-DD (e.g. 2026-01-31), got "
            f"{value!r}: trigger the run again with a valid date.") from exc


def requested_window(
    interval_start: datetime | None,
    interval_end: datetime | None,
    from_date: str | None,
    to_date: str | None,
    lookback_days: int,
    today: date,
) -> Window:
    """The days a run is asked to load.

    ``from_date``/``to_date`` (inclusive) override the data interval for a manual reload and
    get no lookback. Otherwise the interval [start, end) in UTC, widened by ``lookback_days``
    before its start; a run without an interval covers yesterday. A ``lookback_days`` outside
    its param's range is refused (``InvalidParamError``), not cut down to what Zoom still serves.
    """
    lookback_days = checked_param("lookback_days", lookback_days)
    if from_date or to_date:
        start = parse_day(from_date or to_date or "", "from_date")
        end = parse_day(to_date or from_date or "", "to_date")
        if start > end:
            raise InvalidWindowError(
                f"The param from_date ({start}) is after to_date ({end}): to_date must be the same "
                "day as from_date or later (both inclusive, YYYY-MM-DD); trigger the run again with "
                "the dates in order.")
        return Window(start, end)
    if interval_start is None or interval_end is None:
        first = last = today - timedelta(days=1)
    else:
        first = pendulum.instance(interval_start).in_timezone("UTC").date()
        end_utc = pendulum.instance(interval_end).in_timezone("UTC")
        # The interval's end is exclusive: midnight belongs to the next day.
        last = (end_utc - timedelta(microseconds=1)).date() if end_utc > pendulum.instance(
            interval_start) else first
    return Window(first - timedelta(days=lookback_days), last)


def available_part(window: Window, today: date, months: int = RETENTION_MONTHS) -> Window | None:
    """The part of ``window`` Zoom still serves: not older than six months, not in the future.

    Logs what is dropped and why; None when nothing is left.
    """
    cutoff = pendulum.date(today.year, today.month, today.day).subtract(months=months)
    oldest = date(cutoff.year, cutoff.month, cutoff.day) + timedelta(days=1)
    start, end = max(window.start, oldest), min(window.end, today)
    if window.start < oldest:
        log.warning(
            "Skipping %s..%s: Zoom keeps past sessions for %d months only (oldest day served: %s).",
            window.start, min(window.end, oldest - timedelta(days=1)), months, oldest,
        )
    if window.end > today:
        log.info("Skipping %s..%s: those days have not happened yet.", max(window.start, today
                 + timedelta(days=1)), window.end)
    if start > end:
        return None
    return Window(start, end)


def month_ranges(window: Window) -> list[Window]:
    """The window cut at calendar-month boundaries, in order."""
    ranges: list[Window] = []
    start = window.start
    while start <= window.end:
        next_month = date(start.year + start.month // 12, start.month % 12 + 1, 1)
        end = min(window.end, next_month - timedelta(days=1))
        ranges.append(Window(start, end))
        start = end + timedelta(days=1)
    return ranges


def batch_sizes(total: int, batch_size: int, max_batches: int) -> list[int]:
    """How many sessions go into each mapped extraction task.

    Batches of ``batch_size``, but never more than ``max_batches`` of them: a very busy day
    gets bigger batches rather than more mapped tasks than Airflow allows.
    """
    if total <= 0:
        return []
    if batch_size < 1 or max_batches < 1:
        raise ValueError("batch_size and max_batches must be at least 1")
    count = min(max_batches, -(-total // batch_size))
    base, extra = divmod(total, count)
    return [base + (1 if i < extra else 0) for i in range(count)]
