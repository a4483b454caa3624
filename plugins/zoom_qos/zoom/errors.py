"""Zoom's answers and the client's own errors, under the roots of ``core.errors``.

Zoom's error bodies are ``ZoomApiError`` (with the HTTP status and Zoom's code); the typed children
that no retry can cure (a wrong account, scope, endpoint or key) are ``PermanentError`` too. A stop
until a daily reset, whether Zoom's 429 or our own request budget, is a ``DailyLimitReached``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from zoom_qos.core.errors import (
    DailyLimitReached,
    PermanentError,
    SettingsError,
    TransientError,
    ZoomQosError,
)
from zoom_qos.zoom.published import ErrorCode


class ZoomApiError(ZoomQosError):
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
        super().__init__(self.explain())

    def explain(self) -> str:
        """The message: what Zoom answered and, in the typed children, what to check."""
        where = f" for session {self.session_id!r}" if self.session_id else ""
        return (f"Zoom API error on GET {self.endpoint}{where}: HTTP {self.status}, code {self.code}: "
                f"{self.zoom_message}")

    @property
    def session_not_ready(self) -> bool:
        """404/3001: "not available … or the session has not ended yet". A listed session can
        answer this while Zoom is still processing it, so it is no proof that it is gone."""
        return self.status == 404 and self.code == ErrorCode.SESSION_NOT_AVAILABLE

    @property
    def session_unavailable(self) -> bool:
        """Zoom will not serve this session's QoS: 400/12702 (too old), or 400/300 about the
        *session id*. Zoom uses 300 for any invalid field, so a 300 about ``page_size``, a date
        or anything else is not about the session and fails the run instead."""
        if self.status != 400:
            return False
        if self.code == ErrorCode.SESSION_TOO_OLD:
            return True
        return self.code == ErrorCode.INVALID_FIELD and bool(_SESSION_ID_MESSAGE.search(self.zoom_message))


_SESSION_ID_MESSAGE = re.compile(r"\bsession\s*id\b", re.IGNORECASE)


class BodyError(TransientError, ValueError):
    """A 200 response whose body is not a usable JSON object.

    A ``TransientError``: a truncated body or another type may be a fault on the way, and the
    client retries it. Subclasses whose fault is the content itself are ``PermanentError`` too:
    the client raises them at once, and the task fails without retrying.
    """


class BodyTooLargeError(BodyError, PermanentError):
    """A body longer than ``zoom.bodies.MAX_BODY_BYTES`` (declared or read): refused, never
    retried, and the task fails at once (the same request brings it back)."""


class BodyTooDeepError(BodyError, PermanentError):
    """A body nested deeper than the decoders can follow: refused, never retried, and the task
    fails at once."""


class MalformedPageError(TransientError):
    """A 200 page whose list field is not a list: nothing of that list is kept. Perhaps a fault on
    the way, so the task's retry may read it; ``session_id`` is the session whose list it was."""

    def __init__(self, message: str, endpoint: str, session_id: str | None = None) -> None:
        self.endpoint, self.session_id = endpoint, session_id
        where = f" for session {session_id!r}" if session_id else ""
        super().__init__(f"Zoom answered GET {endpoint}{where} with HTTP 200, but {message}")


class ZoomConfigError(SettingsError):
    """A connection setting that Zoom would refuse (found before any request is sent)."""


class ZoomAccountError(ZoomApiError, PermanentError):
    """400/200: the credentials belong to an account that is not a Video SDK account."""

    def __init__(self, status: int, code: int | None, message: str, endpoint: str,
                 session_id: str | None = None, *, conn_id: str = "", api_key_hint: str = "") -> None:
        self.conn_id, self.api_key_hint = conn_id, api_key_hint
        super().__init__(status, code, message, endpoint, session_id)

    def explain(self) -> str:
        return (
            f"Zoom answered GET {self.endpoint} with HTTP {self.status}, code {self.code} "
            f"({self.zoom_message!r}): the account of connection {self.conn_id!r} (API key "
            f"{self.api_key_hint}) is not a Video SDK account. Check that the connection's login is "
            "the API key of a Video SDK app (App Marketplace > your Video SDK app > API keys), not "
            "the SDK key or the key of a Meetings app."
        )


class ZoomForbiddenError(ZoomApiError, PermanentError):
    """403: the app lacks a scope, or the account a plan or feature, that the endpoint needs."""

    def explain(self) -> str:
        return (
            f"Zoom refused GET {self.endpoint} with HTTP 403 (code {self.code}: {self.zoom_message!r}): "
            "the Video SDK app lacks a scope, or the account a plan or feature, that this endpoint "
            "needs (the session list needs the dashboard feature of a paid plan). Fix it in Zoom's "
            "App Marketplace or the account's plan, then clear the task."
        )


class ZoomEndpointError(ZoomApiError, PermanentError):
    """404/2300: Zoom did not recognize the endpoint (what an over-encoded path produces)."""

    def explain(self) -> str:
        where = f" (session {self.session_id!r})" if self.session_id else ""
        return (
            f"Zoom did not recognize the endpoint GET {self.endpoint}{where}: HTTP 404, code "
            f"{self.code} ({self.zoom_message!r}). This is what an over-encoded path produces (a whole "
            "path URL-encoded twice), or a base URL without /v2: check the connection's host; if it "
            "is right, this is a bug in the session-id encoding, please report it."
        )


#: What to do when Zoom refuses the credentials, in the task's error and the UI's Test button alike.
AUTH_REFUSED_MESSAGE = (
    "Zoom refused the credentials (401, code 124): the connection's login must be the Video SDK API "
    "key (not the SDK key) and its password the API secret")


class ZoomAuthError(ZoomApiError, PermanentError):
    """The JWT was refused even after renewing it: key or secret are wrong.

    The client has already signed a fresh token and been refused again, so no retry can help: the
    message says which connection fields to fix (``AUTH_REFUSED_MESSAGE``), then Zoom's own answer.
    """

    def explain(self) -> str:
        where = f" for session {self.session_id!r}" if self.session_id else ""
        return (f"{AUTH_REFUSED_MESSAGE}. Zoom answered GET {self.endpoint}{where} with HTTP "
                f"{self.status}, code {self.code}: {self.zoom_message!r}.")



class SharedLimiterUnavailableError(TransientError):
    """The Redis that shares the account's pacing and daily count stayed unreachable past the wait.

    Nothing was sent to Zoom while it was away (the account's rate cannot be kept without it), so
    nothing was lost; not permanent: the task's retry goes on once Redis is back.
    """



class ZoomDailyLimitError(ZoomApiError, DailyLimitReached):
    """Zoom's 429 for the account's daily request cap; nothing more can be read before ``reset_at``."""

    def __init__(self, status: int, code: int | None, message: str, endpoint: str,
                 reset_at: datetime | None) -> None:
        super().__init__(status, code, message, endpoint)
        self.reset_at = reset_at
        when = reset_at.isoformat() if reset_at else "an unknown time (no Retry-After header)"
        self.args = (
            f"Zoom's daily request limit is exhausted (GET {endpoint}); it resets at {when}. "
            "Everything read so far is kept.",
        )


class RetriesExhaustedError(TransientError):
    """A request kept failing with retryable errors past the retry budget."""


class PageTokenDeadlineError(TransientError):
    """A page token would be older than its lifetime before the request could be sent."""


class PaginationError(TransientError):
    """The server's paging does not terminate (a token came back twice, or too many pages)."""


class PageRestartsExhaustedError(TransientError):
    """A list had to restart from its first page more often than allowed."""


class DailyBudgetExhaustedError(DailyLimitReached):
    """Our own count of today's requests reached the caller's share of Zoom's daily cap.

    Raised *before* a request is sent (see ``zoom/budget.py``), so nothing was lost and Zoom's cap
    is not touched: no HTTP answer is involved. ``reset_at`` is the next 00:00 UTC, and a task parks
    on it as on Zoom's own daily 429. ``day`` is the UTC day
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
        super().__init__(message)
        self.reset_at = reset_at
        self.endpoint = endpoint
        self.day = day
        self.spent = spent
        self.scheduled_spent = scheduled_spent
        self.daily_limit = daily_limit
        self.reserve = reserve
        self.requested = requested


class LiveBudgetExhaustedError(DailyBudgetExhaustedError):
    """Live polling's share of today's requests (``live_daily_request_budget``) is spent.

    A ``DailyBudgetExhaustedError`` like the others (raised before sending, ``reset_at`` the next
    00:00 UTC), told apart by ``kind == "live"``: live polling pauses until the reset, it does
    not fail. ``live_spent`` is today's live requests, ``live_budget`` the share; ``spent``,
    ``scheduled_spent`` and ``daily_limit`` are the whole day's, as in the parent.
    """

    kind: Literal["live"] = "live"

    def __init__(self, *, day: str, spent: int, scheduled_spent: int, live_spent: int,
                 live_budget: int, daily_limit: int, requested: int, reset_at: datetime,
                 endpoint: str = "") -> None:
        super().__init__(day=day, spent=spent, scheduled_spent=scheduled_spent, daily_limit=daily_limit,
                         reserve=0, requested=requested, reset_at=reset_at, endpoint=endpoint)
        self.live_spent = live_spent
        self.live_budget = live_budget
        more = "1 more request" if requested == 1 else f"{requested:,} more requests"
        if live_spent + requested > live_budget:
            why = (f"The live polling's share (live_daily_request_budget = {live_budget:,}) of today's "
                   f"requests is spent: {live_spent:,} live requests are counted for {day} (UTC)")
        else:  # the share is not spent, the whole cap is (other callers counted past their shares)
            why = (f"Today's Zoom request budget is spent: {spent:,} of {daily_limit:,} requests "
                   f"(daily_request_limit) are counted for {day} (UTC), {live_spent:,} of them by "
                   f"live polling (its share, live_daily_request_budget, is {live_budget:,})")
        self.args = (f"{why}; {more} would exceed it, so nothing was sent; live polling resumes "
                     f"after 00:00 UTC ({reset_at.isoformat()}).",)
