"""Typed errors, so callers decide by kind instead of parsing messages.

Messages name what failed and what to do; they never include credentials or tokens.
"""

from __future__ import annotations

from datetime import datetime


class ZoomApiError(Exception):
    """Zoom answered with an error body (``{"code": …, "message": …}``)."""

    def __init__(
        self,
        status: int,
        code: int | None,
        message: str,
        endpoint: str,
        session_id: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.zoom_message = message
        self.endpoint = endpoint
        self.session_id = session_id
        where = f" for session {session_id!r}" if session_id else ""
        super().__init__(
            f"Zoom API error on GET {endpoint}{where}: HTTP {status}, code {code}: {message}"
        )

    @property
    def session_gone(self) -> bool:
        """A listed session that Zoom no longer serves (404/3001 or 400/300 "invalid session")."""
        return (self.status == 404 and self.code in (3001, None)) or (
            self.status == 400 and self.code == 300 and "session" in self.zoom_message.lower()
        )


class ZoomAuthError(ZoomApiError):
    """The JWT was refused even after renewing it: key or secret are wrong."""


class ZoomDailyLimitError(ZoomApiError):
    """The account's daily request cap is spent; nothing more can be read before ``reset_at``."""

    def __init__(self, status: int, code: int | None, message: str, endpoint: str,
                 reset_at: datetime | None) -> None:
        super().__init__(status, code, message, endpoint)
        self.reset_at = reset_at
        when = reset_at.isoformat() if reset_at else "an unknown time (no Retry-After header)"
        self.args = (
            f"Zoom's daily request limit is exhausted (GET {endpoint}); it resets at {when}. "
            "Everything read so far is kept; clear the task after the reset to resume.",
        )


class RetriesExhaustedError(Exception):
    """A request kept failing with retryable errors past the retry budget."""


class PageTokenDeadlineError(Exception):
    """A page token would be older than its lifetime before the request could be sent."""


class PaginationError(Exception):
    """The server's paging does not terminate (a token came back twice, or too many pages)."""


class PageRestartsExhaustedError(Exception):
    """A list had to restart from its first page more often than allowed."""


class DailyBudgetExhaustedError(ZoomDailyLimitError):
    """Our own count of today's requests reached the caller's share of Zoom's daily cap.

    Raised *before* a request is sent (see ``budget.py``), so nothing was lost and Zoom's cap is
    not touched. It is a ``ZoomDailyLimitError`` with ``reset_at`` set to the next 00:00 UTC, so
    whatever parks a task on Zoom's own daily 429 parks it on this too. ``day`` is the UTC day
    counted (``YYYY-MM-DD``); ``spent`` all of its requests, ``scheduled_spent`` those of
    scheduled runs, which a backfill's share depends on. The message carries counts only, never
    the account or a credential.
    """

    def __init__(self, *, day: str, spent: int, daily_limit: int, reserve: int, requested: int,
                 reset_at: datetime, endpoint: str = "", scheduled_spent: int = 0) -> None:
        if reserve:
            # The reserve is held for scheduled runs until they spend it, so the backfill's share
            # shrinks only once they have spent more than the reserve.
            share = daily_limit - max(reserve, scheduled_spent)
            message = (
                f"The backfill's share of today's Zoom request budget is spent: {spent:,} of "
                f"{daily_limit:,} requests are counted for {day} (UTC), {scheduled_spent:,} of them by "
                f"scheduled runs. Backfills and range reloads may use {daily_limit:,} less the larger "
                f"of the reserve kept for scheduled runs (backfill_reserve_requests, {reserve:,}) and "
                f"what scheduled runs spent: {share:,} today."
            )
        else:
            message = (
                f"Today's Zoom request budget is spent: {spent:,} of {daily_limit:,} requests "
                f"(daily_request_limit) are counted for {day} (UTC)."
            )
        more = "1 more request" if requested == 1 else f"{requested:,} more requests"
        message += (
            f" {more} would exceed it, so nothing was sent; resuming after 00:00 UTC "
            f"({reset_at.isoformat()}). Everything read so far is kept."
        )
        super().__init__(429, None, message, endpoint or "(daily request budget)", reset_at)
        self.day = day
        self.spent = spent
        self.scheduled_spent = scheduled_spent
        self.daily_limit = daily_limit
        self.reserve = reserve
        self.requested = requested
        self.args = (message,)
