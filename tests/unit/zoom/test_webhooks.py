"""Zoom's webhook protocol as published: the signature over the raw body (constant-time, a 5-minute
window), URL validation only for a token of Zoom's shape, what parses as an event, and its identity."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from zoom_qos.zoom import webhooks
from zoom_qos.zoom.webhooks import (
    MAX_BODY_BYTES,
    URL_VALIDATION,
    BadEventError,
    BodyTooLargeError,
    SignatureError,
    ZoomEvent,
    parse_event,
    sign,
    url_validation_answer,
    verify_signature,
)


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


# --- signature: every way a request can fail to be Zoom's -------------------------------------

SECRET = "tok-5d1e0c9b"
NOW = 1_700_000_000
RAW = b'{"event":"session.ended","event_ts":1700000000000,"payload":{"object":{"session_id":"S"}}}'
GOOD = {"x-zm-request-timestamp": str(NOW), "x-zm-signature": sign(SECRET, str(NOW), RAW)}


@pytest.mark.parametrize(("headers", "why"), [
    ({}, "unsigned"),
    ({"x-zm-request-timestamp": str(NOW)}, "unsigned"),
    ({"x-zm-signature": GOOD["x-zm-signature"]}, "unsigned"),
    ({**GOOD, "x-zm-request-timestamp": "17e8"}, "not a time"),
    ({**GOOD, "x-zm-request-timestamp": "-1700000000"}, "not a time"),
    ({**GOOD, "x-zm-request-timestamp": "1" * 13}, "not a time"),
    ({**GOOD, "x-zm-request-timestamp": str(NOW - 301)}, "stale"),
    ({**GOOD, "x-zm-signature": GOOD["x-zm-signature"].upper()}, "not of the form"),
    ({**GOOD, "x-zm-signature": GOOD["x-zm-signature"][3:]}, "not of the form"),
    ({**GOOD, "x-zm-signature": "v1=" + GOOD["x-zm-signature"][3:]}, "not of the form"),
    ({**GOOD, "x-zm-signature": sign("another-token", str(NOW), RAW)}, "does not match"),
])
def test_unsigned_malformed_stale_or_forged_requests_are_refused_without_repeating_a_header(
    headers: dict[str, str], why: str
) -> None:
    with pytest.raises(SignatureError, match=why) as caught:
        verify_signature(SECRET, headers, RAW, now=NOW)
    assert caught.value.status == 401
    assert all(value not in str(caught.value) for value in headers.values())


def test_a_signature_is_refused_when_no_secret_token_is_configured() -> None:
    headers = {"x-zm-request-timestamp": str(NOW), "x-zm-signature": sign("", str(NOW), RAW)}
    with pytest.raises(SignatureError, match="no webhook secret token"):
        verify_signature("", headers, RAW, now=NOW)


def test_the_window_is_the_callers_and_holds_both_ways() -> None:
    verify_signature(SECRET, GOOD, RAW, now=NOW - 300)  # a sender's clock a little ahead
    with pytest.raises(SignatureError, match="stale"):
        verify_signature(SECRET, GOOD, RAW, now=NOW + 61, window=60)


def test_the_constant_time_comparison_is_what_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    """hmac.compare_digest, not ==: it alone turns a forged signature into a pass or a good one into
    a refusal (a plain == would ignore what it says)."""
    calls: list[tuple[str, str]] = []

    def says(answer: bool) -> object:
        def compare(a: str, b: str) -> bool:
            calls.append((a, b))
            return answer
        return compare

    forged = {**GOOD, "x-zm-signature": sign("another-token", str(NOW), RAW)}
    monkeypatch.setattr(webhooks.hmac, "compare_digest", says(True))
    verify_signature(SECRET, forged, RAW, now=NOW)
    monkeypatch.setattr(webhooks.hmac, "compare_digest", says(False))
    with pytest.raises(SignatureError):
        verify_signature(SECRET, GOOD, RAW, now=NOW)
    assert calls == [(GOOD["x-zm-signature"], forged["x-zm-signature"]),
                     (GOOD["x-zm-signature"], GOOD["x-zm-signature"])]


# --- URL validation ---------------------------------------------------------------------------

def challenge(token: object) -> ZoomEvent:
    return parse_event(json.dumps({"event": URL_VALIDATION, "payload": {"plainToken": token}}).encode())


def test_url_validation_is_zooms_hmac_of_the_plain_token() -> None:
    answer = url_validation_answer(SECRET, challenge("qgg8vlvZRS6UYooatFL8Aw"))
    expected = hmac.new(SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert answer == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}


@pytest.mark.parametrize("token", [None, 12345678, "short", "x" * 65, "has space in it", "v0:1700000000:{}",
                                   "tok\nen-1234", "ünïcödé-token"])
def test_url_validation_refuses_a_plain_token_not_of_zooms_shape(token: object) -> None:
    with pytest.raises(BadEventError, match="plainToken"):
        url_validation_answer(SECRET, challenge(token))


# --- parsing ----------------------------------------------------------------------------------

def test_a_body_over_the_bound_is_refused_with_413_before_it_is_parsed() -> None:
    with pytest.raises(BodyTooLargeError) as caught:
        parse_event(b"{" * (MAX_BODY_BYTES + 1))
    assert caught.value.status == 413 and isinstance(caught.value, BadEventError)


@pytest.mark.parametrize("raw", [b"[" * 60_000, b'{"a":' * 12_000])
def test_json_nested_too_deeply_is_a_bad_event_not_a_crash(raw: bytes) -> None:
    with pytest.raises(BadEventError, match="nested too deeply") as caught:
        parse_event(raw)
    assert caught.value.status == 400


ENDED = b'{"event": "session.ended", "event_ts": '


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe\x00", b"null", b'"text"',
                                 ENDED + b'1700000000000, "payload": []}',
                                 ENDED + b'1700000000000, "payload": {"object": []}}',
                                 ENDED + b'1, "payload": {"object": {"session_id": "S"}}}'])
def test_bodies_that_are_not_zoom_events_are_bad_events(raw: bytes) -> None:
    with pytest.raises(BadEventError) as caught:
        parse_event(raw)
    assert caught.value.status == 400 and not isinstance(caught.value, BodyTooLargeError)


def test_a_request_id_that_is_not_printable_text_is_dropped_not_stored() -> None:
    assert parse_event(RAW, "rid-42").request_id == "rid-42"
    assert parse_event(RAW, "rid\n42").request_id is None
    assert parse_event(RAW, "r" * 201).request_id is None


def test_url_validation_needs_no_event_ts_and_keeps_its_payload_as_the_object() -> None:
    event = challenge("qgg8vlvZRS6UYooatFL8Aw")
    assert event.event == URL_VALIDATION and event.object == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}


# ------------------------------------------------------------------ Zoom's webhook log
WHEN = "2022-09-09T08:11:38Z"

def test_a_logged_delivery_is_read_as_published() -> None:
    body = '{"event":"session.ended","event_ts":1757398366655,"payload":{"object":{"session_id":"S=="}}}'
    d = webhooks.logged_delivery({
        "event": "session.ended", "status": -1, "failed_reason_type": 2, "retry_num": 1,
        "request_id": "e8ca3e3c_0196", "date_time": WHEN, "endpoint": "https://x.example/h",
        "request_body": body})
    assert (d.request_id, d.retry_num, d.status, d.failed_reason_type, d.session_id, d.failed) == (
        "e8ca3e3c_0196", 1, -1, 2, "S==", True)
    assert d.attempted_at == datetime(2022, 9, 9, 8, 11, 38, tzinfo=UTC)
    assert d.event_ts == datetime.fromtimestamp(1757398366.655, UTC)
    assert not webhooks.logged_delivery({"event": "session.ended", "status": 204, "date_time": WHEN}).failed


def test_a_logged_delivery_without_request_id_or_readable_body_still_has_an_identity() -> None:
    one = {"event": "session.alert", "status": 500, "date_time": WHEN, "request_body": "N/A"}
    a, b = webhooks.logged_delivery(one), webhooks.logged_delivery(dict(one))
    assert a.request_id == b.request_id and a.request_id.startswith("sha256:")
    assert (a.session_id, a.event_ts, a.retry_num) == (None, None, 0)
    other = webhooks.logged_delivery({**one, "date_time": "2022-09-09T08:11:39Z"})
    assert other.request_id != a.request_id


@pytest.mark.parametrize("entry", [
    [], {"status": 500, "date_time": WHEN}, {"event": "x.y", "status": "500", "date_time": "x"},
    {"event": "x.y", "status": True, "date_time": WHEN}, {"event": "x.y", "status": 500},
])
def test_a_log_entry_that_names_no_attempt_is_refused(entry: Any) -> None:
    with pytest.raises(webhooks.BadEventError):
        webhooks.logged_delivery(entry)
