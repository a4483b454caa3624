"""The Zoom Video SDK hook: an Airflow connection adapted to the Airflow-free ``ZoomClient``.

Built on providers-http's ``HttpHook`` so that it reads the same kind of Airflow connection:
``host`` is the API base URL including ``/v2`` (Zoom's when empty), ``login`` the Video SDK
API key, ``password`` the API secret, and ``extra`` may tune the settings of ``ZoomSettings``.
Requests, pacing, retries and the endpoints live in ``zoom/client.py``; this module only reads
the connection (once, when the client is first needed), registers the secret and JWTs with
Airflow's log masker, and keeps providers-http's TCP keep-alive adapters. Operators stay thin:
they ask for sessions or QoS pages and get plain dicts back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk.log import mask_secret
from requests.adapters import HTTPAdapter
from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter

from zoom_qos.core import config
from zoom_qos.core.config import DEFAULT_ZOOM_BASE_URL, ZOOM_CONN_ID
from zoom_qos.zoom.client import JsonDict, RequestStats, SessionType, ZoomClient
from zoom_qos.zoom.published import WEBHOOK_LOGS_FAILED
from zoom_qos.zoom.settings import ZoomSettings
from zoom_qos.zoom.webhooks import configured_secret_token

__all__ = ["RequestStats", "ZoomSettings", "ZoomVideoSdkHook", "zoom_base_url"]


def zoom_base_url(host: str | None, schema: str | None = None, port: int | None = None) -> str:
    """The API base URL of a Zoom connection: ``host`` (Zoom's when empty), ``schema`` as the
    scheme when the host has none, and ``port`` when the host names none; what lineage names the
    endpoints by, too."""
    base = (host or DEFAULT_ZOOM_BASE_URL).strip()
    if "://" not in base:
        base = f"{schema or 'https'}://{base}"
    parts = urlsplit(base)
    if port and parts.port is None:
        parts = parts._replace(netloc=f"{parts.netloc}:{port}")
    return urlunsplit(parts).rstrip("/")


class ZoomVideoSdkHook(HttpHook):
    """Reads Zoom's Video SDK REST API (``/videosdk/...``) for one Airflow connection."""

    conn_name_attr = "zoom_conn_id"
    default_conn_name = ZOOM_CONN_ID
    conn_type = "zoom_videosdk"
    hook_name = "Zoom Video SDK"
    default_host = DEFAULT_ZOOM_BASE_URL

    def __init__(
        self,
        zoom_conn_id: str = ZOOM_CONN_ID,
        *,
        backfill: bool = False,
        live: bool = False,
        tcp_keep_alive: bool = True,
        tcp_keep_alive_idle: int = 120,
        tcp_keep_alive_count: int = 20,
        tcp_keep_alive_interval: int = 30,
        adapter: HTTPAdapter | None = None,
    ) -> None:
        """``backfill``: spend only the daily budget's share left after the scheduled-run reserve.
        ``live``: poll live sessions, spending only live polling's share of the daily budget
        (``live_daily_request_budget``); not with ``backfill`` (``ValueError`` when the client is built).

        The keep-alive arguments are ``HttpHook``'s; each thread's Session gets its own adapter
        made from them. An ``adapter`` given instead is mounted on every thread's Session as it
        is, so its pool is shared: size it for ``max_concurrent_sessions``.
        Nothing is read here: the connection is read when :attr:`client` is first used.
        """
        super().__init__(method="GET", http_conn_id=zoom_conn_id, tcp_keep_alive=tcp_keep_alive,
                         tcp_keep_alive_idle=tcp_keep_alive_idle, tcp_keep_alive_count=tcp_keep_alive_count,
                         tcp_keep_alive_interval=tcp_keep_alive_interval, adapter=adapter)
        self.zoom_conn_id = zoom_conn_id
        self.backfill = backfill
        self.live = live
        self._keep_alive = (tcp_keep_alive_idle, tcp_keep_alive_count, tcp_keep_alive_interval)
        self._client: ZoomClient | None = None
        self._client_lock = threading.Lock()
        # Held here, not in the client, so a run record can be written even if the connection
        # could not be read.
        self.stats = RequestStats()

    # --- the connection, read once ------------------------------------------------------------
    @property
    def client(self) -> ZoomClient:
        """The client for this hook's connection, built on first use: this reads the Airflow
        connection (once per hook; threads share the result) and raises ``ZoomConfigError`` (a
        ``PermanentError``) for settings or credentials that cannot work, before any request."""
        with self._client_lock:
            if self._client is None:
                self._client = self._build_client()
            return self._client

    def _build_client(self) -> ZoomClient:
        conn = self.get_connection(self.zoom_conn_id)
        settings = ZoomSettings.from_extra(conn.extra_dejson)
        self.base_url = zoom_base_url(conn.host, conn.schema, conn.port)  # HttpHook's attribute
        return ZoomClient(
            settings,
            api_key=conn.login or "",
            api_secret=conn.password or "",
            base_url=self.base_url,
            backfill=self.backfill,
            live=self.live,
            conn_id=self.zoom_conn_id,
            headers=self.default_headers,
            adapter_factory=self._adapter_factory(),
            on_secret=mask_secret,
            stats=self.stats,
            rate_limit_redis_url=config.rate_limit_redis_url(),
            budget_dir=config.budget_dir(),
        )

    def _adapter_factory(self) -> Callable[[], HTTPAdapter] | None:
        """A new adapter per thread's Session: the one given to the hook, else HttpHook's TCP
        keep-alive adapter with the same options, else requests' default (None)."""
        if self.adapter is not None:
            given = self.adapter
            return lambda: given
        if self.keep_alive_adapter is None:
            return None
        idle, count, interval = self._keep_alive
        return lambda: TCPKeepAliveAdapter(idle=idle, count=count, interval=interval)

    def webhooks_configured(self) -> bool:
        """Whether the connection holds a webhook secret token (its extra ``webhook_secret_token``):
        the account's app sends webhooks, so Zoom's log of them is worth reading."""
        token = configured_secret_token(self.get_connection(self.zoom_conn_id).extra_dejson)
        if token is not None:
            mask_secret(token)
        return token is not None

    @property
    def settings(self) -> ZoomSettings:
        """The connection's settings (reads the connection on first use, see :attr:`client`)."""
        return self.client.settings

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """The calling thread's Session: the JWT auth, headers and adapters configured.

        HttpHook's contract. ``headers`` are added to this thread's Session only; ``extra_options``
        are ignored: the Zoom extras are settings (``ZoomSettings``), not request options.
        """
        session = self.client.session()
        if headers:
            session.headers.update(headers)
        return session

    def close(self) -> None:
        """Close every thread's Session; the connection is not read again."""
        if self._client is not None:
            self._client.close()

    # --- endpoints ----------------------------------------------------------------------------
    def iter_past_sessions(self, from_date: date, to_date: date) -> Iterator[JsonDict]:
        """See :meth:`ZoomClient.iter_past_sessions`."""
        return self.client.iter_past_sessions(from_date, to_date)

    def iter_live_sessions(self, from_date: date, to_date: date) -> Iterator[JsonDict]:
        """See :meth:`ZoomClient.iter_live_sessions`."""
        return self.client.iter_live_sessions(from_date, to_date)

    def iter_session_qos_pages(self, session_id: str, *, session_type: SessionType = "past"
                               ) -> Iterator[tuple[int, list[bytes]]]:
        """See :meth:`ZoomClient.iter_session_qos_pages`."""
        return self.client.iter_session_qos_pages(session_id, session_type=session_type)

    def iter_session_users_pages(self, session_id: str, *, session_type: SessionType = "past"
                                 ) -> Iterator[tuple[int, list[JsonDict]]]:
        """See :meth:`ZoomClient.iter_session_users_pages`."""
        return self.client.iter_session_users_pages(session_id, session_type=session_type)

    def daily_usage(self, year: int, month: int) -> list[JsonDict]:
        """See :meth:`ZoomClient.daily_usage`."""
        return self.client.daily_usage(year, month)

    def iter_webhook_logs(self, from_time: datetime, to_time: datetime, *,
                          log_type: int = WEBHOOK_LOGS_FAILED) -> Iterator[JsonDict]:
        """See :meth:`ZoomClient.iter_webhook_logs`."""
        return self.client.iter_webhook_logs(from_time, to_time, log_type=log_type)

    def test_connection(self) -> tuple[bool, str]:
        """Used by the Airflow UI's Test button: one cheap authenticated request.

        Reading the connection is part of the test: bad settings or missing credentials are
        reported as a message, like a refusal from Zoom.
        """
        try:
            client = self.client
        except Exception as exc:  # the UI shows the message, never a traceback
            return False, f"Could not reach Zoom: {exc}"
        return client.test_connection()

