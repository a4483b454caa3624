"""A hostile Zoom for tests: a local HTTP server whose answers each test programs.

The simulator plays Zoom strictly as published; this plays what Zoom (or whatever answers in its
place: a proxy, a broken deployment) must never send, and records every request it receives, so a
test can check what was sent as well as what came back. It only listens on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Answer:
    """One response. ``body``: bytes, or chunks sent with chunked transfer encoding (so the client
    sees no ``Content-Length``); ``length`` overrides the ``Content-Length`` declared for bytes."""

    status: int = 200
    body: bytes | Iterable[bytes] = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = None


def json_answer(value: Any, status: int = 200) -> Answer:
    return Answer(status, json.dumps(value).encode())


@dataclass
class Request:
    """What the server received: the path exactly as sent (before any decoding) and the query."""

    path: str
    query: dict[str, str]


#: Decides the answer to a request (None: 404 with Zoom's "endpoint not recognized").
Handler = Callable[[Request], Answer | None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each answer waits out a delayed ACK (40 ms)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        server = self.server
        assert isinstance(server, HostileZoom)
        parts = urlsplit(self.path)
        request = Request(parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)))
        with server.lock:
            server.requests.append(request)
        answer = server.handler(request) or json_answer(
            {"code": 2300, "message": "This API endpoint is not recognized."}, 404)
        try:
            self._send(server, answer)
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: expected
            self.close_connection = True

    def _send(self, server: HostileZoom, answer: Answer) -> None:
        self.send_response(answer.status)
        headers = {"Content-Type": "application/json", **answer.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        if isinstance(answer.body, bytes):
            self.send_header("Content-Length", str(answer.length if answer.length is not None
                                                   else len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
            server.count(len(answer.body))
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in answer.body:
            if chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                server.count(len(chunk))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        pass


class HostileZoom(ThreadingHTTPServer):
    """``with HostileZoom(handler) as zoom:`` serves on a free loopback port; ``zoom.base_url``
    (with ``/v2``) is what a client is pointed at; ``zoom.requests`` what it received, in order."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler: Handler) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.handler = handler
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.sent_bytes = 0  # body bytes the server managed to hand to its socket
        self._thread: threading.Thread | None = None

    def count(self, size: int) -> None:
        with self.lock:
            self.sent_bytes += size

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up mid-body is what these tests provoke

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v2"

    @property
    def paths(self) -> list[str]:
        with self.lock:
            return [r.path for r in self.requests]

    def __enter__(self) -> HostileZoom:
        self._thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def repeated(chunk: bytes, total: int) -> Iterator[bytes]:
    """``total`` bytes made of ``chunk`` over and over, streamed without ever being held whole."""
    sent = 0
    while sent < total:
        piece = chunk[: total - sent]
        sent += len(piece)
        yield piece
