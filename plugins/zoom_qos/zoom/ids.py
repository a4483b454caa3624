"""Session ids in URL paths.

Zoom's ids are base64-like (``sfk/aOFJSJSYhGwk1hnxgw==``). Zoom's published rule
(:func:`zoom_qos.published.needs_double_encoding`): an id that begins with ``/`` or ``+``, or
contains ``//``, is URL-encoded twice, otherwise the server's own decoding mangles it and answers
404/3001. Every other id is encoded once, with nothing left unescaped (``/``, ``+`` and ``=``
included). Only the id is ever encoded twice: encoding the whole path twice (as Zoom's generated
JavaScript SDK does) makes Zoom answer 404/2300 "endpoint not recognized".
"""

from __future__ import annotations

from urllib.parse import quote

from zoom_qos.zoom.published import needs_double_encoding


def encode_session_id(session_id: str) -> str:
    """The id as one URL path segment, following Zoom's rule."""
    if not session_id:
        raise ValueError("A Zoom session id cannot be empty")
    once = quote(session_id, safe="")
    return quote(once, safe="") if needs_double_encoding(session_id) else once
