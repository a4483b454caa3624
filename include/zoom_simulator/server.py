"""HTTP front of the simulator: Zoom's Video SDK endpoints plus /_sim control routes.

Built on the stdlib ThreadingHTTPServer so the pipeline's tests need no extra packages.
The handler reads the *raw* request path because Zoom's session-id encoding rules (single
vs double percent-encoding) can only be reproduced before anything decodes the path.
Parameter limits, defaults and error codes come from ``zoom_qos.zoom.published`` (Zoom's published
definition, encoded once), so the simulator refuses exactly what that definition refuses.
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import re
import secrets
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

import jwt
from jwt.algorithms import HMACAlgorithm
from jwt.utils import base64url_decode

from zoom_qos.zoom import published
from zoom_qos.zoom.published import Endpoint, ErrorCode

from .config import (
    ENDPOINT_DAILY,
    ENDPOINT_LIST,
    ENDPOINT_NAMES,
    ENDPOINT_QOS,
    ENDPOINT_USERS,
    ENDPOINT_WEBHOOK_LOGS,
    Faults,
    SimulatorConfig,
    parse_utc,
)
from .dataset import Dataset
from .ratelimit import HEAVY, Decision, RateLimiter, next_utc_midnight
from .tls import server_context
from .webhooks import FAULT_KINDS, WebhookSender

QPS_MESSAGE = "You have reached the maximum per-second rate limit for this API. Try again later."
DAILY_MESSAGE = ("You have reached the maximum daily rate limit for this API. "
                 "Refer to the response header for details on when you can make another request.")
TOKEN_MESSAGE = "The next page token is invalid or expired."
# Texts of Zoom's published definition (its HTML "<br>" between sentences rendered as a space).
QOS_NOT_AVAILABLE = ("This session's detail info is not available. "
                     "The Session ID is not valid or the session has not ended yet.")
USERS_NOT_AVAILABLE = "Session ID is invalid or has not ended."
INVALID_SESSION = "Invalid session ID."
TOO_OLD_MESSAGE = "Can not access a session a year ago."
NOT_VIDEO_SDK_MESSAGE = "This API is only available for Video SDK accounts."
DAILY_RANGE_MESSAGE = "Daily report can only be provided within 6 months prior to the current date."
NOT_RECOGNIZED_MESSAGE = "This API endpoint is not recognized."
# The definition documents 403 without a code: 4711 is our choice (Zoom's code for a token that
# lacks a scope), the message names the endpoint so a test can tell which call was refused.
FORBIDDEN_CODE = 4711
FORBIDDEN_MESSAGE = "This app does not have the scope or plan that {name} requires."

# The non-id parts of each path are literal: a percent-encoded separator or name (Zoom's JS SDK
# double-encodes whole paths) matches nothing and answers 404/2300, as Zoom does.
_ROUTES: tuple[tuple[str, re.Pattern[str], Endpoint], ...] = (
    (ENDPOINT_LIST, re.compile(r"^/v2/videosdk/sessions/?$"), published.SESSIONS),
    (ENDPOINT_QOS, re.compile(r"^/v2/videosdk/sessions/(.+)/users/qos/?$"), published.SESSION_QOS),
    (ENDPOINT_USERS, re.compile(r"^/v2/videosdk/sessions/(.+)/users/?$"), published.SESSION_USERS),
    (ENDPOINT_DAILY, re.compile(r"^/v2/videosdk/report/daily/?$"), published.DAILY_USAGE),
    (ENDPOINT_WEBHOOK_LOGS, re.compile(r"^/v2/videosdk/report/webhook_logs/?$"), published.WEBHOOK_LOGS),
)
ENDPOINTS: dict[str, Endpoint] = {name: endpoint for name, _, endpoint in _ROUTES}
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")

_HS256 = HMACAlgorithm(HMACAlgorithm.SHA256)


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json;charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


class _ApiError(Exception):
    """Raised inside handlers to answer with Zoom's error shape."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> _Response:
    return _Response(status, json.dumps(body, ensure_ascii=False).encode("utf-8"), headers=headers or {})


def _jsonable(value: Any) -> Any:
    """``value`` with every datetime as ISO-8601 text (lists, tuples and dicts walked)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> _Response:
    return _json(status, {"code": code, "message": message}, headers)


def decode_session_segment(segment: str) -> str | None:
    """Apply Zoom's published encoding rule to the raw id part of a path; None means Zoom finds
    no session (404/3001).

    Decode once; if an escape remains the client double-encoded, so decode again. The rule
    (``published.needs_double_encoding``) is strict both ways: an id that needs double encoding
    but arrived single-encoded is mangled by Zoom's own decoding, and a plain id that arrived
    double-encoded is still escaped after Zoom's one decode, so neither is found.
    """
    once = unquote(segment)
    if _ESCAPE.search(once):
        twice = unquote(once)
        return twice if published.needs_double_encoding(twice) else None
    return None if published.needs_double_encoding(once) else once


#: How long a client may take over its TLS handshake before the connection is dropped.
HANDSHAKE_TIMEOUT_SECONDS = 10.0


class _Server(ThreadingHTTPServer):
    """The listener: counts every accepted connection and, with TLS, does the handshake.

    The handshake runs in the connection's own thread (``finish_request``), not in ``accept()``
    (which ``SSLContext.wrap_socket`` on the listening socket would do): a slow or hostile client
    must not stall the accept loop, and a failed handshake (a plain-HTTP client, one that does not
    trust the certificate) only ends that connection, counted in ``tls_handshake_failures``.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], sim: Simulator, context: ssl.SSLContext | None) -> None:
        self.sim = sim
        self.ssl_context = context
        super().__init__(addr, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        self.sim._count("connections")
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:  # the client's problem: never the server's
            self.sim._count("tls_handshake_failures")
            if self.sim.verbose:
                sys.stderr.write(f"{client_address[0]} - TLS handshake failed: {exc}\n")
            return  # process_request_thread closes the raw socket
        try:
            super().finish_request(tls, client_address)
        finally:
            # wrap_socket detached the raw socket, so closing it (as the caller will) does not
            # close this one.
            self.shutdown_request(tls)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ZoomSimulator/1.0"
    timeout = 60  # idle keep-alive connections are dropped after this
    server: _Server
    # The stats generation in which this connection was last counted in "api_connections";
    # the class default is per instance once assigned (one handler instance per connection).
    _counted_in: int = -1

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.sim.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self, method: str) -> None:
        sim = self.server.sim
        try:
            body = self._read_body()
            raw_path, _, query = self.path.partition("?")
            if raw_path == "/_sim" or raw_path.startswith("/_sim/"):
                self._send(sim._control(method, raw_path, body))
                return
            self._counted_in = sim._count_api_connection(self._counted_in)
            response = sim._api(method, raw_path, query, self.headers.get("Authorization"))
            if response is None:
                self._reset_connection()
                return
            self._send(response)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # never let a bad request kill the server
            traceback.print_exc(file=sys.stderr)
            try:
                self._send(_error(500, 500, "Internal simulator error."))
            except OSError:
                self.close_connection = True

    def _send(self, response: _Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)
        self.wfile.flush()

    def _reset_connection(self) -> None:
        """Drop the socket without a response (SO_LINGER 0 turns the close into a RST)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass


@dataclass
class _TokenEntry:
    key: tuple[Any, ...]
    offset: int
    issued: float


class Simulator:
    """A local stand-in for Zoom's Video SDK REST API, served from a background thread."""

    def __init__(self, config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0,
                 verbose: bool = False) -> None:
        self.config = config or SimulatorConfig()
        if (self.config.tls_cert is None) != (self.config.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        # Built now, so a wrong path or a key that does not match fails here, not at a handshake.
        self._ssl_context = (server_context(self.config.tls_cert, self.config.tls_key)
                             if self.config.tls_cert is not None and self.config.tls_key is not None
                             else None)
        start = self.config.resolved_now()
        self.dataset = Dataset(self.config.seed, start, self.config.sessions_per_day,
                               history_days=self.config.history_days, clock_speed=self.config.clock_speed,
                               anchor=self.config.resolved_anchor(start),
                               live_scenarios=self.config.live_scenarios,
                               quality_scenarios=self.config.quality_scenarios,
                               unit_faults=self.config.unit_faults,
                               duration_faults=self.config.duration_faults,
                               ending_every_seconds=self.config.ending_every_seconds)
        self.webhooks: WebhookSender | None = None
        if self.config.webhook_url and self.config.webhook_secret_token:
            self.webhooks = WebhookSender(self.dataset, self.config.webhook_url,
                                          self.config.webhook_secret_token,
                                          time_scale=self.config.webhook_time_scale)
        self.verbose = verbose
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._faults = Faults()
        self._fault_n = 0
        self._ok_n = 0
        self._expire_next_left = 0
        self._daily_started: float | None = None
        self._chaos = random.Random(0)
        self._not_ready_seen: dict[str, int] = {}  # session id -> 3001s answered (not_ready_sessions)
        self._tokens: dict[str, _TokenEntry] = {}
        self._limiter = RateLimiter(self.config.heavy_rate_per_second,
                                    self.config.resource_intensive_per_minute, self.config.daily_limit)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stats_generation = 0
        self.reset_stats()

    # ----------------------------------------------------------- lifecycle
    def start(self) -> Simulator:
        """Bind and serve in a daemon thread; returns self so `Simulator(...).start()` chains."""
        if self._server is not None:
            return self
        self._server = _Server((self._host, self._port), self, self._ssl_context)
        self._thread = threading.Thread(target=self._server.serve_forever, name="zoom-simulator", daemon=True)
        self._thread.start()
        if self.webhooks is not None:
            self.webhooks.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        if self.webhooks is not None:
            self.webhooks.stop()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (useful after asking for port 0)."""
        if self._server is None:
            raise RuntimeError("simulator not started")
        return int(self._server.server_address[1])

    @property
    def tls(self) -> bool:
        """Whether the simulator serves HTTPS (``SimulatorConfig.tls_cert``/``tls_key`` given)."""
        return self._ssl_context is not None

    @property
    def base_url(self) -> str:
        """API root the pipeline should use, e.g. http://127.0.0.1:PORT/v2 (https:// with TLS)."""
        return f"{'https' if self.tls else 'http'}://{self._host}:{self.port}/v2"

    # ---------------------------------------------------------------- clock
    @property
    def now(self) -> datetime:
        """The simulated current time every endpoint answers against (``Dataset.now``)."""
        return self.dataset.now

    def advance(self, seconds: float) -> datetime:
        """Move the simulated clock forward by ``seconds``; returns the new ``now``."""
        return self.dataset.advance(seconds)

    def set_now(self, when: datetime) -> datetime:
        """Set the simulated clock (it keeps running at ``clock_speed`` from there)."""
        return self.dataset.set_now(when)

    def clock(self) -> dict[str, Any]:
        """The clock as ``GET /_sim/clock`` shows it."""
        return {"now": self.dataset.now.isoformat(), "clock_speed": self.dataset.clock_speed,
                "anchor": self.dataset.anchor.isoformat()}

    def quality_scenarios(self) -> dict[str, Any]:
        """``GET /_sim/quality_scenarios``: ``Dataset.quality_scenarios`` as JSON (times ISO-8601)."""
        return {"quality_scenarios": _jsonable(self.dataset.quality_scenarios())}

    # ------------------------------------------------------- faults & stats
    @property
    def faults(self) -> Faults:
        """A copy of the active fault switches."""
        with self._lock:
            return self._faults.copy()

    def set_faults(self, faults: Faults | None) -> None:
        """Replace all fault switches and restart the "every N" counters."""
        new = (faults or Faults()).copy()
        with self._lock:
            self._faults = new
            self._fault_n = 0
            self._ok_n = 0
            self._expire_next_left = new.expire_next_tokens
            self._daily_started = None
            self._chaos = random.Random(new.chaos_seed)
            self._not_ready_seen = {}

    def stats(self) -> dict[str, Any]:
        """Counters since the last reset, as plain JSON-able data."""
        with self._lock:
            return json.loads(json.dumps(self._stats))

    def reset_stats(self) -> None:
        """Zero the request counters (faults and rate-limit state are left alone).

        Connection counters restart too. A connection already open keeps serving; it counts once
        more in ``api_connections`` when it next carries an API request (a new stats generation),
        so "API requests per connection" stays a figure of this measurement only.
        """
        with self._lock:
            self._stats_generation += 1
            self._stats: dict[str, Any] = {
                "requests": 0,
                "connections": 0,
                "api_connections": 0,
                "tls_handshake_failures": 0,
                "by_endpoint": dict.fromkeys(ENDPOINT_NAMES, 0),
                "status_counts": {},
                "invalid_token_errors": 0,
                "connection_resets": 0,
                "chaos": {},
            }

    def _count(self, name: str) -> None:
        """Add one to a top-level counter (connections accepted, failed handshakes)."""
        with self._lock:
            self._stats[name] += 1

    def _count_api_connection(self, counted_in: int) -> int:
        """Count the calling connection in ``api_connections`` unless it is already counted in
        this stats generation; returns the generation for the connection to remember.

        ``connections`` counts every accepted connection (control calls and failed handshakes
        too); this counts only those that carried API requests, so that
        1 - api_connections / requests is the share of API requests sent on a kept-alive
        connection, whatever a harness does on the control routes meanwhile.
        """
        with self._lock:
            if counted_in != self._stats_generation:
                self._stats["api_connections"] += 1
            return self._stats_generation

    def reset(self) -> None:
        """Back to a fresh state: stats, faults, rate-limit buckets and page tokens."""
        self.reset_stats()
        self.set_faults(Faults())
        self._limiter.reset()
        with self._lock:
            self._tokens.clear()

    # --------------------------------------------------------------- control
    def _control(self, method: str, raw_path: str, body: bytes) -> _Response:
        path = raw_path.rstrip("/")
        if path == "/_sim/health" and method == "GET":
            return _json(200, {"status": "ok", "base_url": self.base_url, "now": self.now.isoformat()})
        if path == "/_sim/clock" and method == "GET":
            return _json(200, self.clock())
        if path == "/_sim/clock" and method == "POST":
            return self._set_clock(body)
        if path == "/_sim/stats" and method == "GET":
            return _json(200, self.stats())
        if path == "/_sim/faults" and method == "GET":
            return _json(200, self.faults.to_dict())
        if path == "/_sim/faults" and method == "POST":
            try:
                data = json.loads(body.decode("utf-8") or "{}")
                faults = Faults.from_dict(data)
            except (ValueError, TypeError) as exc:
                return _error(400, 400, f"Invalid faults: {exc}")
            self.set_faults(faults)
            return _json(200, faults.to_dict())
        if path == "/_sim/quality_scenarios" and method == "GET":
            return _json(200, self.quality_scenarios())
        if path == "/_sim/webhooks" and method == "GET":
            if self.webhooks is None:
                return _error(404, 404, "Webhooks are off: start with a webhook URL and secret token.")
            return _json(200, self.webhooks.state())
        if path == "/_sim/webhooks/send" and method == "POST":
            return self._send_webhook_fault(body)
        if path == "/_sim/reset" and method == "POST":
            self.reset()
            return _json(200, {"status": "reset"})
        return _error(404, 404, f"Unknown control endpoint: {method} {raw_path}")

    def _set_clock(self, body: bytes) -> _Response:
        """``{"advance_seconds": n}`` or ``{"now": ISO time}`` (one of them) moves the clock."""
        try:
            data = json.loads(body.decode("utf-8") or "{}")
            if not isinstance(data, dict) or len(data) != 1 or not {"advance_seconds", "now"} >= set(data):
                raise ValueError('give exactly one of "advance_seconds" and "now"')
            if "now" in data:
                self.set_now(parse_utc(str(data["now"])))
            else:
                value = data["advance_seconds"]
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError("advance_seconds must be a number")
                self.advance(float(value))
        except (ValueError, TypeError, UnicodeError) as exc:
            return _error(400, 400, f"Invalid clock: {exc}")
        return _json(200, self.clock())

    def _send_webhook_fault(self, body: bytes) -> _Response:
        """``{"kind": one of FAULT_KINDS, "session_id": optional}``: one faulty delivery, sent now
        (about the given session, else the last one that ended); answers the endpoint's status."""
        if self.webhooks is None:
            return _error(404, 404, "Webhooks are off: start with a webhook URL and secret token.")
        try:
            data = json.loads(body.decode("utf-8") or "{}")
            kind = data.get("kind") if isinstance(data, dict) else None
            if kind not in FAULT_KINDS:
                raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
            at = self.now
            wanted = data.get("session_id")
            session = (self.dataset.find_session(str(wanted), at) if wanted else
                       next(iter(reversed(self.dataset.ended_between(at - timedelta(days=1), at))), None))
            if session is None or session.end > at:
                raise ValueError("no such ended session")
            return _json(200, self.webhooks.send_fault(kind, session))
        except (ValueError, TypeError, UnicodeError) as exc:
            return _error(400, 400, f"Invalid webhook fault: {exc}")

    # ------------------------------------------------------------------- API
    @staticmethod
    def _route(raw_path: str) -> tuple[str, re.Match[str] | None]:
        """The endpoint a raw path names ("other" if none) and its match (for the session id)."""
        for name, pattern, _ in _ROUTES:
            match = pattern.match(raw_path)
            if match:
                return name, match
        return "other", None

    def _api(self, method: str, raw_path: str, query: str, auth: str | None) -> _Response | None:
        """Answer one API request; None means "drop the connection without answering"."""
        endpoint, match = self._route(raw_path)
        with self._lock:
            self._fault_n += 1
            n = self._fault_n
            faults = self._faults
            self._stats["requests"] += 1
            by = self._stats["by_endpoint"]
            by[endpoint] = by.get(endpoint, 0) + 1
        chaos = self._chaos_pick(faults, query)
        if chaos:
            with self._lock:
                self._stats["chaos"][chaos] = self._stats["chaos"].get(chaos, 0) + 1
        if chaos == "reset" or (faults.reset_connection_every and n % faults.reset_connection_every == 0):
            with self._lock:
                self._stats["connection_resets"] += 1
            return None
        if chaos == "slow":
            time.sleep(0.2)
        if faults.latency_ms > 0:
            time.sleep(faults.latency_ms / 1000.0)
        try:
            response = self._chaos_response(chaos, endpoint) or self._api_response(
                method, endpoint, match, raw_path, query, auth, n, faults)
        except _ApiError as exc:
            response = _error(exc.status, exc.code, exc.message)
        if response.status == 200 and chaos == "truncated":
            response.body = response.body[: len(response.body) // 2]
        elif response.status == 200 and faults.truncated_body_every:
            with self._lock:
                self._ok_n += 1
                cut = self._ok_n % faults.truncated_body_every == 0
            if cut:
                response.body = response.body[: len(response.body) // 2]
        with self._lock:
            counts = self._stats["status_counts"]
            counts[str(response.status)] = counts.get(str(response.status), 0) + 1
        return response

    def _api_response(self, method: str, endpoint: str, match: re.Match[str] | None, raw_path: str,
                      query: str, auth: str | None, n: int, faults: Faults) -> _Response:
        if endpoint == "other":
            return _error(404, ErrorCode.ENDPOINT_NOT_RECOGNIZED, NOT_RECOGNIZED_MESSAGE)
        if method != "GET":
            return _error(405, 405, f"Method {method} not allowed.")
        if not self._valid_jwt(auth) or (faults.expired_jwt_every and n % faults.expired_jwt_every == 0):
            return _error(401, ErrorCode.INVALID_ACCESS_TOKEN, "Invalid access token.")
        category = self._category(endpoint)
        if faults.daily_limit_exhausted:
            return self._daily_429(category)
        if faults.daily_limit_after and n > faults.daily_limit_after:
            with self._lock:
                if self._daily_started is None:
                    self._daily_started = time.time()
                reset_at = self._daily_started + faults.daily_reset_seconds
            if time.time() < reset_at:
                return self._daily_429(category, reset_at)
        if faults.qps_429_every and n % faults.qps_429_every == 0:
            return self._qps_429(Decision(False, category, "QPS", self._limit_for(category), 0, 1), faults)
        if faults.bare_429_every and n % faults.bare_429_every == 0:
            return _error(429, 429, QPS_MESSAGE)
        if faults.server_error_every and n % faults.server_error_every == 0:
            return self._server_error(n // faults.server_error_every)
        if self.config.enforce_rate_limits:
            decision = self._limiter.check(category)
            if not decision.allowed:
                if decision.limit_type == "Daily-limit":
                    return self._daily_429(category)
                return self._qps_429(decision, faults)
        # Account and app checks come after the gateway's rate limiting: a refused call still counts.
        if faults.not_videosdk_account:
            return _error(400, ErrorCode.NOT_VIDEO_SDK_ACCOUNT, NOT_VIDEO_SDK_MESSAGE)
        if endpoint in faults.forbidden_endpoints:
            path = f"GET /{ENDPOINTS[endpoint].path}"
            return _error(403, FORBIDDEN_CODE, FORBIDDEN_MESSAGE.format(name=path))
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        at = self.dataset.now  # one instant per request, however long it takes
        if endpoint == ENDPOINT_LIST:
            return self._list_sessions(params, faults, at)
        if endpoint == ENDPOINT_DAILY:
            return self._daily_report(params, faults, at)
        if endpoint == ENDPOINT_WEBHOOK_LOGS:
            return self._webhook_logs(params, faults, at)
        assert match is not None  # session routes always capture the id
        if endpoint == ENDPOINT_QOS:
            return self._user_qos(match.group(1), params, faults, at)
        return self._session_users(match.group(1), params, faults, at)

    @staticmethod
    def _category(endpoint: str) -> str:
        """The published rate-limit category of a simulator endpoint name."""
        return ENDPOINTS[endpoint].category if endpoint in ENDPOINTS else HEAVY

    def _limit_for(self, category: str) -> int:
        if category == HEAVY:
            return int(self.config.heavy_rate_per_second)
        if category == published.MEDIUM:
            return int(published.MEDIUM_PER_SECOND)
        return int(self.config.resource_intensive_per_minute)

    def _qps_429(self, d: Decision, faults: Faults) -> _Response:
        if faults.retry_after_http_date:
            retry = email.utils.formatdate(time.time() + d.retry_after_seconds, usegmt=True)
        else:
            retry = str(d.retry_after_seconds)
        return _error(429, 429, QPS_MESSAGE, {
            "X-RateLimit-Category": d.category, "X-RateLimit-Type": "QPS",
            "X-RateLimit-Limit": str(d.limit), "X-RateLimit-Remaining": "0", "Retry-After": retry,
        })

    def _daily_429(self, category: str, reset_at: float | None = None) -> _Response:
        retry_after = next_utc_midnight() if reset_at is None else datetime.fromtimestamp(
            math.ceil(reset_at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return _error(429, 429, DAILY_MESSAGE, {
            "X-RateLimit-Category": category, "X-RateLimit-Type": "Daily-limit",
            "X-RateLimit-Limit": str(self.config.daily_limit), "X-RateLimit-Remaining": "0",
            "Retry-After": retry_after,
        })

    _CHAOS_KINDS = ("qps429", "bare429", "5xx", "truncated", "reset", "jwt401", "token", "slow")

    def _chaos_pick(self, faults: Faults, query: str) -> str | None:
        """Draw this request's misbehaviour (or None) from the seeded chaos RNG."""
        if faults.chaos_rate <= 0:
            return None
        with self._lock:
            if self._chaos.random() >= faults.chaos_rate:
                return None
            kind = self._chaos.choice(self._CHAOS_KINDS)
        if kind == "token" and "next_page_token=" not in query:
            return "5xx"
        return kind

    def _chaos_response(self, chaos: str | None, endpoint: str) -> _Response | None:
        category = self._category(endpoint)
        if chaos == "qps429":
            return self._qps_429(Decision(False, category, "QPS", self._limit_for(category), 0, 1),
                                 self.faults)
        if chaos == "bare429":
            return _error(429, 429, QPS_MESSAGE)
        if chaos == "5xx":
            return self._server_error(int(time.monotonic() * 1000))
        if chaos == "jwt401":
            return _error(401, 124, "Invalid access token.")
        if chaos == "token":
            with self._lock:
                self._stats["invalid_token_errors"] += 1
            return _error(400, 300, TOKEN_MESSAGE)
        return None

    @staticmethod
    def _server_error(k: int) -> _Response:
        """Rotate through the 5xx shapes seen in front of real APIs: JSON, then HTML pages."""
        which = k % 3
        if which == 1:
            return _error(500, 500, "Internal Server Error")
        if which == 2:
            html = b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
            return _Response(502, html, "text/html")
        html = b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
        return _Response(503, html, "text/html")

    def _valid_jwt(self, auth: str | None) -> bool:
        """Zoom's rule: HS256 with the API secret, iss == API key, iat present, exp in the future.

        The signature is checked with PyJWT's HMAC primitive directly: jwt.decode() warns
        about short (local, made-up) secrets on every call, and silencing that warning
        globally would hide it from the pipeline's own code too.
        """
        if not auth:
            return False
        scheme, _, token = auth.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or token.count(".") != 2:
            return False
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "HS256":
                return False
            signing_input, _, signature = token.rpartition(".")
            key = _HS256.prepare_key(self.config.api_secret)
            if not _HS256.verify(signing_input.encode("ascii"), key, base64url_decode(signature)):
                return False
            claims = json.loads(base64url_decode(token.split(".")[1]))
        except (jwt.PyJWTError, ValueError, TypeError, UnicodeError):
            return False
        if not isinstance(claims, dict) or claims.get("iss") != self.config.api_key:
            return False
        exp, iat = claims.get("exp"), claims.get("iat")
        numbers = (int, float)
        if not isinstance(exp, numbers) or isinstance(exp, bool) or not isinstance(iat, numbers):
            return False
        return float(exp) > time.time()

    # ------------------------------------------------------------ pagination
    @staticmethod
    def _checked_params(endpoint: Endpoint, params: dict[str, str]) -> None:
        """Refuse, as Zoom does (400/300), what the published definition does not allow in the
        documented parameters; undocumented ones are ignored, as Zoom ignores them."""
        documented = {k: v for k, v in params.items() if k in endpoint.query}
        problems = published.request_problems(endpoint, documented)
        if problems:
            raise _ApiError(400, ErrorCode.INVALID_FIELD, f"Invalid field: {problems[0]}.")

    @staticmethod
    def _page_size(endpoint: Endpoint, params: dict[str, str]) -> int:
        """The page size a (checked) request gets: its own, or the published default."""
        spec = endpoint.page_size
        assert spec is not None  # only paged endpoints ask
        raw = params.get("page_size")
        return spec.default if raw in (None, "") else int(raw)

    def _issue_token(self, key: tuple[Any, ...], offset: int) -> str:
        token = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            if len(self._tokens) > 20000:  # keep memory bounded during long soak runs
                horizon = max(self.config.page_token_ttl_seconds, 900.0) * 2
                self._tokens = {t: e for t, e in self._tokens.items() if now - e.issued < horizon}
            self._tokens[token] = _TokenEntry(key, offset, now)
        return token

    def _redeem_token(self, token: str, key: tuple[Any, ...], faults: Faults) -> int:
        with self._lock:
            entry = self._tokens.get(token)
            ttl = faults.token_ttl_seconds if faults.token_ttl_seconds is not None \
                else self.config.page_token_ttl_seconds
            valid = entry is not None and entry.key == key and time.monotonic() - entry.issued <= ttl
            if faults.expire_page_tokens:
                valid = False
            elif self._expire_next_left > 0:
                self._expire_next_left -= 1
                valid = False
            if not valid or entry is None:
                self._stats["invalid_token_errors"] += 1
                raise _ApiError(400, ErrorCode.INVALID_FIELD, TOKEN_MESSAGE)
            return entry.offset

    def _page(self, items: list[Any], params: dict[str, str], key: tuple[Any, ...], size: int,
              faults: Faults) -> tuple[list[Any], str]:
        token = params.get("next_page_token", "")
        offset = self._redeem_token(token, key, faults) if token else 0
        page = items[offset: offset + size]
        nxt = offset + size
        return page, (self._issue_token(key, nxt) if nxt < len(items) else "")

    # ------------------------------------------------------------- endpoints
    @staticmethod
    def _parse_day(params: dict[str, str], name: str) -> date:
        raw = params[name]  # present and yyyy-mm-dd shaped: checked against the definition
        try:
            return date.fromisoformat(raw)
        except ValueError:
            message = f"Invalid field: {name}: {raw!r} is not a date (yyyy-mm-dd)."
            raise _ApiError(400, ErrorCode.INVALID_FIELD, message) from None

    @staticmethod
    def _type(params: dict[str, str]) -> str:
        return params.get("type") or "live"  # the published default; the value is checked already

    def _list_sessions(self, params: dict[str, str], faults: Faults, at: datetime) -> _Response:
        endpoint = published.SESSIONS
        self._checked_params(endpoint, params)
        kind = self._type(params)
        day_from = self._parse_day(params, "from")
        day_to = self._parse_day(params, "to")
        if day_from > day_to:
            raise _ApiError(400, 300, "Invalid date range: 'from' must not be later than 'to'.")
        if (day_to - day_from).days > self.config.max_range_days:
            raise _ApiError(400, 300, f"Invalid date range: the range between 'from' and 'to' must not "
                                      f"exceed one month ({self.config.max_range_days} days).")
        oldest = at.date() - timedelta(days=self.config.history_days)
        if day_from < oldest:
            raise _ApiError(400, 300, f"Invalid date range: 'from' must be within the last six months "
                                      f"(on or after {oldest.isoformat()}).")
        size = self._page_size(endpoint, params)
        if kind == "past":
            found = self.dataset.past_sessions(day_from, day_to, at)
        else:  # our reading: the sessions in progress that started in [from, to]
            found = self.dataset.live_sessions(day_from, day_to, at)
        key_filter = params.get("session_key")
        name_filter = (params.get("session_name") or "").lower()
        items = [self.dataset.session_object(s, at) for s in found
                 if (not key_filter or s.obj["session_key"] == key_filter)
                 and (not name_filter or name_filter in s.obj["session_name"].lower())]
        key = ("list", kind, day_from, day_to, key_filter or "", name_filter)
        page, nxt = self._page(items, params, key, size, faults)
        return _json(200, {"from": day_from.isoformat(), "to": day_to.isoformat(), "page_size": size,
                           "next_page_token": nxt, "sessions": page})

    def _not_ready(self, session_id: str, faults: Faults) -> bool:
        """Whether Zoom is still "processing" this session (the not_ready_* faults); counts the call."""
        with self._lock:
            limit = faults.not_ready_sessions.get(session_id)
            if limit is not None:
                seen = self._not_ready_seen.get(session_id, 0)
                if seen < limit:
                    self._not_ready_seen[session_id] = seen + 1
                    return True
        until = faults.not_ready_until.get(session_id)
        return until is not None and datetime.now(UTC) < parse_utc(until)

    def _session_for(self, segment: str, params: dict[str, str], faults: Faults, not_found: str,
                     at: datetime) -> str:
        """The session id a session-scoped request names, after every check Zoom makes on it."""
        session_id = decode_session_segment(segment)
        if session_id is None:
            raise _ApiError(404, ErrorCode.SESSION_NOT_AVAILABLE, not_found)
        if session_id in faults.invalid_sessions:
            raise _ApiError(400, ErrorCode.INVALID_FIELD, INVALID_SESSION)
        if session_id in faults.too_old_sessions:
            raise _ApiError(400, ErrorCode.SESSION_TOO_OLD, TOO_OLD_MESSAGE)
        if session_id in faults.gone_sessions or self._not_ready(session_id, faults):
            raise _ApiError(404, ErrorCode.SESSION_NOT_AVAILABLE, not_found)
        session = self.dataset.find_session(session_id, at)
        if session is None or (self._type(params) == "live") != self.dataset.is_live(session, at):
            raise _ApiError(404, ErrorCode.SESSION_NOT_AVAILABLE, not_found)
        return session_id

    def _user_qos(self, segment: str, params: dict[str, str], faults: Faults, at: datetime) -> _Response:
        return self._joins(published.SESSION_QOS, QOS_NOT_AVAILABLE, self.dataset.users_for_session,
                           segment, params, faults, at)

    def _session_users(self, segment: str, params: dict[str, str], faults: Faults, at: datetime) -> _Response:
        return self._joins(published.SESSION_USERS, USERS_NOT_AVAILABLE,
                           self.dataset.participants_for_session, segment, params, faults, at)

    def _joins(self, endpoint: Endpoint, not_found: str,
               joins_of: Callable[[str, datetime], list[dict[str, Any]]],
               segment: str, params: dict[str, str], faults: Faults, at: datetime) -> _Response:
        """One page of a session's joins (``/users/qos`` or ``/users``: same rules, other fields)."""
        self._checked_params(endpoint, params)
        session_id = self._session_for(segment, params, faults, not_found, at)
        size = self._page_size(endpoint, params)
        key = (endpoint.name, session_id, self._type(params))
        page, nxt = self._page(joins_of(session_id, at), params, key, size, faults)
        return _json(200, {"page_size": size, "next_page_token": nxt, "users": page})

    def _daily_report(self, params: dict[str, str], faults: Faults, at: datetime) -> _Response:
        """Zoom's daily usage report for one month: every day from the first day of the month (or
        of the six-month history) to its last day (or today), with the dataset's counts."""
        endpoint = published.DAILY_USAGE
        self._checked_params(endpoint, params)
        for name in ("year", "month"):  # documented as optional; we insist (Zoom has no default we know)
            if params.get(name) in (None, ""):
                raise _ApiError(400, ErrorCode.INVALID_FIELD, f"Invalid field: {name}: required.")
        year, month = int(params["year"]), int(params["month"])
        try:
            first = date(year, month, 1)
            last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        except (ValueError, OverflowError):  # a year no calendar has: surely not the last six months
            raise _ApiError(400, ErrorCode.INVALID_FIELD, DAILY_RANGE_MESSAGE) from None
        covered = self.dataset.days(at)
        if last < covered[0] or first > covered[-1]:
            raise _ApiError(400, ErrorCode.INVALID_FIELD, DAILY_RANGE_MESSAGE)
        dates = []
        for day, counts in self.dataset.daily_counts(first, last, at).items():
            sessions = max(0, counts["sessions"] + faults.daily_report_offsets.get(day.isoformat(), 0))
            dates.append({"date": day.isoformat(), **counts, "sessions": sessions})
        return _json(200, {"year": year, "month": month, "dates": dates})

    def _webhook_logs(self, params: dict[str, str], faults: Faults, at: datetime) -> _Response:
        """Zoom's log of webhook deliveries: the last seven days, failed ones by default (``type``
        2), ``from``/``to`` as ``yyyy-MM-ddTHH:mm:ssZ``; no webhooks configured, an empty log."""
        endpoint = published.WEBHOOK_LOGS
        stamps: dict[str, datetime] = {}
        for name in ("from", "to"):
            raw = params.get(name)
            if raw in (None, ""):
                continue
            try:
                if not re.fullmatch(endpoint.query[name].pattern, raw):
                    raise ValueError(raw)
                stamps[name] = parse_utc(raw)
            except ValueError:
                raise _ApiError(400, ErrorCode.WEBHOOK_LOGS_DATE_FORMAT,
                                "The dates must follow the format: yyyy-MM-dd'T'HH:mm:ss'Z'.") from None
        retry = params.get("retry_num")
        if retry not in (None, "") and (not retry.isdigit() or int(retry) > published.WEBHOOK_MAX_RETRY_NUM):
            raise _ApiError(400, ErrorCode.WEBHOOK_LOGS_RETRY_NUM,
                            "The 'retry_num' value must be an integer within the range of 0 to 3.")
        self._checked_params(endpoint, params)
        window = timedelta(days=published.WEBHOOK_LOGS_DAYS)
        start, end = stamps.get("from", at - window), stamps.get("to", at)
        if start >= at:
            raise _ApiError(400, ErrorCode.WEBHOOK_LOGS_FROM_IN_FUTURE,
                            "The 'from' date must be before the current date(UTC).")
        if end < start:
            raise _ApiError(400, ErrorCode.WEBHOOK_LOGS_TO_BEFORE_FROM,
                            "The 'to' date must be after the 'from' date.")
        if start < at - window or end - start > window:
            raise _ApiError(400, ErrorCode.WEBHOOK_LOGS_RANGE,
                            "The date range must be within the last seven days.")
        kind = int(params.get("type") or published.WEBHOOK_LOGS_FAILED)
        wanted_event = params.get("event") or ""
        entries = []
        for entry in self.webhooks.log() if self.webhooks is not None else []:
            entry.pop("session_id", None)
            ok = entry["status"] in (200, 204)
            when = parse_utc(entry["date_time"])
            unwanted = ok if kind == published.WEBHOOK_LOGS_FAILED else (
                not ok if kind == published.WEBHOOK_LOGS_SUCCEEDED else False)
            if (unwanted or not start <= when <= end or (wanted_event and entry["event"] != wanted_event)
                    or (retry not in (None, "") and entry["retry_num"] != int(retry))):
                continue
            entries.append(entry)
        size = self._page_size(endpoint, params)
        key = ("webhook_logs", kind, start, end, wanted_event, retry or "")
        page, nxt = self._page(entries, params, key, size, faults)
        return _json(200, {"next_page_token": nxt, "page_size": size, "webhook_logs": page})
