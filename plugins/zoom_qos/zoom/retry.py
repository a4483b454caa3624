"""How long to wait before trying a request again.

Two separate questions: what the server asked for (``Retry-After`` comes as seconds, as an
HTTP date, or, for Zoom's daily limit, as an ISO datetime) and what to do when it asked for
nothing (exponential backoff with equal jitter, bounded in attempts and in total time).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """The moment a ``Retry-After`` header points at, or None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if seconds != seconds or seconds < 0:  # NaN or negative: ignore
            return None
        return datetime.fromtimestamp(now.timestamp() + seconds, UTC)
    for parse in (_parse_iso, _parse_http_date):
        moment = parse(text)
        if moment is not None:
            return moment
    return None


def _parse_iso(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_http_date(text: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# Defaults of the connection extras ``backoff_base_seconds``, ``max_retries`` and
# ``retry_max_total_seconds`` (``ZoomSettings`` refers to these).
DEFAULT_BASE_SECONDS = 1.0
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_MAX_TOTAL_SECONDS = 600.0


@dataclass
class Backoff:
    """Exponential backoff with equal jitter and a budget.

    Equal jitter draws each wait uniformly between half the exponential ceiling and the
    ceiling: the random half spreads the retries of many workers that were throttled at the
    same instant, so they do not collide again, and the fixed half keeps every wait at least
    half the ceiling, so a retry never comes back at once (full jitter could draw nearly 0).
    """

    base_seconds: float = DEFAULT_BASE_SECONDS
    max_seconds: float = 60.0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_total_seconds: float = DEFAULT_MAX_TOTAL_SECONDS
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Wait before retry number ``attempt`` (1-based): uniform in [ceiling / 2, ceiling],
        the ceiling being ``base_seconds * 2 ** (attempt - 1)`` capped at ``max_seconds``."""
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** (attempt - 1)))
        return self.rng.uniform(ceiling / 2, ceiling)

    def allows(self, attempt: int, waited_total: float, next_wait: float) -> bool:
        """Whether retry number ``attempt`` still fits the budget."""
        return attempt <= self.max_attempts and waited_total + next_wait <= self.max_total_seconds
