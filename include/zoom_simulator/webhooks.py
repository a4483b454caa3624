"""Zoom's side of event notifications (webhooks), played by the simulator.

When a ``webhook_url`` and a ``webhook_secret_token`` are configured, the simulator delivers what
Zoom delivers to a Video SDK app's endpoint: ``session.ended`` when one of its sessions ends (its
clock passes ``end_time``) and ``session.alert`` when a troubled session degrades, each a signed
POST (``x-zm-request-timestamp``, ``x-zm-signature``, ``x-zm-request-id``) as
``zoom_qos.zoom.webhooks`` checks them. Zoom's delivery rules, from its docs:

- 200 or 204 is a success; any other 2xx/3xx/4xx is a failure that is **never retried**;
- a 5xx or a failed connection (refused, reset, timed out) is retried, at most three times, about
  +5, +20 and +60 minutes after the first attempt (``retry_num`` 1, 2, 3; the request id is kept,
  the timestamp and signature are new). ``webhook_time_scale`` compresses that schedule for tests
  (1/30: after 10 s, 40 s and 2 min);
- every attempt is logged, as ``GET /videosdk/report/webhook_logs`` serves it (``date_time`` on
  the simulated clock, ``status`` the HTTP answer or -1 when none came, ``failed_reason_type``).

Faulty deliveries for tests (``send_fault``): forged (signed with another token), stale (a
timestamp ten minutes old), unsigned, oversized (a body over the receiver's 64 KiB bound), a
duplicate (an ended event delivered again with a new request id) and a replay (the first delivery
made, sent again byte for byte, headers included: stale once its timestamp is over 5 minutes old).
"""

from __future__ import annotations

import heapq
import itertools
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from zoom_qos.zoom.published import WEBHOOK_MAX_RETRY_NUM
from zoom_qos.zoom.webhooks import MAX_BODY_BYTES, sign

#: Zoom's documented retry schedule, seconds after the first attempt.
ZOOM_RETRY_DELAYS = (300.0, 1200.0, 3600.0)
#: Zoom's account id in every payload (any constant: the receiver does not check it).
ACCOUNT_ID = "sim-account-0001"
SUBSCRIPTION_ID = "sim-subscription-0001"
FAULT_KINDS = ("forged", "stale", "unsigned", "oversized", "duplicate", "replay")
#: ``failed_reason_type`` of Zoom's log: 1 read time out, 2 connection refused, 7 remote error.
READ_TIMEOUT, CONNECTION_REFUSED, REMOTE_ERROR = 1, 2, 7
_ALERT_DELAY = timedelta(minutes=1)
#: (when, event name, the dataset's session, payload.object)
_Event = tuple[datetime, str, Any, dict[str, Any]]


@dataclass(order=True)
class _Pending:
    due: float  # monotonic
    seq: int
    delivery: Delivery = field(compare=False)


@dataclass
class Delivery:
    """One event to deliver, with what stays the same across its retries."""

    event: str
    body: bytes
    request_id: str
    session_id: str
    first_attempt: float = 0.0  # monotonic; set at the first attempt
    retry_num: int = 0
    last_headers: dict[str, str] = field(default_factory=dict)


def event_body(event: str, event_time: datetime, obj: dict[str, Any]) -> bytes:
    """A notification's JSON body as Zoom sends it."""
    document = {"event": event, "event_ts": int(event_time.timestamp() * 1000),
                "payload": {"account_id": ACCOUNT_ID, "object": obj}}
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def ended_object(session: Any) -> dict[str, Any]:
    """``payload.object`` of ``session.ended`` (the deprecated ``id`` kept, as Zoom still sends it)."""
    obj = session.obj
    return {"id": session.id, "session_id": session.id, "session_name": obj["session_name"],
            "session_key": obj["session_key"], "start_time": obj["start_time"], "end_time": obj["end_time"]}


def alert_object(session: Any, issues: list[str]) -> dict[str, Any]:
    """``payload.object`` of ``session.alert``: per session, naming no user."""
    obj = session.obj
    return {"id": session.id, "session_id": session.id, "session_name": obj["session_name"],
            "session_key": obj["session_key"], "issues": issues}


class WebhookSender:
    """Watches the dataset's clock and delivers its sessions' events, with Zoom's retries."""

    def __init__(self, dataset: Any, url: str, secret_token: str, *, time_scale: float = 1.0,
                 retry_delays: tuple[float, ...] = ZOOM_RETRY_DELAYS, poll_seconds: float = 0.2,
                 timeout_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not url or not secret_token:
            raise ValueError("webhooks need both webhook_url and webhook_secret_token")
        if not 0 < time_scale < float("inf"):
            raise ValueError("webhook_time_scale must be a finite number > 0")
        self.url = url
        self._token = secret_token
        self._dataset = dataset
        self._delays = tuple(d * time_scale for d in retry_delays)[:WEBHOOK_MAX_RETRY_NUM]
        self._poll = poll_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._seq = itertools.count()
        self._log: list[dict[str, Any]] = []
        self._sent: list[Delivery] = []
        self._in_flight = 0
        self._watched_to = dataset.now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="zoom-sim-webhook")

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="zoom-sim-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            self.tick()

    def tick(self) -> None:
        """Queue the events the clock has passed since the last tick, then send what is due."""
        now = self._dataset.now
        with self._lock:
            since, self._watched_to = self._watched_to, max(self._watched_to, now)
        if now > since:
            for when, event, session, obj in self._events_between(since, now):
                self.enqueue(event, event_body(event, when, obj), session.id)
        due: list[Delivery] = []
        with self._lock:
            while self._queue and self._queue[0].due <= self._clock():
                due.append(heapq.heappop(self._queue).delivery)
            self._in_flight += len(due)
        for delivery in due:
            self._pool.submit(self._attempt, delivery)

    def _events_between(self, since: datetime, until: datetime) -> list[_Event]:
        events: list[_Event] = []
        for session in self._dataset.ended_between(since, until):
            events.append((session.end, "session.ended", session, ended_object(session)))
        for when, session, issues in self._dataset.alerts_between(since - _ALERT_DELAY, until - _ALERT_DELAY):
            events.append((when + _ALERT_DELAY, "session.alert", session, alert_object(session, issues)))
        return sorted(events, key=lambda e: e[0])

    def enqueue(self, event: str, body: bytes, session_id: str, *, request_id: str | None = None) -> Delivery:
        """Deliver ``body`` as soon as the sender's thread runs (and retry as Zoom does)."""
        delivery = Delivery(event, body, request_id or _request_id(), session_id)
        self._schedule(delivery, self._clock())
        return delivery

    def _schedule(self, delivery: Delivery, due: float) -> None:
        with self._lock:
            heapq.heappush(self._queue, _Pending(due, next(self._seq), delivery))

    # ------------------------------------------------------------------ delivery
    def _attempt(self, delivery: Delivery) -> None:
        try:
            if delivery.retry_num == 0:
                delivery.first_attempt = self._clock()
            headers = self.signed_headers(delivery.body, delivery.request_id)
            delivery.last_headers = headers
            status, reason, answer = self.post(delivery.body, headers)
            self._record(delivery, status, reason, answer)
            retry = (status == -1 or status >= 500) and delivery.retry_num < len(self._delays)
            if retry:
                due = delivery.first_attempt + self._delays[delivery.retry_num]
                delivery.retry_num += 1
                self._schedule(delivery, due)
            else:
                with self._lock:
                    self._sent.append(delivery)
        finally:
            with self._lock:
                self._in_flight -= 1

    def signed_headers(self, body: bytes, request_id: str, *, token: str | None = None,
                       timestamp: int | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        return {"content-type": "application/json", "user-agent": "Zoom Marketplace/1.0a",
                "x-zm-request-timestamp": stamp, "x-zm-request-id": request_id,
                "x-zm-signature": sign(token or self._token, stamp, body)}

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, int | None, str]:
        """POST to the endpoint: (HTTP status or -1, failed_reason_type, the answer's body)."""
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:
                return int(answer.status), None, answer.read(2048).decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return int(error.code), REMOTE_ERROR, error.read(2048).decode("utf-8", "replace")
        except TimeoutError:
            return -1, READ_TIMEOUT, ""
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            if isinstance(reason, TimeoutError):
                return -1, READ_TIMEOUT, ""
            return -1, CONNECTION_REFUSED, ""

    def _record(self, delivery: Delivery, status: int, reason: int | None, answer: str) -> None:
        entry: dict[str, Any] = {
            "event": delivery.event, "status": status, "endpoint": self.url,
            "subscription_id": SUBSCRIPTION_ID, "request_headers": "N/A",
            "request_body": delivery.body.decode("utf-8"), "response_headers": "N/A",
            "response_body": answer or "N/A",
            "date_time": self._dataset.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "trace_id": f"WEB_{delivery.request_id.replace('-', '')}", "request_id": delivery.request_id,
            "retry_num": delivery.retry_num, "session_id": delivery.session_id,
        }
        if reason is not None and status not in (200, 204):
            entry["failed_reason_type"] = reason
        with self._lock:
            self._log.append(entry)

    # --------------------------------------------------------------------- views
    def log(self) -> list[dict[str, Any]]:
        """Every attempt so far, oldest first (``session_id`` is ours, not in Zoom's log)."""
        with self._lock:
            return [dict(e) for e in self._log]

    def pending(self) -> int:
        """Deliveries queued (retries included) or being sent."""
        with self._lock:
            return len(self._queue) + self._in_flight

    def state(self) -> dict[str, Any]:
        """``GET /_sim/webhooks``: where deliveries go and how they fared."""
        log = self.log()
        return {"url": self.url, "pending": self.pending(), "attempts": len(log),
                "succeeded": sum(e["status"] in (200, 204) for e in log),
                "failed": sum(e["status"] not in (200, 204) for e in log),
                "retry_delays_seconds": list(self._delays), "log": log}

    # -------------------------------------------------------------------- faults
    def send_fault(self, kind: str, session: Any) -> dict[str, Any]:
        """One faulty delivery about ``session``, sent now; returns the status the endpoint gave.

        Faulty deliveries are not retried nor logged: they are not Zoom's.
        """
        body = event_body("session.ended", session.end, ended_object(session))
        request_id = _request_id()
        headers = self.signed_headers(body, request_id)
        if kind == "forged":
            headers = self.signed_headers(body, request_id, token="not-" + secrets.token_hex(12))
        elif kind == "stale":
            headers = self.signed_headers(body, request_id, timestamp=int(time.time()) - 600)
        elif kind == "unsigned":
            headers = {k: v for k, v in headers.items() if not k.startswith("x-zm-")}
        elif kind == "oversized":
            padded = json.loads(body)
            padded["payload"]["object"]["padding"] = "x" * MAX_BODY_BYTES
            body = json.dumps(padded).encode("utf-8")
            headers = self.signed_headers(body, request_id)
        elif kind == "replay":  # the first delivery made, byte for byte (a capture sent again later)
            with self._lock:
                earlier = next((d for d in self._sent if d.last_headers), None)
            if earlier is None:
                raise ValueError("nothing delivered yet to replay")
            body, headers = earlier.body, dict(earlier.last_headers)
        elif kind != "duplicate":
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        status, _, answer = self.post(body, headers)
        return {"kind": kind, "status": status, "answer": answer[:200], "session_id": session.id}


def _request_id() -> str:
    raw = secrets.token_hex(16)
    return f"{raw[:8]}_{raw[8:12]}_{raw[12:16]}_{raw[16:20]}_{raw[20:]}"
