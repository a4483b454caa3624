"""The HTTP side of the client: one ``requests.Session`` per thread, and bodies read capped.

A Session's connection pool holds 10 connections per host, so a task reading 16 sessions at once
through one Session keeps discarding the surplus ("Connection pool is full, discarding
connection") and opening new TLS connections; one Session per thread reuses each thread's
kept-alive connections instead, and no pool is shared between threads. A body is streamed and
read no further than it may be: a hostile or broken server cannot make the client hold more.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import requests
from requests.adapters import HTTPAdapter

from zoom_qos.zoom.bodies import capped_body

#: The most of an error answer's body read: Zoom's are ``{"code", "message"}``, a few hundred bytes.
ERROR_BODY_BYTES = 64 * 1024
#: Bytes asked of the socket at a time while a body is read (and past the cap at most).
READ_CHUNK_BYTES = 64 * 1024


class ThreadSessions:
    """The calling thread's Session, made on its first request with the client's auth, headers,
    TLS verification and transport adapter (``adapter_factory`` is called once per Session)."""

    def __init__(self, auth: requests.auth.AuthBase, headers: Mapping[str, str], verify: bool | str,
                 adapter_factory: Callable[[], HTTPAdapter] | None) -> None:
        self._auth, self._headers, self._verify = auth, dict(headers), verify
        self._adapter_factory = adapter_factory
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._new_session()
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.auth = self._auth
        session.headers.update(self._headers)
        # For callers that use the Session directly; the client itself passes ``verify`` with each
        # request, since requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a Session's.
        session.verify = self._verify
        if self._adapter_factory is not None:
            for prefix in ("https://", "http://"):
                session.mount(prefix, self._adapter_factory())
        return session

    def count(self) -> int:
        """Sessions open now: one per thread that sent a request since the last ``close()``."""
        with self._lock:
            return len(self._sessions)

    def close(self) -> None:
        """Close every thread's Session and its connections; a thread's next request opens a new one."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
            self._local = threading.local()
        for session in sessions:
            session.close()


def read_body(response: requests.Response, where: str) -> bytes:
    """A streamed response's body, capped: ``MAX_BODY_BYTES`` for a 200 (more is an error), the
    first ``ERROR_BODY_BYTES`` of any other answer (enough for Zoom's code and message)."""
    chunks = response.iter_content(READ_CHUNK_BYTES)
    if response.status_code == 200:
        return capped_body(chunks, declared_length=response.headers.get("Content-Length"), where=where)
    kept = bytearray()
    for chunk in chunks:
        kept += chunk[: ERROR_BODY_BYTES - len(kept)]
        if len(kept) >= ERROR_BODY_BYTES:
            break
    return bytes(kept)
