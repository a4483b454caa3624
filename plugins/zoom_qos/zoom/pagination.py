"""Following ``next_page_token``, including Zoom's 15-minute token lifetime.

Every Zoom list (sessions, users' QoS) pages the same way, so one paginator serves them all.
A page fetcher is any callable ``fetch(token, deadline) -> page``: ``token`` is None for the
first page, ``deadline`` is the monotonic time after which the token must not be sent (None
for the first page). Keeping the HTTP call outside makes both paginators testable alone.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from zoom_qos.zoom.errors import (
    PageRestartsExhaustedError,
    PageTokenDeadlineError,
    PaginationError,
    ZoomApiError,
    ZoomConfigError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Page = Mapping[str, Any]
PageFetcher = Callable[[str | None, float | None], Page]

#: Zoom's page tokens expire 15 minutes after they are issued (the ``page_token_ttl_seconds``
#: setting defaults to this; it is lowered only to test the restart path).
ZOOM_PAGE_TOKEN_TTL_SECONDS = 900.0
#: A token is not sent in the last minute of its life: the request still has to reach Zoom.
DEFAULT_TOKEN_SAFETY_SECONDS = 60.0
#: Restarts of one list from its first page before paging gives up.
DEFAULT_MAX_RESTARTS = 3
MAX_PAGES = 100_000
#: Empty pages in a row, each with a new token, after which a list is taken not to end. Zoom may
#: cut a page before filtering it, so an empty page with a token can happen, but 20 in a row is a
#: server paging without end (20 sessions-list pages are a minute of its 20 requests a minute).
MAX_EMPTY_PAGES = 20


def next_token(page: Page) -> str | None:
    """The token of the following page; an empty string, null or a missing key ends the list."""
    token = page.get("next_page_token")
    if token is None or token == "":
        return None
    if not isinstance(token, str):
        raise PaginationError(f"next_page_token is not a string: {type(token).__name__}")
    return token


def is_page_token_rejection(error: BaseException) -> bool:
    """Whether an error on a request that carried a page token means "start over".

    What Zoom answers for an expired token is undocumented (HTTP 400 with code 300 has been
    seen). Any client error other than auth and rate limiting, on a request whose only new
    input was the token, is treated as a token rejection; restarts are bounded, so a real
    error still surfaces.
    """
    if isinstance(error, PageTokenDeadlineError):
        return True
    if not isinstance(error, ZoomApiError):
        return False
    if error.status in (401, 403, 429) or error.code == 124:
        return False
    return 400 <= error.status < 500


class _StartOver(Exception):
    """Internal signal: the current pass must begin again from the first page. Control flow, not
    an error of the package: a plain ``Exception``, so no ``except ZoomQosError`` can catch it."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class RestartingPaginator:
    """Pages a list whose tokens expire, restarting from the first page when one does.

    A token is never sent later than ``token_ttl - safety`` seconds after the request that
    returned it was sent (time spent by the consumer and in rate-limit waits counts), and a
    rejected token also restarts the list. Pages read before a restart are yielded again after
    it: consumers key what they keep (users by id and join time) so a re-read item loads once.
    """

    def __init__(
        self,
        token_ttl: float = ZOOM_PAGE_TOKEN_TTL_SECONDS,
        safety: float = DEFAULT_TOKEN_SAFETY_SECONDS,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
        max_pages: int = MAX_PAGES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # The extras page_token_ttl_seconds and page_token_safety_seconds: numbers, the margin
        # below the lifetime (NaN, text, a bool: refused like any other wrong value).
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (token_ttl, safety))
        if not (numbers and token_ttl - safety > 0):
            raise ZoomConfigError(
                f"Connection extras 'page_token_ttl_seconds' ({token_ttl!r}) and "
                f"'page_token_safety_seconds' ({safety!r}) must be numbers of seconds, the margin less "
                "than the lifetime, or no page token could ever be sent: fix them, or remove both to "
                "use the defaults.")
        self.token_lifetime = token_ttl - safety
        self.max_restarts = max_restarts
        self.max_pages = max_pages
        self._clock = clock
        self.restarts = 0

    def pages(self, fetch: PageFetcher, what: str = "list", items: str | None = None) -> Iterator[Page]:
        """The pages of the list ``what`` (named in errors); ``items``, the field holding a page's
        items, makes ``MAX_EMPTY_PAGES`` empty pages in a row an error."""
        restarts_here = 0
        while True:
            try:
                yield from self._one_pass(fetch, what, items)
                return
            except _StartOver as signal:
                error = signal.error
            restarts_here += 1
            self.restarts += 1
            if restarts_here > self.max_restarts:
                raise PageRestartsExhaustedError(
                    f"Paging {what} restarted {self.max_restarts} times because page tokens "
                    f"expired or were rejected (last: {error}). Zoom tokens live 15 minutes: "
                    "check for long rate-limit waits or a slow consumer, or raise "
                    "max_page_restarts in the connection extras."
                ) from error
            log.warning(
                "Restarting %s from its first page (restart %d of at most %d): %s",
                what, restarts_here, self.max_restarts, error,
            )

    def _one_pass(self, fetch: PageFetcher, what: str, items: str | None) -> Iterator[Page]:
        seen: set[bytes] = set()  # digests: a hostile server's tokens may be megabytes each
        token: str | None = None
        deadline: float | None = None
        empty = 0
        for number in range(1, self.max_pages + 1):
            if deadline is not None and self._clock() >= deadline:
                raise _StartOver(PageTokenDeadlineError("the page token reached its lifetime before use"))
            sent_at = self._clock()
            try:
                page = fetch(token, deadline)
            except (PageTokenDeadlineError, ZoomApiError) as error:
                # Only a request that carried a token can fail because of the token.
                if token is not None and is_page_token_rejection(error):
                    raise _StartOver(error) from error
                raise
            token = next_token(page)
            deadline = sent_at + self.token_lifetime
            yield page
            if token is None:
                return
            digest = hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=16).digest()
            if digest in seen:
                raise PaginationError(
                    f"Paging {what}: page {number} returned a next_page_token Zoom had already returned, "
                    f"so the list would never end. {_NOT_KEPT}")
            seen.add(digest)
            empty = empty + 1 if items is not None and not page.get(items) else 0
            if empty >= MAX_EMPTY_PAGES:
                raise PaginationError(
                    f"Paging {what}: {empty} empty pages in a row, each with a new next_page_token "
                    f"(page {number}), so the list would not end. {_NOT_KEPT}")
        raise PaginationError(f"Paging {what}: stopped after {self.max_pages:,} pages without reaching "
                              f"the end. {_NOT_KEPT}")


_NOT_KEPT = "Nothing of this list was kept; retry the task later, and report it to Zoom if it persists."


def last_pass(pages: Iterable[tuple[int, Sequence[T]]]) -> list[T]:
    """The items of a list read whole, as of its last pass: ``pages`` yields ``(restarts so far,
    page)`` as the endpoints' page iterators do, and a page-token restart starts the list over, so
    what came before it is dropped (Zoom may have reordered it)."""
    items: list[T] = []
    restarts = 0
    for restarts_now, page in pages:
        if restarts_now != restarts:
            restarts, items = restarts_now, []
        items.extend(page)
    return items
