"""The simulator as Zoom's notification side: signed session.ended/session.alert deliveries when its
clock passes them, Zoom's retries (5xx and no answer only, at most three, the request id kept), the
log ``GET /videosdk/report/webhook_logs`` serves as published, and faulty deliveries for tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from include.zoom_simulator import Simulator, SimulatorConfig
from include.zoom_simulator.webhooks import FAULT_KINDS, ZOOM_RETRY_DELAYS
from tests.simulator.simhelpers import NOW, get, make_simulator
from zoom_qos.zoom.published import WEBHOOK_LOGS, ErrorCode, response_problems
from zoom_qos.zoom.webhooks import MAX_BODY_BYTES, SignatureError, parse_event, verify_signature

TOKEN = "sim-webhook-token-for-tests"
SCALE = 1 / 3600  # Zoom's +5, +20, +60 min → 83 ms, 0.33 s, 1 s


class Endpoint:
    """A stand-in receiver: records each request and answers from a script (default 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        self.failing_ids: set[str] = set()  # every attempt of these request ids answers 500
        self.fail_new_ids = 0  # the next N request ids seen join failing_ids
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with outer.lock:
                    outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    request_id = self.headers.get("x-zm-request-id") or ""
                    seen = {h.get("x-zm-request-id") for h, _ in outer.requests[:-1]}
                    if outer.fail_new_ids and request_id not in seen:
                        outer.fail_new_ids -= 1
                        outer.failing_ids.add(request_id)
                    status = (500 if request_id in outer.failing_ids
                              else outer.answers.pop(0) if outer.answers else 200)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/zoom"

    def bodies(self, event: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            found = [json.loads(body) for _, body in self.requests]
        return [b for b in found if event is None or b["event"] == event]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(check: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    e = Endpoint()
    yield e
    e.close()


@pytest.fixture
def sim(endpoint: Endpoint) -> Iterator[Simulator]:
    s = make_simulator(webhook_url=endpoint.url, webhook_secret_token=TOKEN, webhook_time_scale=SCALE).start()
    yield s
    s.stop()


def test_each_session_ending_is_delivered_once_signed_as_zoom_signs(sim: Simulator,
                                                                     endpoint: Endpoint) -> None:
    start = sim.now
    sim.advance(3 * 3600)
    expected = sim.dataset.ended_between(start, sim.now)
    assert expected, "three hours of the simulated day end some sessions"
    wait_for(lambda: len(endpoint.bodies("session.ended")) == len(expected))
    time.sleep(0.5)  # and nothing more comes
    # once each (sent concurrently, as Zoom does: the order of arrival is not the order of ending)
    assert sorted(b["payload"]["object"]["session_id"] for b in endpoint.bodies("session.ended")) == sorted(
        s.id for s in expected)
    for headers, body in endpoint.requests:
        verify_signature(TOKEN, headers, body, time.time())  # raises if not Zoom's signature
        with pytest.raises(SignatureError):
            verify_signature("another-token", headers, body, time.time())
        event = parse_event(body, headers["x-zm-request-id"])
        if event.event == "session.ended":
            session = next(s for s in expected if s.id == event.session_id)
            assert event.event_ts == session.end
            assert event.object["end_time"] == session.obj["end_time"]
    log = sim.webhooks.log() if sim.webhooks else []
    assert len(log) == len(endpoint.requests) and all(e["status"] == 200 and e["retry_num"] == 0 for e in log)


def test_an_alert_is_sent_for_a_troubled_session_naming_no_user(endpoint: Endpoint) -> None:
    sim = make_simulator(webhook_url=endpoint.url, webhook_secret_token=TOKEN,
                         live_anchor=NOW + timedelta(minutes=2))
    with sim:
        degrading = next(s for s in sim.dataset.live_scenarios() if s["kind"] == "degrading")
        sim.set_now(degrading["degrades_at"] + timedelta(minutes=2))
        wait_for(lambda: any(b["payload"]["object"]["session_id"] == degrading["id"]
                             for b in endpoint.bodies("session.alert")))
    (alert,) = [b for b in endpoint.bodies("session.alert")
                if b["payload"]["object"]["session_id"] == degrading["id"]]
    assert alert["payload"]["object"]["issues"] == ["Unstable audio quality", "Unstable video quality"]
    assert not {"user_id", "user_name", "participant_uuid"} & set(alert["payload"]["object"])


def test_5xx_and_no_answer_are_retried_three_times_a_4xx_never(sim: Simulator, endpoint: Endpoint) -> None:
    assert sim.webhooks is not None
    session = sim.dataset.ended_between(NOW - timedelta(days=1), NOW)[-1]
    body = json.dumps({"event": "session.ended", "event_ts": 1, "payload": {"object": {}}}).encode()
    endpoint.answers = [503, 500, 502, 503]
    sent_at = time.monotonic()
    retried = sim.webhooks.enqueue("session.ended", body, session.id)
    wait_for(lambda: len(endpoint.requests) == 4)
    elapsed = time.monotonic() - sent_at
    assert elapsed >= ZOOM_RETRY_DELAYS[-1] * SCALE  # the last retry waits for its place in the schedule
    time.sleep(4 * SCALE * ZOOM_RETRY_DELAYS[0] + 0.5)
    assert len(endpoint.requests) == 4, "at most three retries"
    ids = {headers["x-zm-request-id"] for headers, _ in endpoint.requests}
    assert ids == {retried.request_id}, "a retry keeps its request id"
    attempts = [e for e in sim.webhooks.log() if e["request_id"] == retried.request_id]
    assert [(e["retry_num"], e["status"]) for e in attempts] == [(0, 503), (1, 500), (2, 502), (3, 503)]

    endpoint.requests.clear()
    endpoint.answers = [400]
    refused = sim.webhooks.enqueue("session.ended", body, session.id)
    wait_for(lambda: len(endpoint.requests) == 1)
    time.sleep(SCALE * ZOOM_RETRY_DELAYS[0] + 0.5)
    assert len(endpoint.requests) == 1, "Zoom never retries after a 4xx"
    assert [e["status"] for e in sim.webhooks.log() if e["request_id"] == refused.request_id] == [400]


def test_a_receiver_down_for_a_while_gets_the_event_from_a_retry(endpoint: Endpoint) -> None:
    dead = Endpoint()
    url = dead.url
    dead.close()  # nothing listens there now: connection refused
    sim = make_simulator(webhook_url=url, webhook_secret_token=TOKEN, webhook_time_scale=SCALE)
    with sim:
        assert sim.webhooks is not None
        session = sim.dataset.ended_between(NOW - timedelta(days=1), NOW)[-1]
        delivery = sim.webhooks.enqueue("session.ended", b'{"event":"session.ended"}', session.id)
        wait_for(lambda: len(sim.webhooks.log()) == 1 if sim.webhooks else False)
        (first,) = sim.webhooks.log()
        assert (first["status"], first["failed_reason_type"]) == (-1, 2)  # connection refused
        # the endpoint comes back on the same URL before the retries run out
        sim.webhooks.url = endpoint.url
        wait_for(lambda: len(endpoint.requests) == 1)
        assert endpoint.requests[0][0]["x-zm-request-id"] == delivery.request_id


def test_webhook_logs_as_published(sim: Simulator, endpoint: Endpoint) -> None:
    assert sim.webhooks is not None
    endpoint.fail_new_ids = 2  # every attempt of the first two deliveries fails
    start = sim.now
    sim.advance(6 * 3600)
    ended = sim.dataset.ended_between(start, sim.now)
    wait_for(lambda: sim.webhooks.pending() == 0 and len(sim.webhooks.log()) >= len(ended) + 6
             if sim.webhooks else False)
    log = sim.webhooks.log()
    failed = [e for e in log if e["status"] != 200]
    assert len(failed) == 8 and {e["retry_num"] for e in failed} == {0, 1, 2, 3}

    def fmt(t: Any) -> str:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")

    window = {"from": fmt(sim.now - timedelta(days=6)), "to": fmt(sim.now)}
    answer = get(sim, "videosdk/report/webhook_logs", **window, page_size=300)
    assert answer.status_code == 200 and response_problems(WEBHOOK_LOGS, answer.json()) == []
    served = answer.json()["webhook_logs"]
    assert len(served) == 8 and all(e["status"] == 500 for e in served)  # type 2 (failed) by default
    assert set(WEBHOOK_LOGS.item_fields) - {"failed_reason_type"} <= set(served[0])

    def count(**params: Any) -> int:
        found = get(sim, "videosdk/report/webhook_logs", **window, page_size=300, **params).json()
        return len(found["webhook_logs"])

    assert (count(type=1), count(type=3), count(retry_num=3)) == (len(log), len(log) - 8, 2)
    # paged: 8 failed attempts at 3 a page
    pages, token = [], ""
    while True:
        page = get(sim, "videosdk/report/webhook_logs", **window, page_size=3, next_page_token=token).json()
        pages.append(page["webhook_logs"])
        token = page["next_page_token"]
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 2] and sum(pages, []) == served

    def code(**params: Any) -> int:
        r = get(sim, "videosdk/report/webhook_logs", **params)
        assert r.status_code == 400
        return int(r.json()["code"])

    assert code(**{"from": "2026-11-20"}) == ErrorCode.WEBHOOK_LOGS_DATE_FORMAT
    assert code(**{"from": fmt(sim.now - timedelta(hours=1)), "to": fmt(sim.now - timedelta(hours=2))}) \
        == ErrorCode.WEBHOOK_LOGS_TO_BEFORE_FROM
    assert code(**{"from": fmt(sim.now - timedelta(days=8)), "to": fmt(sim.now)}) \
        == ErrorCode.WEBHOOK_LOGS_RANGE
    assert code(**{"from": fmt(sim.now + timedelta(hours=1))}) == ErrorCode.WEBHOOK_LOGS_FROM_IN_FUTURE
    assert code(retry_num=4) == ErrorCode.WEBHOOK_LOGS_RETRY_NUM
    assert code(type=4) == ErrorCode.INVALID_FIELD


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_faulty_deliveries_reach_the_endpoint_with_their_fault(sim: Simulator, endpoint: Endpoint,
                                                               kind: str) -> None:
    root = sim.base_url.removesuffix("/v2")
    if kind == "replay":  # something to replay first
        sim.advance(3 * 3600)
        wait_for(lambda: len(endpoint.requests) > 0
                 and (sim.webhooks.pending() == 0 if sim.webhooks else False))
    before = len(endpoint.requests)
    answer = requests.post(f"{root}/_sim/webhooks/send", json={"kind": kind}, timeout=10)
    assert answer.status_code == 200 and answer.json()["status"] == 200
    headers, body = endpoint.requests[before]
    signed = {"forged": False, "stale": False, "unsigned": False}.get(kind, True)
    if signed:
        verify_signature(TOKEN, headers, body, time.time())
    else:
        with pytest.raises(SignatureError):
            verify_signature(TOKEN, headers, body, time.time())
    assert (len(body) > MAX_BODY_BYTES) == (kind == "oversized")
    if kind == "replay":
        assert any(h == headers and b == body for h, b in endpoint.requests[:before])
    if kind == "duplicate":
        earlier_ids = {h.get("x-zm-request-id") for h, _ in endpoint.requests[:before]}
        assert headers["x-zm-request-id"] not in earlier_ids
    assert sim.webhooks is not None and len(sim.webhooks.log()) == before, "faults are not Zoom's: not logged"


def test_webhooks_are_off_without_url_and_token_and_need_both() -> None:
    with pytest.raises(ValueError, match="together"):
        SimulatorConfig(webhook_url="http://127.0.0.1:1/x")
    plain = make_simulator()
    assert plain.webhooks is None
    with plain:
        root = plain.base_url.removesuffix("/v2")
        assert requests.get(f"{root}/_sim/webhooks", timeout=10).status_code == 404
        logs = get(plain, "videosdk/report/webhook_logs")
        assert logs.status_code == 200 and logs.json()["webhook_logs"] == []
    assert "s3cr3t" not in repr(SimulatorConfig(webhook_url="http://x", webhook_secret_token="s3cr3t"))
