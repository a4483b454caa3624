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
