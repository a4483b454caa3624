"""How long to wait before trying a request again.

Two separate questions: what the server asked for (``Retry-After`` comes as seconds, as an
HTTP date, or, for Zoom's daily limit, as an ISO datetime) and what to do when it asked for
nothing (exponential backoff with full jitter, bounded in attempts and in total time).
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


@dataclass
class Backoff:
    """Exponential backoff with full jitter and a budget.

    Full jitter (a uniform draw up to the exponential ceiling) spreads the retries of many
    workers that were throttled at the same instant, so they do not collide again.
    """

    base_seconds: float = 1.0
    max_seconds: float = 60.0
    max_attempts: int = 6
    max_total_seconds: float = 600.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Wait before retry number ``attempt`` (1-based)."""
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** (attempt - 1)))
        return self.rng.uniform(ceiling / 2, ceiling)

    def allows(self, attempt: int, waited_total: float, next_wait: float) -> bool:
        """Whether retry number ``attempt`` still fits the budget."""
        return attempt <= self.max_attempts and waited_total + next_wait <= self.max_total_seconds
