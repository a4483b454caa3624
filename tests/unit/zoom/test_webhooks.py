"""Zoom's webhook protocol as published: the signature over the raw body, the event's identity."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from zoom_qos.zoom.webhooks import BadEventError, SignatureError, parse_event, sign, verify_signature


def test_the_signature_is_zooms_v0_hmac_of_timestamp_and_raw_body() -> None:
    raw = b'{"event":"session.ended"}'
    expected = "v0=" + hmac.new(b"tok", b"v0:1700000000:" + raw, hashlib.sha256).hexdigest()
    assert sign("tok", "1700000000", raw) == expected
    verify_signature("tok", {"x-zm-request-timestamp": "1700000000", "x-zm-signature": expected}, raw,
                     now=1700000000 + 299)
    with pytest.raises(SignatureError, match="stale"):
        verify_signature("tok", {"x-zm-request-timestamp": "1700000000", "x-zm-signature": expected}, raw,
                         now=1700000000 + 301)
    with pytest.raises(SignatureError, match="does not match"):  # one byte changed
        verify_signature("tok", {"x-zm-request-timestamp": "1700000000", "x-zm-signature": expected},
                         raw + b" ", now=1700000000)


def test_an_events_identity_ignores_the_delivery_and_follows_the_event() -> None:
    def event(ts: int, session: str, request_id: str) -> bytes:
        return json.dumps({"event": "session.ended", "event_ts": ts,
                           "payload": {"object": {"session_id": session}}}).encode()

    first = parse_event(event(1_700_000_000_123, "S", "a"), "a")
    assert first.event_ts == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert parse_event(event(1_700_000_000_123, "S", "b"), "b").key == first.key
    assert parse_event(event(1_700_000_000_124, "S", "a"), "a").key != first.key
    assert parse_event(event(1_700_000_000_123, "T", "a"), "a").key != first.key


@pytest.mark.parametrize("raw", [
    b'{"event": "session.ended", "event_ts": true, "payload": {"object": {"session_id": "S"}}}',
    b'{"event": "Session Ended!", "event_ts": 1700000000000, "payload": {"object": {}}}',
    b'{"event": "session.alert", "event_ts": 1700000000000, "payload": {"object": {"session_id": 5}}}',
    b'{"event": "session.ended", "event_ts": 1700000000, "payload": {"object": {"session_id": "S"}}}',
])
def test_what_is_not_a_zoom_event_is_refused(raw: bytes) -> None:
    with pytest.raises(BadEventError):
        parse_event(raw)
