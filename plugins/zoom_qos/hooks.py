"""The Zoom Video SDK hook: connection, session, auth, pacing and retries in one place.

Built on providers-http's ``HttpHook`` so that it reads the same kind of Airflow connection:
``host`` is the API base URL including ``/v2`` (Zoom's when empty), ``login`` the Video SDK
API key, ``password`` the API secret, and ``extra`` may tune the settings of ``ZoomSettings``.
Operators stay thin: they ask for sessions or QoS pages and get plain dicts back.
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
from typing import Any

import requests
from airflow.providers.http.hooks.http import HttpHook

from zoom_qos.config import DEFAULT_ZOOM_BASE_URL, ZOOM_CONN_ID
from zoom_qos.errors import (
    PageTokenDeadlineError,
    RetriesExhaustedError,
    ZoomAccountError,
    ZoomApiError,
    ZoomAuthError,
    ZoomConfigError,
    ZoomDailyLimitError,
    ZoomEndpointError,
    ZoomForbiddenError,
)
from zoom_qos.zoom.auth import DEFAULT_TTL_SECONDS, ZoomJwtAuth
from zoom_qos.zoom.bodies import BodyError, decode_user, is_raw_object, json_object, raw_qos_page
from zoom_qos.zoom.budget import DailyBudget, UnlimitedBudget, account_key, budget_for
from zoom_qos.zoom.ids import encode_session_id
from zoom_qos.zoom.pagination import RestartingPaginator
from zoom_qos.zoom.published import DAILY_USAGE, SESSION_QOS, SESSION_USERS, SESSIONS, Endpoint, ErrorCode
from zoom_qos.zoom.ratelimit import HEAVY, RESOURCE_INTENSIVE, RateLimiter, RedisRateLimiter
from zoom_qos.zoom.retry import Backoff, parse_retry_after

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {500, 502, 503, 504}
TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


@dataclass(frozen=True)
class ZoomSettings:
    """Tuning knobs, read from the connection's extras (same names).

    Defaults are Zoom's Business+ rate limits; a Pro account sets
    ``heavy_requests_per_second: 10`` and ``resource_intensive_requests_per_minute: 10``.
    Page sizes default to the maxima of Zoom's published definition (``published.py``); a larger
    value is refused when the connection is read, since Zoom would refuse every request (400/300).
    """

    list_page_size: int = SESSIONS.max_page_size
    qos_page_size: int = SESSION_QOS.max_page_size
    users_page_size: int = SESSION_USERS.max_page_size
    # Also read GET /videosdk/sessions/{id}/users for the per-join quality grades (one more Heavy
    # request per session and 300 joins; see the README's request arithmetic).
    read_user_grades: bool = False
    heavy_requests_per_second: float = 40.0
    resource_intensive_requests_per_minute: float = 20.0
    timeout_seconds: float = 60.0
    # Sessions read at the same time by one extraction task (pages of a session stay in order).
    max_concurrent_sessions: int = 16
    max_retries: int = 6
    retry_max_total_seconds: float = 600.0
    backoff_base_seconds: float = 1.0
    page_token_ttl_seconds: float = 900.0
    page_token_safety_seconds: float = 60.0
    max_page_restarts: int = 3
    jwt_ttl_seconds: int = DEFAULT_TTL_SECONDS
    verify: bool | str = True
    # Shared pacing across tasks and workers (see README, "Rate limits"); empty = per process.
    rate_limit_redis_url: str = ""
    # Set to pseudonymize user names, IP addresses and user keys (see privacy.py); off when empty.
    pseudonymization_key: str = ""
    # After Zoom's daily cap resets, wait this long before resuming (not on the dot with everyone).
    daily_limit_resume_delay_seconds: float = 30.0
    # Zoom's daily cap (Business+ 60,000; Pro 30,000; 0 = not tracked) and the part of it that
    # backfills and range reloads leave to scheduled runs (see budget.py and the README).
    daily_request_limit: int = 60_000
    backfill_reserve_requests: int = 10_000

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> ZoomSettings:
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in extra.items():
            if key not in known:
                continue
            default = known[key].default
            try:
                if key == "verify":  # a boolean, or the path of a CA bundle
                    is_flag = not isinstance(raw, str) or raw.strip().lower() in _FLAGS
                    values[key] = _to_bool(raw) if is_flag else raw
                elif isinstance(default, bool):
                    values[key] = _to_bool(raw)
                elif isinstance(default, str):
                    values[key] = str(raw)
                elif isinstance(default, int):
                    values[key] = int(raw)
                elif isinstance(default, float):
                    values[key] = float(raw)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"Connection extra {key!r} must be a {type(default).__name__}, got {raw!r}"
                ) from exc
        settings = cls(**values)
        for name, endpoint in _PAGE_SIZES.items():
            _check_page_size(name, getattr(settings, name), endpoint)
        return settings


#: Each page-size setting and the endpoint whose published maximum bounds it.
_PAGE_SIZES: dict[str, Endpoint] = {"list_page_size": SESSIONS, "qos_page_size": SESSION_QOS,
                                    "users_page_size": SESSION_USERS}


def _check_page_size(name: str, value: int, endpoint: Endpoint) -> None:
    maximum = endpoint.max_page_size
    if not 1 <= value <= maximum:
        raise ZoomConfigError(
            f"Connection extra {name!r} is {value}, but Zoom's published definition allows 1 to "
            f"{maximum} for GET /{endpoint.path} (a larger page_size is refused with HTTP 400): set it "
            f"to at most {maximum}, or remove it to use {maximum}."
        )


_FLAGS = {"1", "0", "true", "false", "yes", "no", "on", "off"}


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    return str(raw).strip().lower() in {"1", "true", "yes", "on"}


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


class ZoomVideoSdkHook(HttpHook):
    """Reads Zoom's Video SDK REST API (``/videosdk/...``) for one Airflow connection."""

    conn_name_attr = "zoom_conn_id"
    default_conn_name = ZOOM_CONN_ID
    conn_type = "zoom_videosdk"
    hook_name = "Zoom Video SDK"
    default_host = DEFAULT_ZOOM_BASE_URL

    def __init__(self, zoom_conn_id: str = ZOOM_CONN_ID, *, backfill: bool = False, **kwargs: Any) -> None:
        """``backfill``: spend only the daily budget's share left after the scheduled-run reserve."""
        super().__init__(method="GET", http_conn_id=zoom_conn_id, **kwargs)
        self.zoom_conn_id = zoom_conn_id
        self.backfill = backfill
        self._budget: DailyBudget | UnlimitedBudget | None = None
        self._session: requests.Session | None = None
        self._auth: ZoomJwtAuth | None = None
        self._limiter: RateLimiter | RedisRateLimiter | None = None
        self._settings: ZoomSettings | None = None
        self._stats_lock = threading.Lock()
        self._api_key_hint = ""
        self.stats = RequestStats()

    # --- connection -------------------------------------------------------------------
    @property
    def settings(self) -> ZoomSettings:
        if self._settings is None:
            self.get_conn()
        assert self._settings is not None
        return self._settings

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """One session per hook: keep-alive connections and one cached JWT for all requests.

        HttpHook would turn unknown connection extras into HTTP headers; the Zoom extras are
        settings, so the session is configured here instead.
        """
        if self._session is not None:
            return self._session
        conn = self.get_connection(self.zoom_conn_id)
        self._settings = ZoomSettings.from_extra(conn.extra_dejson)
        host = (conn.host or self.default_host).strip()
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}"
        if conn.port:
            host = f"{host.rstrip('/')}:{conn.port}"
        self.base_url = host.rstrip("/")
        self._base_url_initialized = True
        self._api_key_hint = _key_hint(conn.login or "")
        self._auth = ZoomJwtAuth(conn.login or "", conn.password or "", self._settings.jwt_ttl_seconds)
        self._limiter = self._make_limiter(conn.login or "")
        self._budget = budget_for(
            daily_limit=self._settings.daily_request_limit,
            reserve=self._settings.backfill_reserve_requests,
            backfill=self.backfill,
            account=account_key(conn.login or ""),
            redis_url=self._redis_url(),
        )
        session = requests.Session()
        session.auth = self._auth
        session.verify = self._settings.verify
        session.headers.update({"Accept": "application/json", **(headers or {})})
        self._configure_session_from_mount_adapters(session)
        self._session = session
        return session

    def _make_limiter(self, api_key: str) -> RateLimiter | RedisRateLimiter:
        settings = self.settings
        url = self._redis_url()
        if not url:
            return RateLimiter(settings.heavy_requests_per_second,
                               settings.resource_intensive_requests_per_minute)
        # Limits are per Zoom account: key the shared counters by the API key, hashed.
        return RedisRateLimiter(url, account_key(api_key), settings.heavy_requests_per_second,
                                settings.resource_intensive_requests_per_minute)

    def _redis_url(self) -> str:
        return self.settings.rate_limit_redis_url or os.environ.get("ZOOM_QOS_RATE_LIMIT_REDIS_URL", "")

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # --- one request ------------------------------------------------------------------
    def _count(self, **deltas: float) -> None:
        with self._stats_lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def get_json(
        self,
        endpoint: str,
        params: Mapping[str, Any],
        category: str,
        *,
        deadline: float | None = None,
        session_id: str | None = None,
        decode: Callable[[bytes], dict[str, Any]] = json_object,
    ) -> dict[str, Any]:
        """GET one endpoint and return its JSON object, paced, retried and classified.

        Retries 5xx, transport errors, truncated bodies and per-second 429s with bounded
        backoff; renews the JWT once on 401/124; raises ``ZoomDailyLimitError`` on a daily
        429 and ``ZoomApiError`` on other client errors. ``deadline`` (monotonic seconds) is
        the page token's lifetime: no wait may carry the request past it. ``decode`` turns
        the body into the returned object and raises ``BodyError`` for a body to retry.
        """
        session = self.get_conn()
        assert self._limiter is not None and self._auth is not None and self._budget is not None
        settings = self.settings
        backoff = Backoff(
            base_seconds=settings.backoff_base_seconds,
            max_attempts=settings.max_retries,
            max_total_seconds=settings.retry_max_total_seconds,
        )
        url = f"{self.base_url}/{endpoint.lstrip('/')}"
        clean = {k: v for k, v in params.items() if v is not None}
        attempt = 0
        waited = 0.0
        renewed = False
        while True:
            waited_here = self._limiter.acquire(category)
            if waited_here:
                waited += waited_here
            if deadline is not None and time.monotonic() >= deadline:
                raise PageTokenDeadlineError("the page token would be sent after its lifetime")
            self._budget.spend(endpoint=endpoint.split("?")[0])  # raises, sending nothing, when spent
            self._count(requests=1)
            reason: str
            delay: float | None = None
            try:
                response = session.get(
                    url, params=clean, timeout=(min(10.0, settings.timeout_seconds), settings.timeout_seconds)
                )
            except TRANSPORT_ERRORS as exc:
                reason = f"{type(exc).__name__}"
            else:
                status = response.status_code
                if status == 200:
                    try:
                        return decode(response.content)
                    except BodyError as error:
                        reason = str(error)
                elif status == 429:
                    delay = self._rate_limited(response, endpoint)
                    reason = "HTTP 429 (rate limited)"
                elif status in RETRYABLE_STATUS:
                    reason = f"HTTP {status}"
                else:
                    code, message = _zoom_error(response)
                    if status == 401 and code in (124, None) and not renewed:
                        renewed = True
                        self._auth.invalidate()
                        self._count(jwt_renewals_on_401=1)
                        continue
                    raise self._api_error(status, code, message, endpoint.split("?")[0], session_id)
            attempt += 1
            if delay is None:
                delay = backoff.delay(attempt)
            if not backoff.allows(attempt, waited, delay):
                raise RetriesExhaustedError(
                    f"GET {endpoint} failed {attempt} times (last: {reason}); gave up after "
                    f"{waited:.0f}s of waiting. Zoom or the network is unhealthy: retry the task later."
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
            return ZoomAccountError(status, code, message, endpoint, session_id, conn_id=self.zoom_conn_id,
                                    api_key_hint=self._api_key_hint)
        return ZoomApiError(status, code, message, endpoint, session_id)

    def _rate_limited(self, response: requests.Response, endpoint: str) -> float | None:
        """Classify a 429: raise for the daily cap, else return the wait the server asked for."""
        now = datetime.now(UTC)
        retry_at = parse_retry_after(response.headers.get("Retry-After"), now)
        code, message = _zoom_error(response)
        limit_type = response.headers.get("X-RateLimit-Type", "")
        if limit_type.lower().startswith("daily") or "daily" in message.lower():
            raise ZoomDailyLimitError(429, code, message, endpoint, retry_at)
        delay = None if retry_at is None else max(0.0, (retry_at - now).total_seconds())
        self._count(rate_limit_waits=1, rate_limit_wait_seconds=delay or 0.0)
        return delay

    # --- endpoints ---------------------------------------------------------------------
    def _paginator(self) -> RestartingPaginator:
        s = self.settings
        return RestartingPaginator(
            token_ttl=s.page_token_ttl_seconds,
            safety=s.page_token_safety_seconds,
            max_restarts=s.max_page_restarts,
        )

    def iter_past_sessions(self, from_date: date, to_date: date) -> Iterator[dict[str, Any]]:
        """Past sessions that started in [from_date, to_date]; the range must fit Zoom's month rule.

        After a page-token restart sessions repeat: callers key them by ``id``.
        """
        params = {"type": "past", "from": from_date.isoformat(), "to": to_date.isoformat(),
                  "page_size": self.settings.list_page_size}
        paginator = self._paginator()

        def fetch(token: str | None, deadline: float | None) -> dict[str, Any]:
            return self.get_json("videosdk/sessions", {**params, "next_page_token": token},
                                 RESOURCE_INTENSIVE, deadline=deadline)

        try:
            for page in paginator.pages(fetch, what=f"sessions {from_date}..{to_date}"):
                yield from _list_field(page, "sessions", "videosdk/sessions")
        finally:
            self._count(token_restarts=paginator.restarts)

    def iter_session_qos_pages(self, session_id: str) -> Iterator[tuple[int, list[bytes]]]:
        """A past session's users, page by page, each user as the raw JSON Zoom sent.

        Yields ``(restarts, users)``: when ``restarts`` grows, a page token expired or was
        rejected and the list starts again from its first page, so what the caller kept of
        the earlier pass is superseded. ``type=past`` is required: Zoom's default is ``live``.
        """
        endpoint = f"videosdk/sessions/{encode_session_id(session_id)}/users/qos"
        params = {"type": "past", "page_size": self.settings.qos_page_size}
        paginator = self._paginator()

        def fetch(token: str | None, deadline: float | None) -> dict[str, Any]:
            return self.get_json(endpoint, {**params, "next_page_token": token}, HEAVY,
                                 deadline=deadline, session_id=session_id, decode=raw_qos_page)

        try:
            for page in paginator.pages(fetch, what=f"QoS of session {session_id!r}"):
                users = _list_field(page, "users", "videosdk/sessions/{id}/users/qos", is_raw_object)
                yield paginator.restarts, users
        finally:
            self._count(token_restarts=paginator.restarts)

    def iter_session_users_pages(self, session_id: str) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """A past session's joins with their quality grades (``GET /videosdk/sessions/{id}/users``),
        page by page, as ``(restarts, users)`` like :meth:`iter_session_qos_pages`."""
        endpoint = f"videosdk/sessions/{encode_session_id(session_id)}/users"
        params = {"type": "past", "page_size": self.settings.users_page_size}
        paginator = self._paginator()

        def fetch(token: str | None, deadline: float | None) -> dict[str, Any]:
            return self.get_json(endpoint, {**params, "next_page_token": token}, HEAVY,
                                 deadline=deadline, session_id=session_id)

        try:
            for page in paginator.pages(fetch, what=f"users of session {session_id!r}"):
                yield paginator.restarts, _list_field(page, "users", "videosdk/sessions/{id}/users")
        finally:
            self._count(token_restarts=paginator.restarts)

    def daily_usage(self, year: int, month: int) -> list[dict[str, Any]]:
        """Zoom's own count of each day of a month (``GET /videosdk/report/daily``): one request."""
        page = self.get_json(DAILY_USAGE.path, {"year": year, "month": month}, DAILY_USAGE.category)
        return _list_field(page, DAILY_USAGE.list_field, DAILY_USAGE.path)

    def iter_session_users_qos(self, session_id: str) -> Iterator[dict[str, Any]]:
        """Users of a past session with their QoS samples, decoded.

        After a page-token restart users repeat: callers key them by ``(id, join_time)``.
        """
        for _, users in self.iter_session_qos_pages(session_id):
            for user in users:
                yield decode_user(user)

    def test_connection(self) -> tuple[bool, str]:
        """Used by the Airflow UI's Test button: one cheap authenticated request."""
        today = datetime.now(UTC).date()
        try:
            self.get_json("videosdk/sessions", {"type": "past", "from": today.isoformat(),
                                                "to": today.isoformat(), "page_size": 1},
                          RESOURCE_INTENSIVE)
        except ZoomAuthError:
            return False, ("Zoom refused the credentials (401, code 124): login must be the "
                           "Video SDK API key (not the SDK key) and password its API secret.")
        except Exception as exc:  # the UI shows the message, never a traceback
            return False, f"Could not reach Zoom: {exc}"
        return True, "Connected: Zoom accepted the Video SDK API key and secret."


def _key_hint(api_key: str) -> str:
    """Enough of the API key to tell accounts apart in a message, never the whole key."""
    return f"{api_key[:4]}…" if len(api_key) > 4 else "(set)" if api_key else "(empty)"


def _zoom_error(response: requests.Response) -> tuple[int | None, str]:
    """Zoom's ``{"code", "message"}`` body, tolerating bodies that are not."""
    try:
        body = response.json()
    except ValueError:
        return None, (response.text or response.reason or "")[:200]
    if not isinstance(body, dict):
        return None, str(body)[:200]
    code = body.get("code")
    return (code if isinstance(code, int) else None), str(body.get("message", ""))[:500]


def _is_object(item: Any) -> bool:
    return isinstance(item, dict)


def _list_field(
    page: Mapping[str, Any], field: str, endpoint: str, is_object: Callable[[Any], bool] = _is_object
) -> list[Any]:
    """The page's objects; a missing list is an empty page, anything else is malformed."""
    items = page.get(field)
    if items is None:
        return []
    if not isinstance(items, list):
        raise ZoomApiError(200, None, f"'{field}' is a {type(items).__name__}, not a list", endpoint)
    return [item for item in items if is_object(item)]
