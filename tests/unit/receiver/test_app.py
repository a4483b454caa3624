"""The receiver: only signed, fresh, well-formed events of the kinds we keep are stored, and each is
answered 2xx only once stored; everything else is refused with the status Zoom must not retry on,
except a store failure, which Zoom must retry."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from zoom_qos.receiver.app import PATH, create_app
from zoom_qos.zoom import webhooks
from zoom_qos.zoom.webhooks import MAX_BODY_BYTES, ZoomEvent, sign

SECRET = "whsec-test-7c1d0e"
NOW = 1_780_000_000


def body(event: str = "session.ended", **obj: Any) -> bytes:
    obj = {"session_id": "S1", "session_name": "n", **obj}
    payload: dict[str, Any] = {"account_id": "acc", "object": obj}
    return json.dumps({"event": event, "event_ts": NOW * 1000, "payload": payload}).encode()


def headers(raw: bytes, *, secret: str = SECRET, at: int = NOW) -> dict[str, str]:
    stamp = str(at)
    return {"x-zm-request-timestamp": stamp, "x-zm-signature": sign(secret, stamp, raw),
            "x-zm-request-id": "rid-1", "content-type": "application/json"}


class Store:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[ZoomEvent] = []
        self.fail = fail

    def __call__(self, event: ZoomEvent) -> bool:
        if self.fail:
            raise OSError("disk full")
        new = all(e.key != event.key for e in self.events)
        self.events.append(event)
        return new


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(SECRET, store, clock=lambda: NOW)) as c:
        yield c


def post(client: TestClient, raw: bytes, hdrs: dict[str, str] | None = None) -> Any:
    return client.post(PATH, content=raw, headers=headers(raw) if hdrs is None else hdrs)


def counts(client: TestClient) -> dict[str, int]:
    return client.get("/health").json()["counts"]


def test_a_signed_event_is_stored_then_answered_and_a_retry_is_stored_once(
    client: TestClient, store: Store
) -> None:
    raw = body()
    assert post(client, raw).status_code == 200
    assert post(client, raw).status_code == 200  # Zoom's retry of the same event
    assert [e.session_id for e in store.events] == ["S1", "S1"] and store.events[0].request_id == "rid-1"
    assert (counts(client)["accepted"], counts(client)["duplicate"]) == (1, 1)


@pytest.mark.parametrize(("kind", "make"), [
    ("forged", lambda raw: headers(raw, secret="not-the-secret")),
    ("stale", lambda raw: headers(raw, at=NOW - 301)),
    ("stale", lambda raw: headers(raw, at=NOW + 301)),
    ("unsigned", lambda raw: {"content-type": "application/json"}),
    ("forged", lambda raw: {**headers(raw), "x-zm-signature": "v0=zz"}),
    ("forged", lambda raw: {**headers(body(session_name="other")), "x-zm-request-id": "x"}),
])
def test_unsigned_forged_or_stale_requests_are_refused_and_leave_no_trace(
    client: TestClient, store: Store, kind: str, make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    raw = body()
    answer = post(client, raw, make(raw))
    assert answer.status_code == 401 and store.events == []
    assert counts(client)[kind] == 1
    assert SECRET not in caplog.text and "S1" not in caplog.text and "rid-1" not in answer.text


def test_the_signature_is_compared_in_constant_time(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return False

    monkeypatch.setattr(webhooks.hmac, "compare_digest", spy)
    raw = body()
    assert post(client, raw).status_code == 401  # the comparison decides, whatever the strings
    assert calls == [(sign(SECRET, str(NOW), raw), headers(raw)["x-zm-signature"])]


def test_url_validation_is_answered_only_when_signed_and_for_a_token_of_zooms_shape(
    client: TestClient
) -> None:
    def challenge(token: str) -> bytes:
        return json.dumps({"event": "endpoint.url_validation", "payload": {"plainToken": token}}).encode()

    raw = challenge("qgg8vlvZRS6UYooatFL8Aw")
    answer = post(client, raw)
    expected = hmac.new(SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert answer.status_code == 200
    assert answer.json() == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}
    # Unsigned: no HMAC for anyone who asks (it would sign a body of their choice).
    assert post(client, raw, {"content-type": "application/json"}).status_code == 401
    odd = challenge('v0:1780000000:{"event": "session.ended"}')
    assert post(client, odd).status_code == 400


def test_bodies_over_the_bound_are_refused_before_they_are_read_whole(
    client: TestClient, store: Store
) -> None:
    raw = body(session_name="x" * MAX_BODY_BYTES)
    assert post(client, raw).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: read in chunks, stopped past the bound
        for _ in range(100):
            yield b"x" * 4096

    answer = client.post(PATH, content=chunks(), headers={"x-zm-request-timestamp": str(NOW),
                                                          "x-zm-signature": "v0=" + "0" * 64})
    assert answer.status_code == 413 and store.events == [] and counts(client)["too_large"] == 2


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"event": "session.ended", "payload": {}}',
                                 json.dumps({"event": "session.ended", "event_ts": NOW * 1000,
                                             "payload": {"object": {"session_name": "no id"}}}).encode()])
def test_signed_bodies_that_are_not_zoom_events_are_refused(
    client: TestClient, store: Store, raw: bytes
) -> None:
    assert post(client, raw).status_code == 400 and store.events == []


def test_an_event_type_we_do_not_keep_is_accepted_and_counted_not_stored(
    client: TestClient, store: Store
) -> None:
    assert post(client, body("session.recording_completed")).status_code == 200
    assert store.events == [] and counts(client)["unknown_event"] == 1


def test_a_store_failure_is_a_5xx_so_that_zoom_retries() -> None:
    with TestClient(create_app(SECRET, Store(fail=True), clock=lambda: NOW)) as client:
        answer = post(client, body())
        assert answer.status_code == 503 and "disk full" not in answer.text
        assert counts(client)["store_failed"] == 1


def test_without_a_secret_every_request_is_refused(store: Store) -> None:
    with TestClient(create_app("", store, clock=lambda: NOW)) as client:
        raw = body()
        assert client.post(PATH, content=raw, headers=headers(raw, secret="")).status_code == 401


def test_the_clock_is_real_by_default(store: Store) -> None:
    with TestClient(create_app(SECRET, store)) as client:
        raw = body()
        assert post(client, raw, headers(raw, at=int(time.time()))).status_code == 200
