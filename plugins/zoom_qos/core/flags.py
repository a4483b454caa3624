"""The one reader of yes/no values, for connection extras and for Zoom's JSON alike.

Connection extras arrive as JSON values or strings typed into a form (``"true"``, ``"0"``,
``"yes"``), and Zoom sends flags as booleans, 0/1 or strings. One parser keeps the two from
drifting apart; it lives in ``zoom/`` because the client must not import ``transform/``, and
``transform/`` may import from the client's layer.
"""

from __future__ import annotations

_TRUE = frozenset({"true", "1", "yes", "y", "t", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "f", "off"})
# Anything longer cannot be a flag; refusing it early keeps the comparison cheap.
_MAX_LEN = 100


def parse_bool(value: object) -> bool | None:
    """JSON booleans, 1/0 and "true"/"false", "1"/"0", "yes"/"no", "on"/"off", "y"/"n", "t"/"f" (any
    case, surrounding blanks ignored) → bool; anything else → None, for the caller to decide."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and len(value) <= _MAX_LEN:
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None
