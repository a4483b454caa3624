"""Zoom's JSON bodies, decoded only as far as the pipeline needs.

A QoS page is mostly users' samples that extraction only passes on to staging. Decoding them
into Python objects and encoding them again for staging was most of extraction's CPU time, so
a QoS page is split into its users' raw JSON (msgspec scans and validates the whole body
without building objects) and only the page token is decoded. Whatever msgspec refuses is
handed to Python's json, which decides whether the body is really broken.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from zoom_qos.errors import ZoomQosError


class BodyError(ZoomQosError, ValueError):
    """A 200 response whose body is not a JSON object (truncated, or another type): retried."""


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or ``BodyError`` naming what it was instead."""
    try:
        try:
            value = json.loads(body)
        except UnicodeDecodeError:  # JSON must be UTF-8; keep what can be kept
            value = json.loads(body.decode("utf-8", "replace"))
    except ValueError as error:
        raise BodyError("a body that is not complete JSON") from error
    if not isinstance(value, dict):
        raise BodyError(f"a JSON {type(value).__name__} instead of an object")
    return value


class _RawQosPage(msgspec.Struct):
    next_page_token: msgspec.Raw = msgspec.Raw(b"null")
    users: msgspec.Raw = msgspec.Raw(b"null")


def raw_qos_page(body: bytes) -> dict[str, Any]:
    """``{"next_page_token": <decoded>, "users": <list of each item's raw JSON bytes>}``.

    ``users`` keeps its decoded value when it is not a list, for the caller to report.
    """
    try:
        page = msgspec.json.decode(body, type=_RawQosPage)
        token = msgspec.json.decode(page.next_page_token)
        users: Any = msgspec.json.decode(page.users, type=list[msgspec.Raw] | None)
        if users is not None:
            users = [bytes(user) for user in users]
    except (msgspec.DecodeError, UnicodeDecodeError):  # DecodeError: also ValidationError
        data = json_object(body)
        token, users = data.get("next_page_token"), data.get("users")
        if isinstance(users, list):  # escapes stay escapes: staged lines are ASCII-safe
            users = [json.dumps(user).encode() for user in users]
    return {"next_page_token": token, "users": users}


def is_raw_object(item: bytes) -> bool:
    return item.lstrip()[:1] == b"{"


class JsonObject(dict[str, Any]):
    """A decoded JSON object that keeps the text it came from.

    The raw layer stores each user as Zoom sent it: handing that text on spares encoding the
    decoded copy again, which was a tenth of a load's CPU time.
    """

    __slots__ = ("json_text",)
    json_text: str


def decode_user(line: bytes) -> Any:
    """One user's raw JSON. msgspec refuses some JSON Python accepts (a lone ``\\ud800``
    escape, bytes that are not UTF-8): those lines take the tolerant path."""
    try:
        value = msgspec.json.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return json.loads(line.decode("utf-8", "replace"))
    if not isinstance(value, dict):
        return value
    kept = JsonObject(value)
    kept.json_text = line.decode("utf-8").strip()  # valid UTF-8: msgspec checked
    return kept
