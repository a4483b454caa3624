"""Zoom's JSON bodies, decoded only as far as the pipeline needs.

A QoS page is mostly users' samples that extraction only passes on to staging. Decoding them
into Python objects and encoding them again for staging was most of extraction's CPU time, so
a QoS page is split into its users' raw JSON (msgspec scans and validates the whole body
without building objects) and only the page token is decoded. Whatever msgspec refuses is
handed to Python's json, which decides whether the body is really broken.

Bodies are hostile until decoded: ``capped_body`` reads at most ``MAX_BODY_BYTES`` of one, and a
body nested deeper than the decoders can follow is refused (both decoders recurse, so Python's
recursion limit, about 1,000 levels, is theirs). Neither is retried: the same request brings the
same bytes back (a ``BodyError`` that is not a ``PermanentError``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from zoom_qos.zoom.errors import BodyError, BodyTooDeepError, BodyTooLargeError, MalformedPageError

__all__ = ["BodyError", "BodyTooDeepError", "BodyTooLargeError", "MAX_BODY_BYTES", "capped_body",
           "decode_user", "is_raw_object", "json_object", "raw_qos_page"]

#: The largest body read from Zoom: 40 MiB (41,943,040 bytes). The largest page Zoom publishes is a
#: QoS page: at most 10 users, each with one sample a minute. The simulator's largest sample is
#: 2,217 bytes as served (all blocks, video and sharing included; 1,092 on average), a user's fields
#: without samples 609. Ten users in for 30 hours (the longest a paid Zoom meeting lasts) with only
#: that largest sample: 10 x 1,800 x 2,217 = 39.9 MB; a day-long session of average samples is
#: 15.7 MB; the simulator's longest (4 hours) 5.3 MB. Anything larger is not a Zoom page (a proxy's
#: or a broken server's answer). Memory: at most this per session in flight, about twice over
#: while a page is joined and split into users.
MAX_BODY_BYTES = 40 * 1024 * 1024


def capped_body(chunks: Iterable[bytes], *, declared_length: str | None, where: str,
                limit: int = MAX_BODY_BYTES) -> bytes:
    """The body from its ``chunks`` (a streamed response's), read no further than ``limit`` bytes.

    A ``Content-Length`` above the limit is refused before anything is read; a body without one
    (chunked) is refused on the first chunk past the limit, so memory stays under the limit plus a
    chunk. ``where`` names the request in the error (the URL without its query: page tokens).
    """
    if declared_length is not None and declared_length.strip().isdigit() and int(declared_length) > limit:
        raise BodyTooLargeError(_too_large(where, f"declares {int(declared_length):,} bytes", limit))
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(_too_large(where, f"went past the limit after {size:,} bytes", limit))
        parts.append(chunk)
    return b"".join(parts)


def _too_large(where: str, how: str, limit: int) -> str:
    return (f"{where} answered 200 with a body that {how}: more than {limit:,} bytes, larger than any "
            "Zoom page can be (a QoS page holds at most 10 users). Refused and not retried, as the "
            "same request would bring it back: check that the connection's host is Zoom's API and "
            "not a proxy or portal; if it is, report it to Zoom with the endpoint.")


def _too_deep() -> BodyTooDeepError:
    return BodyTooDeepError("a JSON body nested deeper than the decoder's limit (about 1,000 levels; "
                            "a Zoom page has fewer than 10)")


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or ``BodyError`` naming what it was instead."""
    try:
        try:
            value = json.loads(body)
        except UnicodeDecodeError:  # JSON must be UTF-8; keep what can be kept
            value = json.loads(body.decode("utf-8", "replace"))
    except ValueError as error:
        raise BodyError("a body that is not complete JSON") from error
    except RecursionError:
        raise _too_deep() from None
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
        return _raw_qos_page(body)
    except RecursionError:
        raise _too_deep() from None


def _raw_qos_page(body: bytes) -> dict[str, Any]:
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
        try:
            value = msgspec.json.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return json.loads(line.decode("utf-8", "replace"))
    except RecursionError:  # read at a shallower stack when staged: counted as a malformed user
        return None
    if not isinstance(value, dict):
        return value
    kept = JsonObject(value)
    kept.json_text = line.decode("utf-8").strip()  # valid UTF-8: msgspec checked
    return kept


def is_object(item: object) -> bool:
    """Whether a list item is a JSON object (what every list we read holds)."""
    return isinstance(item, dict)


def list_field(page: Mapping[str, object], field: str, endpoint: str,
               is_item: Callable[[Any], bool] = is_object, session_id: str | None = None) -> list[Any]:
    """The page's objects under ``field``; a missing list is an empty page, anything else is a
    ``MalformedPageError`` (nothing of the list is kept)."""
    items = page.get(field)
    if items is None:
        return []
    if not isinstance(items, list):
        raise MalformedPageError(
            f"the page's '{field}' is a JSON {_json_type(items)}, not a list: a malformed page, so "
            "nothing of this list was kept; retry the task later, and report it to Zoom if it persists",
            endpoint, session_id)
    return [item for item in items if is_item(item)]


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type, as a message shows it."""
    names = {dict: "object", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)
