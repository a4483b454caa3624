"""The Zoom Video SDK REST client: one request paced, budgeted, retried and classified, and the
endpoints the pipeline reads. No Airflow here (``hooks.py`` adapts an Airflow connection to it).

Threads: one client serves every thread of an extraction task. The JWT auth, the rate limiter,
the daily budget and the stats are shared (all thread-safe); each thread gets its own
``requests.Session``, because a Session's connection pool holds 10 connections per host and a
task reading 16 sessions at once through one Session keeps discarding the surplus ("Connection
pool is full, discarding connection") and opening new TLS connections instead of reusing them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import ssl
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
from zoom_qos.zoom.bodies import BodyError, capped_body, is_raw_object, json_object, raw_qos_page
from zoom_qos.zoom.budget import DailyBudget, UnlimitedBudget, account_key, budget_for
from zoom_qos.zoom.errors import (
    AUTH_REFUSED_MESSAGE,
    PageTokenDeadlineError,
    RetriesExhaustedError,
    ZoomAccountError,
    ZoomApiError,
    ZoomAuthError,
    ZoomDailyLimitError,
    ZoomEndpointError,
    ZoomForbiddenError,
)
from zoom_qos.zoom.ids import encode_session_id, shown_id
from zoom_qos.zoom.pagination import MAX_PAGES, RestartingPaginator
from zoom_qos.zoom.published import DAILY_USAGE, HEAVY, RESOURCE_INTENSIVE, SESSIONS, ErrorCode
from zoom_qos.zoom.ratelimit import RateLimiter, RedisRateLimiter
from zoom_qos.zoom.retry import Backoff, parse_retry_after
from zoom_qos.zoom.settings import ZoomSettings

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {500, 502, 503, 504}
TRANSPORT_ERRORS = (
    requests.ConnectionError,  # includes SSLError and ProxyError
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)

#: The most of an error answer's body read: Zoom's are ``{"code", "message"}``, a few hundred bytes.
ERROR_BODY_BYTES = 64 * 1024
#: Bytes asked of the socket at a time while a body is read (and past the cap at most).
READ_CHUNK_BYTES = 64 * 1024
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
        self._headers = {"Accept": "application/json", **(headers or {})}
        self._adapter_factory = adapter_factory
        self.auth = ZoomJwtAuth(api_key, api_secret, settings.jwt_ttl_seconds, on_secret=on_secret)
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
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    # --- sessions ---------------------------------------------------------------------------
    def session(self) -> requests.Session:
        """The calling thread's Session (made on its first request): kept-alive connections are
        reused by the thread that opened them, and no pool is shared between threads."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._new_session()
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.auth = self.auth
        session.headers.update(self._headers)
        # For callers that use the Session directly; the client itself passes ``verify`` with each
        # request, since requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a Session's.
        session.verify = self.settings.verify
        if self._adapter_factory is not None:
            for prefix in ("https://", "http://"):
                session.mount(prefix, self._adapter_factory())
        return session

    def session_count(self) -> int:
        """Sessions open now: one per thread that sent a request since the last ``close()``."""
        with self._sessions_lock:
            return len(self._sessions)

    def close(self) -> None:
        """Close every thread's Session and its connections. The client stays usable: a thread's
        next request opens a new Session."""
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
            self._local = threading.local()
        for session in sessions:
            session.close()

    # --- one request ------------------------------------------------------------------------
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
        timeout = (min(10.0, settings.timeout_seconds), settings.timeout_seconds)
        attempt = 0
        waited = 0.0
        renewed = False
        while True:
            # Counted first, then paced: a slot is only ever taken right before its request. Had the
            # count to wait (its Redis away), a slot taken before it would be stale by then, and every
            # thread waiting so would send at once when Redis came back.
            self._budget.spend(endpoint=path)  # raises, sending nothing, when spent
            waited_here = self._limiter.acquire(category)
            if waited_here:
                waited += waited_here
            if deadline is not None and time.monotonic() >= deadline:
                raise PageTokenDeadlineError("the page token would be sent after its lifetime")
            self._count(requests=1)
            reason: str
            delay: float | None = None
            try:
                # ``verify`` per request: a Session's would lose to REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE.
                response = session.get(url, params=clean, timeout=timeout, verify=settings.verify,
                                       stream=True)
                with response:  # streamed: the connection goes back to the pool once read
                    status = response.status_code
                    body = _read_body(response, where)
            except TRANSPORT_ERRORS as exc:
                reason = f"{type(exc).__name__}: {transport_cause(exc)}"
            else:
                if status == 200:
                    try:
                        return decode(body)
                    except BodyError as error:
                        if isinstance(error, PermanentError):
                            raise type(error)(
                                f"{where} answered 200 with {error}. Not retried: the same request "
                                "would bring the same body back. Check that the connection's host is "
                                "Zoom's API; if it is, report it to Zoom.") from error
                        reason = str(error)
                elif status == 429:
                    delay = self._rate_limited(response, body, endpoint)
                    reason = "HTTP 429 (rate limited)"
                elif status in RETRYABLE_STATUS:
                    reason = f"HTTP {status}"
                else:
                    code, message = _zoom_error(response, body)
                    if status == 401 and code in (124, None) and not renewed:
                        renewed = True
                        self.auth.invalidate()
                        self._count(jwt_renewals_on_401=1)
                        continue
                    raise self._api_error(status, code, message, path, session_id)
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

    def _api_error(self, status: int, code: int | None, message: str, endpoint: str,
                   session_id: str | None) -> ZoomApiError:
        """The typed error for a client error Zoom answered, so callers decide by kind."""
        if status == 401:
            return ZoomAuthError(status, code, message, endpoint, session_id)
        if status == 403:
            return ZoomForbiddenError(status, code, message, endpoint, session_id)
        if status == 404 and code == ErrorCode.ENDPOINT_NOT_RECOGNIZED:
            return ZoomEndpointError(status, code, message, endpoint, session_id)
        if status == 400 and code == ErrorCode.NOT_VIDEO_SDK_ACCOUNT:
            return ZoomAccountError(status, code, message, endpoint, session_id, conn_id=self.conn_id,
                                    api_key_hint=self._api_key_hint)
        return ZoomApiError(status, code, message, endpoint, session_id)

    def _rate_limited(self, response: requests.Response, body: bytes, endpoint: str) -> float | None:
        """Classify a 429: raise for the daily cap, else return the wait the server asked for
        (None when it named none, for the caller's backoff to decide)."""
        now = datetime.now(UTC)
        retry_at = parse_retry_after(response.headers.get("Retry-After"), now)
        code, message = _zoom_error(response, body)
        limit_type = response.headers.get("X-RateLimit-Type", "")
        if limit_type.lower().startswith("daily") or "daily" in message.lower():
            raise ZoomDailyLimitError(429, code, message, endpoint, retry_at)
        delay = None if retry_at is None else max(0.0, (retry_at - now).total_seconds())
        self._count(rate_limit_waits=1, rate_limit_wait_seconds=delay or 0.0)
        return delay

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
                yield from _list_field(page, "sessions", SESSIONS.path)
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
                                   f"users of {session_type} session", json_object, _is_object)

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
                yield paginator.restarts, _list_field(page, "users", template, is_item, session_id)
        finally:
            self._count(token_restarts=paginator.restarts)

    def daily_usage(self, year: int, month: int) -> list[JsonDict]:
        """Zoom's own count of each day of a month (``GET /videosdk/report/daily``): one request."""
        page = self.get_json(DAILY_USAGE.path, {"year": year, "month": month}, DAILY_USAGE.category)
        return _list_field(page, DAILY_USAGE.list_field, DAILY_USAGE.path)

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


def transport_cause(error: BaseException) -> str:
    """The root cause of a transport error, as a person reads it ("connection refused", "name or
    service not known", "certificate verify failed: …"), from the chain requests and urllib3
    wrap it in (``ConnectionError(MaxRetryError(reason=NewConnectionError(...)))``, with the
    socket's own error as a ``__cause__``/``__context__``). Falls back to the outermost text."""
    chain: list[BaseException] = []
    todo: list[object] = [error]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is seen for seen in chain):
            continue
        chain.append(item)
        todo.extend([getattr(item, "reason", None), item.__cause__, item.__context__,
                     *(a for a in item.args if isinstance(a, BaseException))])
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {item.verify_message or item.reason}"
    for item in reversed(chain):  # the innermost first
        if isinstance(item, ConnectionRefusedError):
            return "connection refused"
        if isinstance(item, ssl.SSLError):
            return str(item)
        if isinstance(item, OSError) and item.strerror:
            return item.strerror.lower()  # "name or service not known", "connection reset by peer"
    if isinstance(error, requests.ConnectTimeout):
        return "connect timed out"
    if isinstance(error, requests.Timeout):
        return "read timed out"
    # Not str(): urllib3's MaxRetryError text holds the URL with its query (a page token).
    return type(chain[-1]).__name__


def _session_type(value: object) -> SessionType:
    """``value`` if it is a ``type`` Zoom accepts (``past``, ``live``); else ``ValueError``, before
    any request."""
    for session_type in SESSION_TYPES:
        if value == session_type:
            return session_type
    raise ValueError(f"session_type must be one of {', '.join(SESSION_TYPES)}, got {value!r}")


def _key_hint(api_key: str) -> str:
    """Enough of the API key to tell accounts apart in a message, never the whole key."""
    return f"{api_key[:4]}…" if len(api_key) > 4 else "(set)" if api_key else "(empty)"


def _read_body(response: requests.Response, where: str) -> bytes:
    """A streamed response's body, capped: ``MAX_BODY_BYTES`` for a 200 (more is an error), the
    first ``ERROR_BODY_BYTES`` of any other answer (enough for Zoom's code and message)."""
    chunks = response.iter_content(READ_CHUNK_BYTES)
    if response.status_code == 200:
        return capped_body(chunks, declared_length=response.headers.get("Content-Length"), where=where)
    kept = bytearray()
    for chunk in chunks:
        kept += chunk[: ERROR_BODY_BYTES - len(kept)]
        if len(kept) >= ERROR_BODY_BYTES:
            break
    return bytes(kept)


def _zoom_error(response: requests.Response, body: bytes) -> tuple[int | None, str]:
    """Zoom's ``{"code", "message"}`` from an error answer's ``body``, tolerating bodies that are not."""
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        return None, (body.decode("utf-8", "replace") or response.reason or "")[:200]
    if not isinstance(decoded, dict):
        return None, str(decoded)[:200]
    code = decoded.get("code")
    return (code if isinstance(code, int) else None), str(decoded.get("message", ""))[:500]


def _is_object(item: object) -> bool:
    return isinstance(item, dict)


def _list_field(
    page: Mapping[str, object], field: str, endpoint: str, is_object: Callable[[Any], bool] = _is_object,
    session_id: str | None = None,
) -> list[Any]:
    """The page's objects; a missing list is an empty page, anything else is malformed."""
    items = page.get(field)
    if items is None:
        return []
    if not isinstance(items, list):
        raise ZoomApiError(200, None, f"the page's '{field}' is a JSON {_json_type(items)}, not a list: a "
                           "malformed page, so nothing of this list was kept; retry the task later, and "
                           "report it to Zoom if it persists", endpoint, session_id)
    return [item for item in items if is_object(item)]


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type, as a message shows it."""
    names = {dict: "object", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)
