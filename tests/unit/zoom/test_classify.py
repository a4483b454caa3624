"""zoom.classify: each of Zoom's documented answers, classified without a server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests

from zoom_qos.core.errors import DailyLimitReached, PermanentError
from zoom_qos.zoom.classify import (
    TRANSPORT_ERRORS,
    Accept,
    Refuse,
    RenewAuth,
    Request,
    Retry,
    classify,
    transport_cause,
    zoom_error,
)
from zoom_qos.zoom.errors import (
    ZoomAccountError,
    ZoomApiError,
    ZoomAuthError,
    ZoomDailyLimitError,
    ZoomEndpointError,
    ZoomForbiddenError,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
QOS = Request("videosdk/sessions/{id}/users/qos", session_id="abc==", conn_id="zoom_videosdk",
              api_key_hint="key1…")


def body(code: int | None, message: str) -> bytes:
    return json.dumps({"code": code, "message": message}).encode()


def test_a_200_is_accepted_with_its_body():
    assert classify(200, {}, b'{"users": []}', QOS, NOW) == Accept(b'{"users": []}')


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_by_the_callers_backoff(status):
    outcome = classify(status, {}, b"oops", QOS, NOW)
    assert outcome == Retry(f"HTTP {status}") and outcome.delay is None and not outcome.rate_limited


def test_a_per_second_429_is_retried_after_the_wait_zoom_names_in_seconds_or_as_a_date():
    per_second = body(429, "You have reached the maximum per-second rate limit for this API. "
                           "Try again later.")
    seconds = classify(429, {"Retry-After": "3", "X-RateLimit-Type": "QPS"}, per_second, QOS, NOW)
    assert isinstance(seconds, Retry) and seconds.rate_limited and seconds.delay == pytest.approx(3)
    at = (NOW + timedelta(seconds=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    dated = classify(429, {"Retry-After": at}, per_second, QOS, NOW)
    assert isinstance(dated, Retry) and dated.delay == pytest.approx(7)
    bare = classify(429, {}, b"", QOS, NOW)  # users report 429s with no headers at all
    assert isinstance(bare, Retry) and bare.delay is None and bare.rate_limited


@pytest.mark.parametrize("headers, message", [
    ({"X-RateLimit-Type": "Daily-limit", "Retry-After": "2026-03-02T00:00:00Z"}, "Too many requests"),
    ({"Retry-After": "2026-03-02T00:00:00Z"}, "You have reached the maximum daily rate limit for this API."),
])
def test_the_daily_429_is_refused_until_zoom_resets(headers, message):
    outcome = classify(429, headers, body(429, message), QOS, NOW)
    assert isinstance(outcome, Refuse) and isinstance(outcome.error, ZoomDailyLimitError)
    assert isinstance(outcome.error, DailyLimitReached)
    assert outcome.error.reset_at == datetime(2026, 3, 2, tzinfo=UTC)


@pytest.mark.parametrize("code", [124, None])
def test_a_refused_token_may_be_renewed_once(code):
    outcome = classify(401, {}, body(code, "Invalid access token."), QOS, NOW)
    assert isinstance(outcome, RenewAuth) and isinstance(outcome.error, ZoomAuthError)
    assert isinstance(outcome.error, PermanentError)  # raised when a fresh token is refused too


def test_a_401_with_another_code_is_refused_at_once():
    outcome = classify(401, {}, body(4711, "Something else."), QOS, NOW)
    assert isinstance(outcome, Refuse) and isinstance(outcome.error, ZoomAuthError)


@pytest.mark.parametrize("status, code, expected, permanent", [
    (400, 200, ZoomAccountError, True),  # not a Video SDK account
    (403, None, ZoomForbiddenError, True),  # a scope or a plan missing
    (404, 2300, ZoomEndpointError, True),  # an over-encoded path
    (404, 3001, ZoomApiError, False),  # not available (yet): the extraction decides
    (400, 300, ZoomApiError, False),  # an invalid field
    (400, 12702, ZoomApiError, False),  # too old
])
def test_client_errors_are_refused_with_their_typed_error(status, code, expected, permanent):
    outcome = classify(status, {}, body(code, "Zoom's words"), QOS, NOW)
    assert isinstance(outcome, Refuse) and type(outcome.error) is expected
    assert isinstance(outcome.error, PermanentError) == permanent
    error = outcome.error
    assert (error.status, error.code, error.endpoint, error.session_id) == (status, code, QOS.path, "abc==")
    if expected is ZoomAccountError:
        assert "'zoom_videosdk'" in str(error) and "key1…" in str(error)


def test_the_query_never_reaches_a_message():
    request = Request("videosdk/sessions")  # the path only: a page token is a query parameter
    outcome = classify(400, {}, body(300, "Invalid next_page_token"), request, NOW)
    assert isinstance(outcome, Refuse) and "next_page_token=" not in str(outcome.error)


@pytest.mark.parametrize("raw, expected", [
    (b'{"code": 3001, "message": "not available"}', (3001, "not available")),
    (b'{"code": "3001", "message": 7}', (None, "7")),  # a code that is not a number is not one
    (b"<html>Bad Gateway</html>", (None, "<html>Bad Gateway</html>")),
    (b"[1, 2]", (None, "[1, 2]")),
    (b"", (None, "Not Found")),  # an empty body: the reason phrase
    (b"[" * 100_000, (None, "[" * 200)),  # too deep for the decoder: text, cut
])
def test_zoom_error_tolerates_any_body(raw, expected):
    assert zoom_error(raw, "Not Found") == expected


def test_transport_errors_name_their_root_cause():
    refused = requests.ConnectionError(ConnectionRefusedError(111, "Connection refused"))
    assert transport_cause(refused) == "connection refused"
    assert transport_cause(requests.ConnectTimeout()) == "connect timed out"
    assert transport_cause(requests.ReadTimeout()) == "read timed out"
    assert all(issubclass(kind, Exception) for kind in TRANSPORT_ERRORS)
