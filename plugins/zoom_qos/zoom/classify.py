"""What an answer of Zoom's means for the request that got it: a pure function of the answer.

``classify`` turns a status, headers and the (capped) body into one outcome: ``Accept`` the body,
``Retry`` (a 5xx, a per-second 429: with the wait Zoom named, if any), ``RenewAuth`` (a 401 that a
fresh JWT may cure) or ``Refuse`` with the typed error to raise (a daily 429, a wrong account, a
missing scope, an endpoint Zoom does not know, any other client error). It sends nothing and
sleeps never, so each of Zoom's answers is tested without a server; ``client.ZoomClient.get_json``
acts on the outcome. The transport's own failures (no answer at all) are ``TRANSPORT_ERRORS``,
retried, their cause told by ``transport_cause``.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import requests

from zoom_qos.zoom.errors import (
    ZoomAccountError,
    ZoomApiError,
    ZoomAuthError,
    ZoomDailyLimitError,
    ZoomEndpointError,
    ZoomForbiddenError,
)
from zoom_qos.zoom.published import ErrorCode
from zoom_qos.zoom.retry import parse_retry_after

RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
#: Failures with no answer at all, retried: the network, TLS, a connection cut mid-body.
TRANSPORT_ERRORS = (
    requests.ConnectionError,  # includes SSLError and ProxyError
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


@dataclass(frozen=True)
class Accept:
    """A 200: the body is the caller's to decode."""

    body: bytes


@dataclass(frozen=True)
class Retry:
    """Worth another try: ``delay`` is the wait Zoom asked for (None: the caller's backoff
    decides); ``rate_limited`` for a per-second 429."""

    reason: str
    delay: float | None = None
    rate_limited: bool = False


@dataclass(frozen=True)
class RenewAuth:
    """A 401 that a freshly signed JWT may cure (once; a second one is ``Refuse``)."""

    error: ZoomAuthError


@dataclass(frozen=True)
class Refuse:
    """Zoom said no, and saying it again would not change that: raise ``error``."""

    error: ZoomApiError


Outcome = Accept | Retry | RenewAuth | Refuse


@dataclass(frozen=True)
class Request:
    """What a message about the answer names: the path (never its query: a page token never
    reaches a message), the session asked for, and the connection's account (for a wrong one)."""

    path: str
    session_id: str | None = None
    conn_id: str = ""
    api_key_hint: str = ""


def classify(status: int, headers: Mapping[str, str], body: bytes, request: Request, now: datetime,
             reason_phrase: str = "") -> Outcome:
    """The outcome of Zoom's answer ``status``/``headers``/``body`` to ``request`` at ``now``."""
    if status == 200:
        return Accept(body)
    if status in RETRYABLE_STATUS:
        return Retry(f"HTTP {status}")
    code, message = zoom_error(body, reason_phrase)
    if status == 429:
        retry_at = parse_retry_after(headers.get("Retry-After"), now)
        if headers.get("X-RateLimit-Type", "").lower().startswith("daily") or "daily" in message.lower():
            return Refuse(ZoomDailyLimitError(429, code, message, request.path, retry_at))
        delay = None if retry_at is None else max(0.0, (retry_at - now).total_seconds())
        return Retry("HTTP 429 (rate limited)", delay, rate_limited=True)
    if status == 401:
        error = ZoomAuthError(status, code, message, request.path, request.session_id)
        return RenewAuth(error) if code in (ErrorCode.INVALID_ACCESS_TOKEN, None) else Refuse(error)
    return Refuse(api_error(status, code, message, request))


def api_error(status: int, code: int | None, message: str, request: Request) -> ZoomApiError:
    """The typed error for a client error Zoom answered, so callers decide by kind."""
    path, session_id = request.path, request.session_id
    if status == 401:
        return ZoomAuthError(status, code, message, path, session_id)
    if status == 403:
        return ZoomForbiddenError(status, code, message, path, session_id)
    if status == 404 and code == ErrorCode.ENDPOINT_NOT_RECOGNIZED:
        return ZoomEndpointError(status, code, message, path, session_id)
    if status == 400 and code == ErrorCode.NOT_VIDEO_SDK_ACCOUNT:
        return ZoomAccountError(status, code, message, path, session_id, conn_id=request.conn_id,
                                api_key_hint=request.api_key_hint)
    return ZoomApiError(status, code, message, path, session_id)


def zoom_error(body: bytes, reason_phrase: str = "") -> tuple[int | None, str]:
    """Zoom's ``{"code", "message"}`` from an error answer's ``body``, tolerating bodies that are not."""
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        return None, (body.decode("utf-8", "replace") or reason_phrase or "")[:200]
    if not isinstance(decoded, dict):
        return None, str(decoded)[:200]
    code = decoded.get("code")
    return (code if isinstance(code, int) else None), str(decoded.get("message", ""))[:500]


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
