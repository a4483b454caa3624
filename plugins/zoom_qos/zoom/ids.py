"""Session ids in URL paths.

Zoom's ids are base64-like (``sfk/aOFJSJSYhGwk1hnxgw==``). Zoom's published rule
(:func:`zoom_qos.published.needs_double_encoding`): an id that begins with ``/`` or ``+``, or
contains ``//``, is URL-encoded twice, otherwise the server's own decoding mangles it and answers
404/3001. Every other id is encoded once, with nothing left unescaped (``/``, ``+`` and ``=``
included). Only the id is ever encoded twice: encoding the whole path twice (as Zoom's generated
JavaScript SDK does) makes Zoom answer 404/2300 "endpoint not recognized".

An id comes from Zoom's session list, so it is input like any other: ``unrequestable_reason``
says when one cannot be put in a path safely, and ``encode_session_id`` refuses it. Zoom's ids are
24 characters of base64, so every id refused here is one Zoom never makes.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from zoom_qos.core.errors import ZoomQosError
from zoom_qos.zoom.published import needs_double_encoding

#: The longest id requested, in UTF-8 bytes: 40 times Zoom's 24 characters. Encoded twice it is at
#: most 5,120 characters (``%25XX`` a byte), under the 8 KiB request line servers commonly accept,
#: and it stays under the 2,704 bytes a PostgreSQL index entry (the warehouse's keys) can hold.
MAX_SESSION_ID_BYTES = 1024

# C0 and C1 controls and DEL: a NUL can end the id early on a server written in C (asking for
# another session's data), CR/LF split lines in logs.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class UnsafeSessionIdError(ZoomQosError, ValueError):
    """A session id that cannot be put in a request path safely (see ``unrequestable_reason``)."""


def unrequestable_reason(session_id: object) -> str | None:
    """Why ``session_id`` (as the session list gave it) cannot be requested, None when it can.

    Refused: anything but text or an integer; an empty id; one with a ``.`` or ``..`` segment
    between its slashes (HTTP clients and servers resolve dot segments, so
    ``/videosdk/sessions/../users/qos`` is another endpoint, and Zoom decodes ``%2F`` back to
    ``/``); control characters; text that is not Unicode (a lone surrogate); more than
    ``MAX_SESSION_ID_BYTES``.
    """
    if isinstance(session_id, int) and not isinstance(session_id, bool):
        return None
    if not isinstance(session_id, str):
        return f"the id is a JSON {type(session_id).__name__}, not text"
    if not session_id:
        return "the id is empty"
    if any(part in (".", "..") for part in session_id.split("/")):
        return "the id has a '.' or '..' path segment, which would address another endpoint"
    if control := _CONTROL.search(session_id):
        return f"the id holds the control character U+{ord(control.group()):04X}"
    try:
        size = len(session_id.encode("utf-8"))
    except UnicodeEncodeError:
        return "the id is not valid Unicode text (a lone surrogate)"
    if size > MAX_SESSION_ID_BYTES:
        return (f"the id is {size:,} bytes long, more than the {MAX_SESSION_ID_BYTES:,} any id may be "
                "(Zoom's are 24 characters)")
    return None


def shown_id(session_id: object, limit: int = 40) -> str:
    """The id for a message: its repr (control characters escaped), cut after ``limit`` characters."""
    text = session_id if isinstance(session_id, str) else str(session_id)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text):,} characters)"


def encode_session_id(session_id: str) -> str:
    """The id as one URL path segment, following Zoom's rule; ``UnsafeSessionIdError`` for an id
    that cannot be requested safely (nothing is sent)."""
    reason = unrequestable_reason(session_id)
    if reason is not None:
        raise UnsafeSessionIdError(f"Session id {shown_id(session_id)} cannot be requested: {reason}")
    once = quote(session_id, safe="")
    return quote(once, safe="") if needs_double_encoding(session_id) else once
