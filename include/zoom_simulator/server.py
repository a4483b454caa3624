"""HTTP front of the simulator: Zoom's two Video SDK endpoints plus /_sim control routes.

Built on the stdlib ThreadingHTTPServer so the pipeline's tests need no extra packages.
The handler reads the *raw* request path because Zoom's session-id encoding rules (single
vs double percent-encoding) can only be reproduced before anything decodes the path.
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import re
import secrets
import socket
import struct
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

import jwt
from jwt.algorithms import HMACAlgorithm
from jwt.utils import base64url_decode

from .config import Faults, SimulatorConfig
from .dataset import Dataset
from .ratelimit import HEAVY, RESOURCE_INTENSIVE, Decision, RateLimiter, next_utc_midnight

QPS_MESSAGE = "You have reached the maximum per-second rate limit for this API. Try again later."
DAILY_MESSAGE = ("You have reached the maximum daily rate limit for this API. "
                 "Refer to the response header for details on when you can make another request.")
TOKEN_MESSAGE = "The next page token is invalid or expired."

_LIST_PATH = re.compile(r"^/v2/videosdk/sessions/?$")
_QOS_PATH = re.compile(r"^/v2/videosdk/sessions/([^/]+)/users/qos/?$")
_QOS_ANY = re.compile(r"^/v2/videosdk/sessions/.+/users/qos/?$")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_HS256 = HMACAlgorithm(HMACAlgorithm.SHA256)

ENDPOINT_LIST = "list_sessions"
ENDPOINT_QOS = "user_qos"


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


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> _Response:
    return _json(status, {"code": code, "message": message}, headers)


def decode_session_segment(segment: str) -> str | None:
    """Apply Zoom's path rule to one raw path segment; None means "Session does not exist".

    Decode once; if an escape remains the client double-encoded, so decode again. A
    single-encoded id that begins with "/" or contains "//" is what Zoom cannot route.
    """
    once = unquote(segment)
    if _ESCAPE.search(once):
        return unquote(once)
    if once.startswith("/") or "//" in once:
        return None
    return once


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], sim: Simulator) -> None:
        self.sim = sim
        super().__init__(addr, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ZoomSimulator/1.0"
    timeout = 60  # idle keep-alive connections are dropped after this
    server: _Server

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
        self.now = self.config.resolved_now()
        self.dataset = Dataset(self.config.seed, self.now, self.config.sessions_per_day,
                               history_days=self.config.history_days)
        self.verbose = verbose
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._faults = Faults()
        self._fault_n = 0
        self._ok_n = 0
        self._expire_next_left = 0
        self._daily_started: float | None = None
        self._chaos = random.Random(0)
        self._tokens: dict[str, _TokenEntry] = {}
        self._limiter = RateLimiter(self.config.heavy_rate_per_second,
                                    self.config.resource_intensive_per_minute, self.config.daily_limit)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset_stats()

    # ----------------------------------------------------------- lifecycle
    def start(self) -> Simulator:
        """Bind and serve in a daemon thread; returns self so `Simulator(...).start()` chains."""
        if self._server is not None:
            return self
        self._server = _Server((self._host, self._port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="zoom-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
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
    def base_url(self) -> str:
        """API root the pipeline should use, e.g. http://127.0.0.1:PORT/v2."""
        return f"http://{self._host}:{self.port}/v2"

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

    def stats(self) -> dict[str, Any]:
        """Counters since the last reset, as plain JSON-able data."""
        with self._lock:
            return json.loads(json.dumps(self._stats))

    def reset_stats(self) -> None:
        """Zero the request counters (faults and rate-limit state are left alone)."""
        with self._lock:
            self._stats: dict[str, Any] = {
                "requests": 0,
                "by_endpoint": {ENDPOINT_LIST: 0, ENDPOINT_QOS: 0},
                "status_counts": {},
                "invalid_token_errors": 0,
                "connection_resets": 0,
                "chaos": {},
            }

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
        if path == "/_sim/reset" and method == "POST":
            self.reset()
            return _json(200, {"status": "reset"})
        return _error(404, 404, f"Unknown control endpoint: {method} {raw_path}")

    # ------------------------------------------------------------------- API
    def _api(self, method: str, raw_path: str, query: str, auth: str | None) -> _Response | None:
        """Answer one API request; None means "drop the connection without answering"."""
        if _LIST_PATH.match(raw_path):
            endpoint = ENDPOINT_LIST
        elif _QOS_ANY.match(raw_path):
            endpoint = ENDPOINT_QOS
        else:
            endpoint = "other"
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
                method, endpoint, raw_path, query, auth, n, faults)
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

    def _api_response(self, method: str, endpoint: str, raw_path: str, query: str, auth: str | None,
                      n: int, faults: Faults) -> _Response:
        if endpoint == "other":
            return _error(404, 404, f"The requested resource does not exist: {raw_path}")
        if method != "GET":
            return _error(405, 405, f"Method {method} not allowed.")
        if not self._valid_jwt(auth) or (faults.expired_jwt_every and n % faults.expired_jwt_every == 0):
            return _error(401, 124, "Invalid access token.")
        category = HEAVY if endpoint == ENDPOINT_QOS else RESOURCE_INTENSIVE
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
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if endpoint == ENDPOINT_LIST:
            return self._list_sessions(params, faults)
        return self._user_qos(raw_path, params, faults)

    def _limit_for(self, category: str) -> int:
        if category == HEAVY:
            return int(self.config.heavy_rate_per_second)
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
        category = HEAVY if endpoint == ENDPOINT_QOS else RESOURCE_INTENSIVE
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
    def _page_size(self, raw: str | None, default: int, maximum: int) -> int:
        if raw is None or raw == "":
            return min(default, maximum)
        try:
            size = int(raw)
        except ValueError:
            raise _ApiError(400, 300, "Invalid parameter: page_size.") from None
        if size < 1:
            raise _ApiError(400, 300, "Invalid parameter: page_size. It must be at least 1.")
        return min(size, maximum)

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
                raise _ApiError(400, 300, TOKEN_MESSAGE)
            return entry.offset

    def _page(self, items: list[Any], params: dict[str, str], key: tuple[Any, ...], size: int,
              faults: Faults) -> tuple[list[Any], str]:
        token = params.get("next_page_token", "")
        offset = self._redeem_token(token, key, faults) if token else 0
        page = items[offset: offset + size]
        nxt = offset + size
        return page, (self._issue_token(key, nxt) if nxt < len(items) else "")

    # ------------------------------------------------------------- endpoints
    def _parse_day(self, params: dict[str, str], name: str) -> date:
        raw = params.get(name)
        if not raw:
            raise _ApiError(400, 300, f"Missing required parameter: {name}. Expected yyyy-mm-dd.")
        try:
            if not _DATE.match(raw):
                raise ValueError(raw)
            return date.fromisoformat(raw)
        except ValueError:
            message = f"Invalid parameter: {name}. Expected yyyy-mm-dd, got {raw!r}."
            raise _ApiError(400, 300, message) from None

    @staticmethod
    def _type(params: dict[str, str]) -> str:
        kind = params.get("type") or "live"
        if kind not in ("past", "live"):
            raise _ApiError(400, 300, f"Invalid parameter: type. Expected 'past' or 'live', got {kind!r}.")
        return kind

    def _list_sessions(self, params: dict[str, str], faults: Faults) -> _Response:
        kind = self._type(params)
        day_from = self._parse_day(params, "from")
        day_to = self._parse_day(params, "to")
        if day_from > day_to:
            raise _ApiError(400, 300, "Invalid date range: 'from' must not be later than 'to'.")
        if (day_to - day_from).days > self.config.max_range_days:
            raise _ApiError(400, 300, f"Invalid date range: the range between 'from' and 'to' must not "
                                      f"exceed one month ({self.config.max_range_days} days).")
        oldest = self.now.date() - timedelta(days=self.config.history_days)
        if day_from < oldest:
            raise _ApiError(400, 300, f"Invalid date range: 'from' must be within the last six months "
                                      f"(on or after {oldest.isoformat()}).")
        size = self._page_size(params.get("page_size"), self.config.list_page_size_default,
                               self.config.list_page_size_max)
        if kind == "past":
            found = self.dataset.past_sessions(day_from, day_to)
        else:
            found = self.dataset.live_sessions()
        key_filter = params.get("session_key")
        name_filter = (params.get("session_name") or "").lower()
        items = [s.obj for s in found
                 if (not key_filter or s.obj["session_key"] == key_filter)
                 and (not name_filter or name_filter in s.obj["session_name"].lower())]
        key = ("list", kind, day_from, day_to, key_filter or "", name_filter)
        page, nxt = self._page(items, params, key, size, faults)
        return _json(200, {"from": day_from.isoformat(), "to": day_to.isoformat(), "page_size": size,
                           "next_page_token": nxt, "sessions": page})

    def _user_qos(self, raw_path: str, params: dict[str, str], faults: Faults) -> _Response:
        match = _QOS_PATH.match(raw_path)
        session_id = decode_session_segment(match.group(1)) if match else None
        if session_id is None:
            raise _ApiError(404, 3001, "Session does not exist.")
        if session_id in faults.invalid_sessions:
            raise _ApiError(400, 300, "Invalid session ID.")
        if session_id in faults.gone_sessions:
            raise _ApiError(404, 3001, "Session does not exist.")
        kind = self._type(params)
        session = self.dataset.find_session(session_id)
        if session is None or (kind == "live") != self.dataset.is_live(session):
            raise _ApiError(404, 3001, "Session does not exist.")
        size = self._page_size(params.get("page_size"), self.config.qos_page_size_default,
                               self.config.qos_page_size_max)
        users = self.dataset.users_for_session(session_id)
        page, nxt = self._page(users, params, ("qos", session_id, kind), size, faults)
        return _json(200, {"page_size": size, "next_page_token": nxt, "users": page})
