"""Session ids in URL paths.

Zoom's ids are base64-like (``sfk/aOFJSJSYhGwk1hnxgw==``). Zoom's rule: an id that begins
with ``/`` or contains ``//`` must be URL-encoded twice, otherwise the server's own decoding
collapses the slashes and answers 404. Every other id is encoded once, with nothing left
unescaped (``/``, ``+`` and ``=`` included), which is what the server expects for them.
"""

from __future__ import annotations

from urllib.parse import quote


def needs_double_encoding(session_id: str) -> bool:
    """Zoom's documented condition for double encoding."""
    return session_id.startswith("/") or "//" in session_id


def encode_session_id(session_id: str) -> str:
    """The id as one URL path segment, following Zoom's rule."""
    if not session_id:
        raise ValueError("A Zoom session id cannot be empty")
    once = quote(session_id, safe="")
    return quote(once, safe="") if needs_double_encoding(session_id) else once
