"""Zoom's event notifications (webhooks) as Zoom publishes them: signature, URL validation, events.

Zoom signs every delivery: ``x-zm-signature`` is ``v0=`` + hex HMAC-SHA256(the app's secret
token, ``v0:{x-zm-request-timestamp}:{raw body}``). A request is trusted only if that holds over
the bytes as received (compared in constant time) and its timestamp is within a window of now
(a replayed capture goes stale). ``endpoint.url_validation`` is answered only for a signed request
and only for a plain token of Zoom's shape: answering an unsigned one would hand anyone the HMAC of
a string they chose, which is a valid signature for a body they chose.

Airflow-free: the receiver (``zoom_qos.receiver``) and the tests use it as is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from zoom_qos.core.errors import ZoomQosError

__all__ = [
    "MAX_BODY_BYTES",
    "SIGNATURE_WINDOW_SECONDS",
    "URL_VALIDATION",
    "WEBHOOK_SECRET_EXTRA",
    "configured_secret_token",
    "BadEventError",
    "LoggedDelivery",
    "SignatureError",
    "WebhookError",
    "ZoomEvent",
    "logged_delivery",
    "parse_event",
    "sign",
    "signature_hash",
    "url_validation_answer",
    "verify_signature",
]

#: Bodies above this are refused before they are parsed: Zoom's Video SDK events are a few KiB.
MAX_BODY_BYTES = 64 * 1024
#: A signed request older (or newer) than this is refused: a captured delivery cannot be replayed later.
SIGNATURE_WINDOW_SECONDS = 300
URL_VALIDATION = "endpoint.url_validation"
#: The Zoom connection's extra holding the app's webhook secret token (Marketplace → the app → Features).
WEBHOOK_SECRET_EXTRA = "webhook_secret_token"
#: The events whose object names a session (``payload.object.session_id``).
SESSION_ENDED, SESSION_ALERT = "session.ended", "session.alert"
#: Zoom's plainToken: a short random string of URL-safe characters (seen 22); anything else is refused.
_PLAIN_TOKEN = re.compile(r"[A-Za-z0-9_-]{8,64}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
#: event_ts is in milliseconds; anything outside these years is not one.
_MIN_TS_MS, _MAX_TS_MS = 946_684_800_000, 4_102_444_800_000


class WebhookError(ZoomQosError):
    """A delivery we refuse; ``status`` is the HTTP answer (4xx: Zoom must not retry it)."""

    status = 400


class SignatureError(WebhookError):
    """Unsigned, badly signed or stale: not from Zoom as far as we can tell."""

    status = 401


class BadEventError(WebhookError):
    """Signed, but not a Zoom event we can read (not JSON, wrong shape, too large)."""

    status = 400


class BodyTooLargeError(BadEventError):
    status = 413


@dataclass(frozen=True)
class ZoomEvent:
    """One event notification: what the store keeps of it."""

    event: str
    event_ts: datetime
    #: ``payload.object`` as Zoom sent it.
    object: dict[str, Any]
    request_id: str | None
    #: sha256 of the delivery's ``x-zm-signature`` (set by the receiver once it is verified): one
    #: signed request, so the same request replayed is known. Zoom signs each of its retries anew.
    signature_hash: str | None = None

    @property
    def session_id(self) -> str | None:
        value = self.object.get("session_id")
        return value if isinstance(value, str) and value else None

    @property
    def key(self) -> str:
        """The event's own identity: Zoom's retries and duplicates of one event share it (the body
        is the same), whatever their ``x-zm-request-id``."""
        ident = self.session_id or str(self.object.get("id") or self.object.get("uuid") or "")
        stamp = int(self.event_ts.timestamp() * 1000)
        return hashlib.sha256(f"{self.event}|{stamp}|{ident}".encode()).hexdigest()


def configured_secret_token(extra: Any) -> str | None:
    """The webhook secret token in a Zoom connection's extras (``WEBHOOK_SECRET_EXTRA``), stripped;
    None when absent, empty or not text."""
    token = extra.get(WEBHOOK_SECRET_EXTRA) if isinstance(extra, dict) else None
    return token.strip() if isinstance(token, str) and token.strip() else None


def signature_hash(headers: Any) -> str:
    """What identifies one signed request (its ``x-zm-signature``, hashed): call after verifying it."""
    return hashlib.sha256(str(headers.get("x-zm-signature") or "").encode()).hexdigest()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``x-zm-signature`` of ``body`` sent at ``timestamp`` (seconds, as text)."""
    mac = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return "v0=" + mac.hexdigest()


def verify_signature(secret: str, headers: Any, body: bytes, now: float,
                     window: float = SIGNATURE_WINDOW_SECONDS) -> None:
    """Raise :class:`SignatureError` unless ``body`` is signed by ``secret`` within ``window`` of ``now``.

    ``headers`` is any case-insensitive mapping (Starlette's ``Headers``; lower-case names in a dict).
    The message never repeats a header's value.
    """
    if not secret:
        raise SignatureError("no webhook secret token is configured: every request is refused")
    timestamp = str(headers.get("x-zm-request-timestamp") or "")
    signature = str(headers.get("x-zm-signature") or "")
    if not timestamp or not signature:
        raise SignatureError("unsigned request (no x-zm-signature or x-zm-request-timestamp)")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError("x-zm-request-timestamp is not a time in seconds")
    if abs(now - int(timestamp)) > window:
        raise SignatureError(f"stale request: its timestamp is more than {window:g} s from now")
    if not _SIGNATURE.fullmatch(signature):
        raise SignatureError("x-zm-signature is not of the form v0=<64 hex digits>")
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise SignatureError("x-zm-signature does not match the body")


def url_validation_answer(secret: str, event: ZoomEvent) -> dict[str, str]:
    """Zoom's challenge answered: ``{"plainToken", "encryptedToken"}``. Call it only for a signed
    request; a plain token not of Zoom's shape is refused."""
    token = event.object.get("plainToken")
    if not isinstance(token, str) or not _PLAIN_TOKEN.fullmatch(token):
        raise BadEventError("endpoint.url_validation without a plainToken of Zoom's shape")
    encrypted = hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": token, "encryptedToken": encrypted}


def parse_event(body: bytes, request_id: str | None = None) -> ZoomEvent:
    """A delivery's body as a :class:`ZoomEvent`; :class:`BadEventError` says what is wrong.

    ``endpoint.url_validation`` carries its ``plainToken`` in ``payload`` itself, not in an object.
    """
    if len(body) > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"body of {len(body):,} bytes is over the {MAX_BODY_BYTES:,}-byte bound")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadEventError("body is not JSON") from error
    except RecursionError as error:  # 64 KiB of "[" is JSON nested deeper than the parser goes
        raise BadEventError("body is JSON nested too deeply to be a Zoom event") from error
    if not isinstance(data, dict):
        raise BadEventError("body is not a JSON object")
    event, payload = data.get("event"), data.get("payload")
    if not isinstance(event, str) or not _EVENT_NAME.fullmatch(event) or len(event) > 100:
        raise BadEventError("'event' is missing or not an event name")
    if not isinstance(payload, dict):
        raise BadEventError("'payload' is missing or not an object")
    if event == URL_VALIDATION:
        obj: Any = payload
    else:
        obj = payload.get("object")
        if not isinstance(obj, dict):
            raise BadEventError("'payload.object' is missing or not an object")
    ts = data.get("event_ts")
    if isinstance(ts, bool) or not isinstance(ts, int) or not _MIN_TS_MS <= ts <= _MAX_TS_MS:
        if event != URL_VALIDATION:
            raise BadEventError("'event_ts' is missing or not a time in milliseconds")
        ts = _MIN_TS_MS
    if event in (SESSION_ENDED, SESSION_ALERT) and not isinstance(obj.get("session_id"), str):
        raise BadEventError(f"{event} without a payload.object.session_id")
    if request_id is not None and (len(request_id) > 200 or not request_id.isprintable()):
        request_id = None
    return ZoomEvent(event, datetime.fromtimestamp(ts / 1000, UTC), obj, request_id)


@dataclass(frozen=True)
class LoggedDelivery:
    """One attempt of Zoom's ``webhook_logs`` report: what the reconciliation keeps of it."""

    request_id: str
    retry_num: int
    event: str
    event_ts: datetime | None
    session_id: str | None
    status: int
    failed_reason_type: int | None
    endpoint: str | None
    attempted_at: datetime

    @property
    def failed(self) -> bool:
        """Zoom counts 200 and 204 as delivered, anything else (and no answer, -1) as failed."""
        return self.status not in (200, 204)


def logged_delivery(entry: Any) -> LoggedDelivery:
    """A ``webhook_logs`` entry as a :class:`LoggedDelivery`; :class:`BadEventError` when it lacks what
    identifies an attempt (``event``, an integer ``status``, ``date_time``). The request body, which
    may hold names, is read for the event's session and time and not kept."""
    if not isinstance(entry, dict):
        raise BadEventError("a webhook_logs entry is not an object")
    event, status, when = entry.get("event"), entry.get("status"), entry.get("date_time")
    if not isinstance(event, str) or not event or isinstance(status, bool) or not isinstance(status, int):
        raise BadEventError("a webhook_logs entry without an event name or an integer status")
    try:
        attempted_at = datetime.fromisoformat(str(when).replace("Z", "+00:00"))
    except ValueError:
        raise BadEventError(f"a webhook_logs entry with date_time {str(when)[:40]!r}") from None
    if attempted_at.tzinfo is None:
        attempted_at = attempted_at.replace(tzinfo=UTC)
    retry = entry.get("retry_num")
    retry_num = retry if isinstance(retry, int) and not isinstance(retry, bool) else 0
    body = str(entry.get("request_body") or "")
    request_id = entry.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        request_id = "sha256:" + hashlib.sha256(f"{event}|{when}|{body}".encode()).hexdigest()
    event_ts, session_id = _about(body)
    reason = entry.get("failed_reason_type")
    endpoint = entry.get("endpoint")
    return LoggedDelivery(
        request_id=request_id[:200], retry_num=retry_num, event=event[:100], event_ts=event_ts,
        session_id=session_id, status=status,
        failed_reason_type=reason if isinstance(reason, int) and not isinstance(reason, bool) else None,
        endpoint=endpoint[:2000] if isinstance(endpoint, str) else None,
        attempted_at=attempted_at.astimezone(UTC))


def _about(body: str) -> tuple[datetime | None, str | None]:
    """The event time and session of a logged request body (either None when it does not say)."""
    try:
        data = json.loads(body) if body else None
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    ts = data.get("event_ts")
    event_ts = (datetime.fromtimestamp(ts / 1000, UTC)
                if isinstance(ts, int) and not isinstance(ts, bool) and _MIN_TS_MS <= ts <= _MAX_TS_MS
                else None)
    payload = data.get("payload")
    obj = payload.get("object") if isinstance(payload, dict) else None
    session_id = obj.get("session_id") if isinstance(obj, dict) else None
    return event_ts, session_id if isinstance(session_id, str) and session_id else None
