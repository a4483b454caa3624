"""The receiver: only signed, fresh, well-formed events of the kinds we keep are stored, and each is
answered 2xx only once stored; everything else is refused with the status Zoom must not retry on,
except a store failure, which Zoom must retry."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import select
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from tests.unit.receiver.server import running
from zoom_qos.receiver import app as app_module
from zoom_qos.receiver.app import PATH, create_app
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.webhook_schema import webhook_events, zoom_session_alerts
from zoom_qos.warehouse.webhooks import store_event
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


# --- the body is read with a hard bound, whatever the client says ------------------------------

def asgi_post(headers: list[tuple[bytes, bytes]], chunk: bytes = b"x" * 4096,
              chunks: int = 1000) -> tuple[int, int, bytes]:
    """POST to the app as uvicorn would, from a client that would send ``chunks`` chunks: returns
    (status, chunks the app pulled, answer body)."""
    app = create_app(SECRET, Store(), clock=lambda: NOW)
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": pulled < chunks}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 8090)}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, pulled, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.mark.parametrize("declared", [None, b"100", b"not-a-number"], ids=["absent", "lying", "garbage"])
def test_reading_stops_just_past_the_bound_whatever_content_length_says(declared: bytes | None) -> None:
    headers = [(b"x-zm-request-timestamp", str(NOW).encode()), (b"x-zm-signature", b"v0=" + b"0" * 64)]
    if declared is not None:
        headers.append((b"content-length", declared))
    status, pulled, answer = asgi_post(headers)  # a client that would send 4 MB
    assert status == 413 and answer == b'{"error":"too_large"}'
    assert pulled == MAX_BODY_BYTES // 4096 + 1  # 17 chunks of 4 KiB: one past 64 KiB, not 1,000


def test_a_declared_length_over_the_bound_is_refused_before_any_byte_is_read() -> None:
    headers = [(b"content-length", str(MAX_BODY_BYTES + 1).encode())]
    assert asgi_post(headers)[:2] == (413, 0)


def test_a_body_of_exactly_the_bound_is_read_and_stored(client: TestClient, store: Store) -> None:
    raw = body(session_name="")
    raw = body(session_name="x" * (MAX_BODY_BYTES - len(raw)))
    assert len(raw) == MAX_BODY_BYTES
    assert post(client, raw).status_code == 200 and len(store.events) == 1


def test_a_chunked_body_over_the_bound_gets_413_from_the_real_server() -> None:
    """Over HTTP: no Content-Length, chunked transfer; the server answers while the client sends."""
    with running(create_app(SECRET, Store(), clock=lambda: NOW)) as (host, port):
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
                         f"x-zm-request-timestamp: {NOW}\r\nx-zm-signature: v0={'0' * 64}\r\n\r\n".encode())
            sent, answer = 0, b""
            while sent < 4 * 1024 * 1024 and not answer:
                try:
                    sock.sendall(b"1000\r\n" + b"x" * 4096 + b"\r\n")
                    sent += 4096
                except OSError:  # the server closed the connection after answering
                    break
                if select.select([sock], [], [], 0)[0]:
                    answer = sock.recv(65536)
            answer = answer or sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 ")


# --- the signature is checked over the raw bytes, before any parsing --------------------------

def test_nothing_unsigned_is_parsed(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[bytes] = []
    real = app_module.parse_event

    def spy(raw: bytes, request_id: str | None = None) -> ZoomEvent:
        parsed.append(raw)
        return real(raw, request_id)

    monkeypatch.setattr(app_module, "parse_event", spy)
    raw = b"not json at all"
    assert post(client, raw, {"x-zm-request-timestamp": str(NOW)}).status_code == 401
    assert post(client, raw, headers(b"other bytes")).status_code == 401
    assert parsed == []
    assert post(client, raw).status_code == 400 and parsed == [raw]  # signed: parsed, and refused


def test_the_signature_covers_the_bytes_as_sent_not_the_json_they_decode_to(client: TestClient) -> None:
    raw = body()
    same_json = json.dumps(json.loads(raw), indent=2).encode()  # equal once parsed, other bytes
    assert post(client, same_json, headers(raw)).status_code == 401


# --- each refusal is one WARNING line with no header value and no body ------------------------

@pytest.mark.parametrize(("make", "status", "outcome"), [
    (lambda raw: {}, 401, "unsigned"),
    (lambda raw: headers(raw, secret="wrong-secret"), 401, "forged"),
    (lambda raw: headers(raw, at=NOW - 3600), 401, "stale"),
    (lambda raw: {**headers(raw), "x-zm-request-timestamp": "17e8"}, 401, "forged"),
])
def test_a_refusal_is_one_warning_line_repeating_nothing_it_received(
    client: TestClient, caplog: pytest.LogCaptureFixture, make: Any, status: int, outcome: str
) -> None:
    raw = body(session_name="Quarterly board call")
    sent = make(raw)
    with caplog.at_level(logging.DEBUG, logger="zoom_qos.receiver"):
        answer = post(client, raw, {**sent, "x-zm-request-id": "rid-secretive"})
    assert (answer.status_code, answer.json()) == (status, {"error": outcome})
    (record,) = [r for r in caplog.records if r.name.startswith("zoom_qos.receiver")]
    assert record.levelno == logging.WARNING and outcome in record.getMessage()
    shown = record.getMessage() + answer.text
    assert all(value not in shown for value in [*sent.values(), "rid-secretive", "Quarterly", SECRET])
    assert counts(client)[outcome] == 1


@pytest.mark.parametrize(("raw", "why"), [(b"{oops", "not JSON"), (b'{"event": 5}', "'event'")])
def test_a_signed_body_that_is_no_event_is_a_400_with_a_clear_line(
    client: TestClient, caplog: pytest.LogCaptureFixture, raw: bytes, why: str
) -> None:
    with caplog.at_level(logging.DEBUG, logger="zoom_qos.receiver"):
        assert post(client, raw).status_code == 400
    (record,) = [r for r in caplog.records if r.name.startswith("zoom_qos.receiver")]
    assert record.levelno == logging.WARNING and why in record.getMessage()
    assert counts(client)["bad_request"] == 1


# --- URL validation: no storage work, signed only ----------------------------------------------

def test_url_validation_touches_no_store_and_is_refused_when_forged(client: TestClient, store: Store) -> None:
    raw = json.dumps({"event": "endpoint.url_validation", "payload": {"plainToken": "abcdEFGH1234"}}).encode()
    assert post(client, raw).status_code == 200
    assert post(client, raw, headers(raw, secret="guess")).status_code == 401
    assert store.events == [] and counts(client)["url_validation"] == 1
    assert counts(client)["forged"] == 1


# --- the store: in a thread, answered only once it returned, 503 when it fails -----------------

def test_the_store_runs_off_the_event_loop_and_the_answer_waits_for_it() -> None:
    entered, release = threading.Event(), threading.Event()
    on_loop: list[bool] = []

    def slow_store(event: ZoomEvent) -> bool:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        entered.set()
        assert release.wait(30)
        return True

    with TestClient(create_app(SECRET, slow_store, clock=lambda: NOW)) as client, \
            ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post, client, body())
        assert entered.wait(30)
        # While the commit hangs: no answer yet, and the loop still serves others.
        assert not pending.done()
        assert client.get("/health").json()["counts"]["accepted"] == 0
        release.set()
        assert pending.result(timeout=30).status_code == 200
        assert counts(client)["accepted"] == 1
    assert on_loop == [False]


@pytest.mark.parametrize("error", [OSError("disk full: /var/lib/pg S1"), RuntimeError("S1"), KeyError("S1")])
def test_any_store_failure_is_a_bare_503_logged_without_the_event(
    caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    def failing(event: ZoomEvent) -> bool:
        raise error

    with TestClient(create_app(SECRET, failing, clock=lambda: NOW)) as client, \
            caplog.at_level(logging.DEBUG, logger="zoom_qos.receiver"):
        answer = post(client, body(session_name="Quarterly board call"))
        assert (answer.status_code, answer.json()) == (503, {"error": "store_failed"})
        assert counts(client)["store_failed"] == 1
    (record,) = [r for r in caplog.records if r.name.startswith("zoom_qos.receiver")]
    assert record.levelno == logging.ERROR and type(error).__name__ in record.getMessage()
    assert record.exc_info is None
    shown = record.getMessage() + answer.text
    assert all(text not in shown for text in ("S1", "Quarterly", "disk full", "Traceback", SECRET))


# --- /health ----------------------------------------------------------------------------------

def test_health_shows_the_counters_and_nothing_else(client: TestClient) -> None:
    post(client, body())
    post(client, body(), {})
    answer = client.get("/health")
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
    assert set(answer.json()) == {"status", "counts"}
    assert set(answer.json()["counts"]) == {"accepted", "duplicate", "url_validation", "unknown_event",
                                            "unsigned", "forged", "stale", "too_large", "bad_request",
                                            "store_failed"}
    assert (answer.json()["counts"]["accepted"], answer.json()["counts"]["unsigned"]) == (1, 1)
    assert SECRET not in answer.text and "S1" not in answer.text


def test_only_the_two_routes_answer(client: TestClient) -> None:
    assert client.get(PATH).status_code == 405
    assert client.post("/health").status_code == 405
    assert client.post("/webhooks/other", content=body()).status_code == 404


# --- with the real store, on SQLite and on PostgreSQL ------------------------------------------

def test_with_the_real_store_a_duplicate_is_a_200_stored_once_and_alerts_land_in_their_table(
    warehouse: Warehouse
) -> None:
    def store(event: ZoomEvent) -> bool:
        return store_event(warehouse.engine, event, datetime.now(UTC))

    alert = body("session.alert", session_id="S2", issues=["Unstable audio quality", "High CPU occupation"])
    with TestClient(create_app(SECRET, store, clock=lambda: NOW)) as client:
        retry = headers(body(), at=NOW + 60)  # Zoom's retry: the same body, signed anew
        answers = [post(client, body()), post(client, body(), retry), post(client, alert)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert post(client, body("session.recording_completed")).status_code == 200
        assert (counts(client)["accepted"], counts(client)["duplicate"]) == (2, 1)
        # the retry's very bytes and headers again (a replay, within the window): nothing changes
        assert post(client, body(), retry).status_code == 200 and counts(client)["duplicate"] == 2
    with warehouse.engine.connect() as conn:
        rows = conn.execute(sa.select(webhook_events.c.session_id, webhook_events.c.deliveries)
                            .order_by(webhook_events.c.session_id)).all()
        alerts = conn.execute(sa.select(zoom_session_alerts.c.session_id, zoom_session_alerts.c.issues)).all()
    assert [tuple(r) for r in rows] == [("S1", 2), ("S2", 1)]
    assert [tuple(a) for a in alerts] == [("S2", "Unstable audio quality, High CPU occupation")]
