"""The Zoom Video SDK REST client: one request paced, budgeted, retried and classified, and the
endpoints the pipeline reads. No Airflow here (``hooks.py`` adapts an Airflow connection to it).

Threads: one client serves every thread of an extraction task. The JWT auth, the rate limiter,
the daily budget and the stats are shared (all thread-safe); each thread gets its own
``requests.Session`` (``transport``). What each of Zoom's answers means is ``classify``'s.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol, get_args

import requests
from requests.adapters import HTTPAdapter

from zoom_qos.core.errors import PermanentError
from zoom_qos.zoom.auth import ZoomJwtAuth
from zoom_qos.zoom.bodies import (
    BodyError,
    is_object,
    is_raw_object,
    json_object,
    list_field,
    raw_qos_page,
)
from zoom_qos.zoom.budget import DailyBudget, UnlimitedBudget, account_key, budget_for
from zoom_qos.zoom.classify import (
    TRANSPORT_ERRORS,
    Accept,
    Outcome,
    Refuse,
    RenewAuth,
    Request,
    Retry,
    classify,
    transport_cause,
)
from zoom_qos.zoom.errors import (
    AUTH_REFUSED_MESSAGE,
    PageTokenDeadlineError,
    RetriesExhaustedError,
    ZoomAuthError,
)
from zoom_qos.zoom.ids import encode_session_id, shown_id
from zoom_qos.zoom.pagination import MAX_PAGES, RestartingPaginator
from zoom_qos.zoom.published import (
    DAILY_USAGE,
    HEAVY,
    MEDIUM,
    RESOURCE_INTENSIVE,
    SESSIONS,
    WEBHOOK_LOGS,
    WEBHOOK_LOGS_FAILED,
)
from zoom_qos.zoom.ratelimit import RateLimiter, RedisRateLimiter
from zoom_qos.zoom.retry import Backoff
from zoom_qos.zoom.settings import ZoomSettings
from zoom_qos.zoom.transport import ThreadSessions, read_body

log = logging.getLogger(__name__)

#: Joins of one session whose pages a session's list may take: Zoom lets up to 5,000 users join a
#: Video SDK session; with ten joins each (a reconnect is a join), 50,000 joins are 5,000 QoS pages
#: of 10, about two minutes at Business+ pace, where ``MAX_PAGES`` would be 40 minutes.
MAX_SESSION_JOINS = 50_000

#: A decoded JSON object, as Zoom's bodies are.
JsonDict = dict[str, Any]
#: One query parameter's value; None means "do not send it" (the first page has no token).
QueryValue = str | int | float | None
#: Zoom's ``type`` parameter of the session endpoints: ended sessions, or sessions running now.
SessionType = Literal["past", "live"]
SESSION_TYPES: tuple[SessionType, ...] = get_args(SessionType)


@dataclass
class RequestStats:
    """What talking to Zoom cost; copied into the run record."""

    requests: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    rate_limit_wait_seconds: float = 0.0
    jwt_renewals_on_401: int = 0
    token_restarts: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


class ZoomSource(Protocol):
    """What hands out a client lazily (the Airflow hook does): the connection is read, and its
    settings refused when wrong, only when ``client`` is first used; ``stats`` exists before, so
    the record of a run that failed to build its client still has its (zero) cost."""

    stats: RequestStats

    @property
    def client(self) -> ZoomClient: ...


class ZoomClient:
    """Reads Zoom's Video SDK REST API (``/videosdk/...``) for one account."""

    def __init__(
        self,
        settings: ZoomSettings,
        *,
        api_key: str,
        api_secret: str,
        base_url: str,
        backfill: bool = False,
        live: bool = False,
        conn_id: str = "",
        headers: Mapping[str, str] | None = None,
        adapter_factory: Callable[[], HTTPAdapter] | None = None,
        on_secret: Callable[[str], None] | None = None,
        stats: RequestStats | None = None,
        rate_limit_redis_url: str = "",
        budget_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """``base_url`` includes ``/v2``. ``backfill``: spend only the daily budget's share left
        after the scheduled-run reserve. ``live``: this client polls live sessions and spends only
        live polling's share (``live_daily_request_budget``; see ``zoom.budget``); one client per
        task, never both ``backfill`` and ``live``. ``conn_id`` names where the credentials came from, in
        errors about the account. ``adapter_factory`` makes the transport adapter mounted for
        ``http://`` and ``https://`` on each thread's Session (called once per Session, so no two
        threads share a connection pool); None keeps requests' default. ``on_secret`` is told the
        API secret and every JWT (e.g. a log masker's ``mask_secret``). ``stats`` lets the
        caller hold the counters before the client exists. ``rate_limit_redis_url`` shares the pacing
        and the daily count through Redis (the connection's extra of that name wins); without it
        they are per process and per ``budget_dir`` (the file counter's folder).

        Raises ``ValueError`` for missing credentials, an unusable daily budget or both
        ``backfill`` and ``live``, before any request.
        """
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self.conn_id = conn_id
        self.stats = stats if stats is not None else RequestStats()
        self._api_key_hint = _key_hint(api_key)
        self.auth = ZoomJwtAuth(api_key, api_secret, settings.jwt_ttl_seconds, on_secret=on_secret)
        self._sessions = ThreadSessions(self.auth, {"Accept": "application/json", **(headers or {})},
                                        settings.verify, adapter_factory)
        redis_url = settings.rate_limit_redis_url or rate_limit_redis_url
        # Limits and the daily cap are per Zoom account: shared counters are keyed by the API key, hashed.
        account = account_key(api_key)
        self._limiter: RateLimiter | RedisRateLimiter
        if redis_url:
            self._limiter = RedisRateLimiter(redis_url, account, settings.heavy_requests_per_second,
                                             settings.resource_intensive_requests_per_minute)
        else:
            self._limiter = RateLimiter(settings.heavy_requests_per_second,
                                        settings.resource_intensive_requests_per_minute)
        self._budget: DailyBudget | UnlimitedBudget = budget_for(
            daily_limit=settings.daily_request_limit,
            reserve=settings.backfill_reserve_requests,
            live_budget=settings.live_daily_request_budget,
            backfill=backfill,
            live=live,
            account=account,
            redis_url=redis_url,
            directory=budget_dir,
        )
        self.backfill = backfill
        self.live = live
        self._stats_lock = threading.Lock()

    # --- sessions ---------------------------------------------------------------------------
    def session(self) -> requests.Session:
        """The calling thread's Session (made on its first request): kept-alive connections are
        reused by the thread that opened them, and no pool is shared between threads."""
        return self._sessions.session()

    def session_count(self) -> int:
        """Sessions open now: one per thread that sent a request since the last ``close()``."""
        return self._sessions.count()

    def close(self) -> None:
        """Close every thread's Session and its connections. The client stays usable: a thread's
        next request opens a new Session."""
        self._sessions.close()

    def _count(self, **deltas: float) -> None:
        with self._stats_lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def get_json(
        self,
        endpoint: str,
        params: Mapping[str, QueryValue],
        category: str,
        *,
        deadline: float | None = None,
        session_id: str | None = None,
        decode: Callable[[bytes], JsonDict] = json_object,
    ) -> JsonDict:
        """GET one endpoint and return its JSON object, paced, budgeted, retried and classified.

        Every attempt first waits for the rate limiter and counts against the daily budget
        (which raises, sending nothing, when spent). Retries 5xx, transport errors (TLS errors
        included), truncated bodies and per-second 429s with bounded backoff; renews the JWT
        once on 401/124; raises ``ZoomDailyLimitError`` on a daily 429 and ``ZoomApiError`` on
        other client errors. ``deadline`` (monotonic seconds) is the page token's lifetime: no
        wait may carry the request past it. ``decode`` turns the body into the returned object
        and raises ``BodyError`` for a body to retry. Parameters that are None are not sent.

        The body is streamed and read no further than ``MAX_BODY_BYTES`` (an error answer's no
        further than ``ERROR_BODY_BYTES``). A ``BodyError`` that is a ``PermanentError`` (a body too
        large or too deeply nested) is raised at once, naming the URL without its query.
        """
        session = self.session()
        settings = self.settings
        backoff = Backoff(
            base_seconds=settings.backoff_base_seconds,
            max_attempts=settings.max_retries,
            max_total_seconds=settings.retry_max_total_seconds,
        )
        url = f"{self.base_url}/{endpoint.lstrip('/')}"
        path = endpoint.split("?")[0]
        # The URL without its query: a page token never reaches a message.
        where = f"GET {self.base_url}/{path.lstrip('/')}" + (
            f" (session {shown_id(session_id)})" if session_id else "")
        clean = {k: v for k, v in params.items() if v is not None}
        request = Request(path, session_id, self.conn_id, self._api_key_hint)
        timeout = (min(10.0, settings.timeout_seconds), settings.timeout_seconds)
        attempt = 0
        waited = 0.0
        renewed = False
        while True:
            # Counted first, then paced: a slot is only ever taken right before its request. Had the
            # count to wait (its Redis away), a slot taken before it would be stale by then, and every
            # thread waiting so would send at once when Redis came back.
            if category != MEDIUM:  # Zoom's daily cap counts Heavy and Resource-intensive calls only
                self._budget.spend(endpoint=path)  # raises, sending nothing, when spent
            waited_here = self._limiter.acquire(category)
            if waited_here:
                waited += waited_here
            if deadline is not None and time.monotonic() >= deadline:
                raise PageTokenDeadlineError("the page token would be sent after its lifetime")
            self._count(requests=1)
            try:
                # ``verify`` per request: a Session's would lose to REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE.
                response = session.get(url, params=clean, timeout=timeout, verify=settings.verify,
                                       stream=True)
                with response:  # streamed: the connection goes back to the pool once read
                    body = read_body(response, where)
            except TRANSPORT_ERRORS as exc:
                outcome: Outcome = Retry(f"{type(exc).__name__}: {transport_cause(exc)}")
            else:
                outcome = classify(response.status_code, response.headers, body, request,
                                   datetime.now(UTC), response.reason or "")
            if isinstance(outcome, Accept):
                try:
                    return decode(outcome.body)
                except BodyError as error:
                    if isinstance(error, PermanentError):
                        raise type(error)(
                            f"{where} answered 200 with {error}. Not retried: the same request "
                            "would bring the same body back. Check that the connection's host is "
                            "Zoom's API; if it is, report it to Zoom.") from error
                    outcome = Retry(str(error))
            elif isinstance(outcome, RenewAuth):
                if renewed:
                    raise outcome.error
                renewed = True
                self.auth.invalidate()
                self._count(jwt_renewals_on_401=1)
                continue
            elif isinstance(outcome, Refuse):
                raise outcome.error
            if outcome.rate_limited:
                self._count(rate_limit_waits=1, rate_limit_wait_seconds=outcome.delay or 0.0)
            reason, delay = outcome.reason, outcome.delay
            attempt += 1
            if delay is None:
                delay = backoff.delay(attempt)
            if not backoff.allows(attempt, waited, delay):
                # The URL without its query: a page token never reaches a message.
                raise RetriesExhaustedError(
                    f"GET {self.base_url}/{path.lstrip('/')} failed {attempt} times (last: {reason}); "
                    f"gave up after {waited:.0f}s of waiting. Zoom or the network is unhealthy: check "
                    "the connection's host and the network (DNS, proxy, TLS), or retry the task later."
                )
            if deadline is not None and time.monotonic() + delay >= deadline:
                raise PageTokenDeadlineError("waiting to retry would outlive the page token")
            log.warning("GET %s: %s; retry %d in %.1fs", endpoint, reason, attempt, delay)
            self._count(retries=1)
            time.sleep(delay)
            waited += delay

    # --- endpoints --------------------------------------------------------------------------
    def _paginator(self, page_size: int | None = None) -> RestartingPaginator:
        """A paginator for one list; ``page_size``, for a session's list of joins, caps its pages
        at what ``MAX_SESSION_JOINS`` fill."""
        s = self.settings
        return RestartingPaginator(
            token_ttl=s.page_token_ttl_seconds,
            safety=s.page_token_safety_seconds,
            max_restarts=s.max_page_restarts,
            max_pages=MAX_PAGES if page_size is None else -(-MAX_SESSION_JOINS // max(1, page_size)) + 1,
        )

    def iter_past_sessions(self, from_date: date, to_date: date) -> Iterator[JsonDict]:
        """Past sessions that started in [from_date, to_date]; the range must fit Zoom's month rule.

        After a page-token restart sessions repeat: callers key them by ``id``.
        """
        return self._iter_sessions("past", from_date, to_date)

    def iter_live_sessions(self, from_date: date, to_date: date) -> Iterator[JsonDict]:
        """Sessions running now (``type=live``) that started in [from_date, to_date], as
        :meth:`iter_past_sessions` pages them (same range rules, same restarts: key them by ``id``).

        A session running over midnight started the day before: ask from yesterday to today.
        """
        return self._iter_sessions("live", from_date, to_date)

    def _iter_sessions(self, session_type: SessionType, from_date: date, to_date: date) -> Iterator[JsonDict]:
        params: dict[str, QueryValue] = {"type": _session_type(session_type), "from": from_date.isoformat(),
                                         "to": to_date.isoformat(), "page_size": self.settings.list_page_size}
        paginator = self._paginator()

        def fetch(token: str | None, deadline: float | None) -> JsonDict:
            return self.get_json(SESSIONS.path, {**params, "next_page_token": token},
                                 RESOURCE_INTENSIVE, deadline=deadline)

        try:
            for page in paginator.pages(fetch, what=f"{session_type} sessions {from_date}..{to_date}",
                                        items="sessions"):
                yield from list_field(page, "sessions", SESSIONS.path)
        finally:
            self._count(token_restarts=paginator.restarts)

    def iter_session_qos_pages(self, session_id: str, *, session_type: SessionType = "past"
                               ) -> Iterator[tuple[int, list[bytes]]]:
        """A session's users, page by page, each user as the raw JSON Zoom sent
        (``zoom.bodies.decode_user`` decodes one).

        Yields ``(restarts, users)``: when ``restarts`` grows, a page token expired or was
        rejected and the list starts again from its first page, so what the caller kept of
        the earlier pass is superseded. ``session_type`` is sent as ``type``: ``"past"`` (the
        default) for an ended session, ``"live"`` for one running now; it is always sent,
        since Zoom's default is ``live``. Zoom answers 404/3001 for a session of the other type.
        """
        endpoint = f"videosdk/sessions/{encode_session_id(session_id)}/users/qos"
        params: dict[str, QueryValue] = {"type": _session_type(session_type),
                                         "page_size": self.settings.qos_page_size}
        return self._session_pages(endpoint, "videosdk/sessions/{id}/users/qos", params, session_id,
                                   f"QoS of {session_type} session", raw_qos_page, is_raw_object)

    def iter_session_users_pages(self, session_id: str, *, session_type: SessionType = "past"
                                 ) -> Iterator[tuple[int, list[JsonDict]]]:
        """A session's joins with their quality grades (``GET /videosdk/sessions/{id}/users``),
        page by page, as ``(restarts, users)`` like :meth:`iter_session_qos_pages` (and with the
        same ``session_type``)."""
        endpoint = f"videosdk/sessions/{encode_session_id(session_id)}/users"
        params: dict[str, QueryValue] = {"type": _session_type(session_type),
                                         "page_size": self.settings.users_page_size}
        return self._session_pages(endpoint, "videosdk/sessions/{id}/users", params, session_id,
                                   f"users of {session_type} session", json_object, is_object)

    def _session_pages(self, endpoint: str, template: str, params: Mapping[str, QueryValue], session_id: str,
                       what: str, decode: Callable[[bytes], JsonDict], is_item: Callable[[Any], bool]
                       ) -> Iterator[tuple[int, list[Any]]]:
        """The pages of one session's joins (``template``: the path in errors), restarting when a
        page token expires."""
        page_size = params.get("page_size")
        paginator = self._paginator(page_size if isinstance(page_size, int) else None)

        def fetch(token: str | None, deadline: float | None) -> JsonDict:
            return self.get_json(endpoint, {**params, "next_page_token": token}, HEAVY,
                                 deadline=deadline, session_id=session_id, decode=decode)

        try:
            for page in paginator.pages(fetch, what=f"{what} {shown_id(session_id)}", items="users"):
                yield paginator.restarts, list_field(page, "users", template, is_item, session_id)
        finally:
            self._count(token_restarts=paginator.restarts)

    def daily_usage(self, year: int, month: int) -> list[JsonDict]:
        """Zoom's own count of each day of a month (``GET /videosdk/report/daily``): one request."""
        page = self.get_json(DAILY_USAGE.path, {"year": year, "month": month}, DAILY_USAGE.category)
        return list_field(page, DAILY_USAGE.list_field, DAILY_USAGE.path)

    def iter_webhook_logs(self, from_time: datetime, to_time: datetime, *,
                          log_type: int = WEBHOOK_LOGS_FAILED) -> Iterator[JsonDict]:
        """Zoom's log of its webhook deliveries to this app in [from_time, to_time] (at most the
        last seven days; ``GET /videosdk/report/webhook_logs``, a Medium call outside the daily
        cap): by default only the failed ones. After a page-token restart entries repeat: callers
        key them by ``request_id`` and ``retry_num``."""
        params: dict[str, QueryValue] = {
            "from": _zoom_time(from_time), "to": _zoom_time(to_time), "type": log_type,
            "page_size": WEBHOOK_LOGS.max_page_size}
        paginator = self._paginator()

        def fetch(token: str | None, deadline: float | None) -> JsonDict:
            return self.get_json(WEBHOOK_LOGS.path, {**params, "next_page_token": token},
                                 WEBHOOK_LOGS.category, deadline=deadline)

        try:
            for page in paginator.pages(fetch, what=f"webhook logs {params['from']}..{params['to']}",
                                        items=WEBHOOK_LOGS.list_field):
                yield from list_field(page, WEBHOOK_LOGS.list_field, WEBHOOK_LOGS.path)
        finally:
            self._count(token_restarts=paginator.restarts)

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated request (today's sessions, one per page), for a UI's Test
        button: returns ``(ok, message)`` and never raises."""
        today = datetime.now(UTC).date()
        try:
            self.get_json(SESSIONS.path, {"type": "past", "from": today.isoformat(),
                                          "to": today.isoformat(), "page_size": 1},
                          RESOURCE_INTENSIVE)
        except ZoomAuthError:
            return False, f"{AUTH_REFUSED_MESSAGE}."
        except Exception as exc:  # the UI shows the message, never a traceback
            return False, f"Could not reach Zoom: {exc}"
        return True, "Connected: Zoom accepted the Video SDK API key and secret."


def _session_type(value: object) -> SessionType:
    """``value`` if it is a ``type`` Zoom accepts (``past``, ``live``); else ``ValueError``, before
    any request."""
    for session_type in SESSION_TYPES:
        if value == session_type:
            return session_type
    raise ValueError(f"session_type must be one of {', '.join(SESSION_TYPES)}, got {value!r}")


def _zoom_time(moment: datetime) -> str:
    """``yyyy-MM-dd'T'HH:mm:ss'Z'``, the only form ``webhook_logs`` takes (naive means UTC)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key_hint(api_key: str) -> str:
    """Enough of the API key to tell accounts apart in a message, never the whole key."""
    return f"{api_key[:4]}…" if len(api_key) > 4 else "(set)" if api_key else "(empty)"
