from urllib.parse import unquote

import pytest

from zoom_qos.zoom.ids import encode_session_id
from zoom_qos.zoom.published import needs_double_encoding


@pytest.mark.parametrize(
    "session_id,expected",
    [
        ("abcDEF123", "abcDEF123"),
        ("sfk/aOFJSJSYhGwk1hnxgw==", "sfk%2FaOFJSJSYhGwk1hnxgw%3D%3D"),
        ("a+b=", "a%2Bb%3D"),
        # The published definition adds ids that begin with "+" to those encoded twice.
        ("+ab=", "%252Bab%253D"),
        ("a/+b", "a%2F%2Bb"),
        ("/abc==", "%252Fabc%253D%253D"),
        ("ab//cd", "ab%252F%252Fcd"),
        ("//", "%252F%252F"),
    ],
)
def test_zoom_rule(session_id, expected):
    assert encode_session_id(session_id) == expected


@pytest.mark.parametrize("session_id", ["/x", "x//y", "x/y", "+/=", "+x", "a b", "x?y#z", "é/ü"])
def test_round_trip_and_single_segment(session_id):
    encoded = encode_session_id(session_id)
    assert "/" not in encoded and "?" not in encoded and "#" not in encoded
    decoded = unquote(encoded)
    if needs_double_encoding(session_id):
        decoded = unquote(decoded)
    assert decoded == session_id


def test_empty_id_rejected():
    with pytest.raises(ValueError):
        encode_session_id("")


@pytest.mark.parametrize("session_id,double", [("/a", True), ("+a", True), ("a//b", True), ("a/b", False),
                                               ("a+b", False), ("a=", False)])
def test_the_published_rule(session_id, double):
    assert needs_double_encoding(session_id) is double
