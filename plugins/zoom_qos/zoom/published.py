"""Zoom's published Video SDK API definition: the part of it this project relies on.

Zoom publishes an OpenAPI definition of the Video SDK REST API (see ``docs/zoom_api.md``); where it
settles a point it overrules our own reading of Zoom. Its facts live here once: the client takes its
page sizes from it, the simulator its maxima, defaults and error codes, and the tests check the
simulator's answers and the client's requests against it (``request_problems``,
``response_problems``), so the day our simulator and Zoom's definition disagree, a test fails.

Only what a client or a test can check is encoded: parameters (required, enum, integer range,
pattern), the list field of each response, and the fields each object is documented to carry.
A response may carry more fields than documented (Zoom adds fields over time): that is not a
problem; a documented field with the wrong JSON type is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

#: Zoom's rate-limit categories of the endpoints we read (a published fact: each endpoint's label).
HEAVY = "Heavy"
RESOURCE_INTENSIVE = "Resource-intensive"
MEDIUM = "Medium"
#: Zoom's Medium limit on the Pro plan (Business+ allows more): the only Medium endpoint we read is
#: ``webhook_logs``, a few requests a day. Medium requests do not count toward the daily cap.
MEDIUM_PER_SECOND = 20.0


class ErrorCode(IntEnum):
    """The Zoom error ``code`` values the definition documents for the endpoints we read."""

    INVALID_ACCESS_TOKEN = 124  # 401
    NOT_VIDEO_SDK_ACCOUNT = 200  # 400: "only available for Video SDK accounts"
    INVALID_FIELD = 300  # 400: any invalid field (session id, page_size, dates, page token, ...)
    ENDPOINT_NOT_RECOGNIZED = 2300  # 404: what an over-encoded path produces
    SESSION_NOT_AVAILABLE = 3001  # 404: "not valid or the session has not ended yet"
    SESSION_TOO_OLD = 12702  # 400: "cannot access a session that old"
    WEBHOOK_LOGS_TO_BEFORE_FROM = 1501  # 400: "The 'to' date must be after the 'from' date."
    WEBHOOK_LOGS_RANGE = 1502  # 400: "The date range must be within the last seven days."
    WEBHOOK_LOGS_DATE_FORMAT = 1503  # 400: "The dates must follow the format: yyyy-MM-dd'T'HH:mm:ss'Z'."
    WEBHOOK_LOGS_FROM_IN_FUTURE = 1504  # 400: "The 'from' date must be before the current date(UTC)."
    WEBHOOK_LOGS_RETRY_NUM = 1506  # 400: "The 'retry_num' value must be an integer within ... 0 to 3."


@dataclass(frozen=True)
class QueryParam:
    """One documented query parameter."""

    required: bool = False
    enum: tuple[str, ...] = ()
    pattern: str = ""  # a full-match regular expression for string values
    integer: bool = False
    minimum: int | None = None
    maximum: int | None = None
    default: int | str | None = None


@dataclass(frozen=True)
class PageSize:
    default: int
    maximum: int


#: JSON types as the definition names them, for the checks of documented fields.
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}

_DATE = r"\d{4}-\d{2}-\d{2}"
_TYPE = QueryParam(enum=("past", "live"), default="live")


@dataclass(frozen=True)
class Endpoint:
    """One GET endpoint: path template, rate-limit category, parameters and response shape."""

    name: str
    path: str  # relative to the base URL; ``{sessionId}`` is a path parameter
    category: str
    query: Mapping[str, QueryParam]
    list_field: str  # the array of objects in the response ("" if none)
    fields: Mapping[str, str]  # documented top-level response fields -> JSON type
    item_fields: Mapping[str, str]  # documented fields of each list item -> JSON type
    errors: frozenset[tuple[int, int]] = field(default_factory=frozenset)

    @property
    def page_size(self) -> PageSize | None:
        spec = self.query.get("page_size")
        if spec is None or spec.maximum is None or not isinstance(spec.default, int):
            return None
        return PageSize(default=spec.default, maximum=spec.maximum)

    @property
    def max_page_size(self) -> int:
        size = self.page_size
        if size is None:
            raise ValueError(f"GET /{self.path} is not paged")
        return size.maximum


def _page_size(default: int, maximum: int) -> QueryParam:
    return QueryParam(integer=True, minimum=1, maximum=maximum, default=default)


_USER_IDENTITY = {
    "id": "string", "name": "string", "user_key": "string", "device": "string", "ip_address": "string",
    "location": "string", "network_type": "string", "microphone": "string", "speaker": "string",
    "camera": "string", "data_center": "string", "connection_type": "string", "join_time": "string",
    "leave_time": "string", "client": "string", "os": "string", "os_version": "string",
    "browser_name": "string", "browser_version": "string", "is_original_host": "boolean",
}

#: What the endpoints reading one session's joins answer besides 200.
_SESSION_READ_ERRORS = frozenset({
    (400, ErrorCode.NOT_VIDEO_SDK_ACCOUNT), (400, ErrorCode.INVALID_FIELD), (400, ErrorCode.SESSION_TOO_OLD),
    (401, ErrorCode.INVALID_ACCESS_TOKEN), (404, ErrorCode.SESSION_NOT_AVAILABLE)})

SESSIONS = Endpoint(
    name="list_sessions",
    path="videosdk/sessions",
    category=RESOURCE_INTENSIVE,
    query={
        "type": _TYPE,
        "from": QueryParam(required=True, pattern=_DATE),
        "to": QueryParam(required=True, pattern=_DATE),
        "page_size": _page_size(default=30, maximum=300),
        "next_page_token": QueryParam(),
        "session_key": QueryParam(),
        "session_name": QueryParam(),
    },
    list_field="sessions",
    fields={"from": "string", "to": "string", "page_size": "integer", "next_page_token": "string",
            "sessions": "array"},
    item_fields={
        "id": "string", "session_name": "string", "start_time": "string", "end_time": "string",
        "duration": "string", "user_count": "integer", "has_voip": "boolean", "has_video": "boolean",
        "has_screen_share": "boolean", "has_recording": "boolean", "has_pstn": "boolean",
        "has_session_summary": "boolean", "session_key": "string", "audio_quality": "string",
        "video_quality": "string", "screen_share_quality": "string",
    },
    errors=frozenset({(400, ErrorCode.NOT_VIDEO_SDK_ACCOUNT), (400, ErrorCode.INVALID_FIELD),
                      (401, ErrorCode.INVALID_ACCESS_TOKEN)}),
)

SESSION_QOS = Endpoint(
    name="list_session_users_qos",
    path="videosdk/sessions/{sessionId}/users/qos",
    category=HEAVY,
    query={"type": _TYPE, "page_size": _page_size(default=1, maximum=10), "next_page_token": QueryParam()},
    list_field="users",
    fields={"page_size": "integer", "next_page_token": "string", "users": "array"},
    item_fields={**_USER_IDENTITY, "user_qos": "array"},
    errors=_SESSION_READ_ERRORS,
)

SESSION_USERS = Endpoint(
    name="list_session_users",
    path="videosdk/sessions/{sessionId}/users",
    category=HEAVY,
    query={"type": _TYPE, "page_size": _page_size(default=30, maximum=300), "next_page_token": QueryParam()},
    list_field="users",
    fields={"page_size": "integer", "next_page_token": "string", "users": "array"},
    item_fields={**_USER_IDENTITY, "participant_uuid": "string", "audio_quality": "string",
                 "video_quality": "string", "screen_share_quality": "string", "audio_call": "array"},
    errors=_SESSION_READ_ERRORS,
)

DAILY_USAGE = Endpoint(
    name="daily_usage_report",
    path="videosdk/report/daily",
    category=HEAVY,
    # Both optional in the definition (no default given); the pipeline always sends both.
    query={"year": QueryParam(integer=True), "month": QueryParam(integer=True, minimum=1, maximum=12)},
    list_field="dates",
    fields={"year": "integer", "month": "integer", "dates": "array"},
    item_fields={"date": "string", "sessions": "integer", "users": "integer", "session_minutes": "integer"},
    # 300: "Daily report can only be provided within 6 months prior to the current date."
    errors=frozenset({(400, ErrorCode.NOT_VIDEO_SDK_ACCOUNT), (400, ErrorCode.INVALID_FIELD)}),
)

#: ``type`` of ``webhook_logs``: 1 every delivery, 2 (the default) failed ones, 3 successful ones.
WEBHOOK_LOGS_ALL, WEBHOOK_LOGS_FAILED, WEBHOOK_LOGS_SUCCEEDED = 1, 2, 3
#: How far back ``webhook_logs`` reaches, and the longest ``from``..``to`` it takes.
WEBHOOK_LOGS_DAYS = 7
#: Zoom retries a delivery at most three times (``retry_num`` 0 is the first attempt).
WEBHOOK_MAX_RETRY_NUM = 3
_DATE_TIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"

WEBHOOK_LOGS = Endpoint(
    name="get_webhook_logs",
    path="videosdk/report/webhook_logs",
    category=MEDIUM,
    query={
        "next_page_token": QueryParam(),
        "page_size": _page_size(default=30, maximum=300),
        "from": QueryParam(pattern=_DATE_TIME),
        "to": QueryParam(pattern=_DATE_TIME),
        "event": QueryParam(),
        "type": QueryParam(integer=True, minimum=1, maximum=3, default=WEBHOOK_LOGS_FAILED),
        "retry_num": QueryParam(integer=True, minimum=0, maximum=WEBHOOK_MAX_RETRY_NUM),
    },
    list_field="webhook_logs",
    fields={"next_page_token": "string", "page_size": "integer", "webhook_logs": "array"},
    item_fields={
        "event": "string", "status": "integer", "failed_reason_type": "integer", "endpoint": "string",
        "subscription_id": "string", "request_headers": "string", "request_body": "string",
        "response_headers": "string", "response_body": "string", "date_time": "string",
        "trace_id": "string", "request_id": "string", "retry_num": "integer",
    },
    errors=frozenset({(400, ErrorCode.WEBHOOK_LOGS_TO_BEFORE_FROM), (400, ErrorCode.WEBHOOK_LOGS_RANGE),
                      (400, ErrorCode.WEBHOOK_LOGS_DATE_FORMAT), (400, ErrorCode.WEBHOOK_LOGS_FROM_IN_FUTURE),
                      (400, ErrorCode.WEBHOOK_LOGS_RETRY_NUM), (401, ErrorCode.INVALID_ACCESS_TOKEN)}),
)

ENDPOINTS: tuple[Endpoint, ...] = (SESSIONS, SESSION_QOS, SESSION_USERS, DAILY_USAGE, WEBHOOK_LOGS)

#: Quality grades of sessions and users.
QUALITY_GRADES = ("good", "fair", "poor", "bad")
#: ``device`` values; ``""`` is what an external user gets.
DEVICES = ("Phone", "H.323/SIP", "Windows", "Mac", "iOS", "Android", "")
NETWORK_TYPES = ("Wired", "Wifi", "PPP", "Cellular", "Others")


def needs_double_encoding(session_id: str) -> bool:
    """The published rule: ids that begin with ``/`` or ``+``, or contain ``//``, are encoded twice
    in a path (once, and Zoom's own decoding collapses or mangles them and answers 404/3001)."""
    return session_id.startswith(("/", "+")) or "//" in session_id


def request_problems(endpoint: Endpoint, params: Mapping[str, Any]) -> list[str]:
    """What Zoom would refuse (HTTP 400, code 300) in a request's query parameters; empty if none."""
    problems = [f"{name}: required" for name, spec in endpoint.query.items()
                if spec.required and params.get(name) in (None, "")]
    for name, value in params.items():
        spec = endpoint.query.get(name)
        if spec is None:
            problems.append(f"{name}: not a parameter of GET /{endpoint.path}")
        elif value not in (None, ""):
            problems.extend(f"{name}: {why}" for why in _value_problems(spec, value))
    return problems


def _value_problems(spec: QueryParam, value: Any) -> list[str]:
    text = str(value)
    if spec.enum and text not in spec.enum:
        return [f"{text!r} is not one of {', '.join(spec.enum)}"]
    if spec.pattern and not re.fullmatch(spec.pattern, text):
        return [f"{text!r} does not match {spec.pattern}"]
    if spec.integer:
        try:
            number = int(text)
        except ValueError:
            return [f"{text!r} is not an integer"]
        if spec.minimum is not None and number < spec.minimum:
            return [f"{number} is below the minimum {spec.minimum}"]
        if spec.maximum is not None and number > spec.maximum:
            return [f"{number} is above the maximum {spec.maximum}"]
    return []


def response_problems(endpoint: Endpoint, body: Mapping[str, Any]) -> list[str]:
    """Where a 200 response departs from the definition: documented fields of the wrong JSON type,
    a list item that is not an object, a page larger than the published maximum."""
    problems = _typed_problems(endpoint.fields, body, "")
    items = body.get(endpoint.list_field) or []
    for i, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            problems.append(f"{endpoint.list_field}[{i}]: not an object")
            continue
        problems.extend(_typed_problems(endpoint.item_fields, item, f"{endpoint.list_field}[{i}]."))
    size = endpoint.page_size
    if size is not None and isinstance(items, list) and len(items) > size.maximum:
        problems.append(f"{len(items)} {endpoint.list_field} in one page; the maximum is {size.maximum}")
    echoed = body.get("page_size")
    if size is not None and isinstance(echoed, int) and echoed > size.maximum:
        problems.append(f"page_size {echoed} echoed; the maximum is {size.maximum}")
    return problems


def _typed_problems(fields: Mapping[str, str], obj: Mapping[str, Any], where: str) -> list[str]:
    problems = []
    for name, kind in fields.items():
        value = obj.get(name)
        if value is None:
            continue
        allowed = _JSON_TYPES[kind]
        if not isinstance(value, allowed) or (kind in ("integer", "number") and isinstance(value, bool)):
            problems.append(f"{where}{name}: {type(value).__name__}, documented as {kind}")
    return problems
