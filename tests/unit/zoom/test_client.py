"""The Airflow-free client: no Airflow import, one Session per thread, ``verify`` on every request,
secrets handed to the caller's masker."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from zoom_qos.core.flags import parse_bool
from zoom_qos.zoom.client import ZoomClient
from zoom_qos.zoom.errors import RetriesExhaustedError
from zoom_qos.zoom.published import HEAVY
from zoom_qos.zoom.settings import ZoomSettings

ROOT = Path(__file__).resolve().parents[3]
POOL_FULL = "Connection pool is full"


# --- a tiny local Zoom: counts connections, answers an empty session list ---------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a reused connection shows as one connection
    delay = 0.0

    def setup(self) -> None:
        super().setup()
        server = self.server
        assert isinstance(server, _Server)
        with server.lock:
            server.connections += 1

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        server = self.server
        assert isinstance(server, _Server)
        with server.lock:
            server.paths.append(self.path)
        time.sleep(self.delay)
        body = json.dumps({"sessions": [], "next_page_token": ""}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.connections = 0
        self.paths: list[str] = []  # path and query of every request received

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # refused TLS handshakes are what some tests expect

    @property
    def port(self) -> int:
        return self.server_address[1]


def _serve(server: _Server) -> Iterator[_Server]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_server() -> Iterator[_Server]:
    yield from _serve(_Server())


def make_client(base_url: str, **settings: object) -> ZoomClient:
    fast = {"daily_request_limit": 0, "heavy_requests_per_second": 10_000.0,
            "backoff_base_seconds": 0.01, **settings}
    return ZoomClient(ZoomSettings.from_extra(fast), api_key="test-key", api_secret="test-secret",
                      base_url=base_url)


# --- no Airflow -------------------------------------------------------------------------------
_WITHOUT_AIRFLOW = """
import importlib, pkgutil, sys

class NoAirflow:
    def find_spec(self, name, path=None, target=None):
        if name == "airflow" or name.startswith("airflow."):
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, NoAirflow())
try:
    import airflow  # noqa
except ImportError:
    pass
else:
    raise SystemExit("the blocker did not block airflow")

import zoom_qos.zoom
names = [info.name for info in pkgutil.walk_packages(zoom_qos.zoom.__path__, "zoom_qos.zoom.")]
for name in names:
    importlib.import_module(name)

from zoom_qos.zoom.client import ZoomClient
from zoom_qos.zoom.settings import ZoomSettings

client = ZoomClient(ZoomSettings(daily_request_limit=0), api_key="k", api_secret="s",
                    base_url="http://127.0.0.1:9/v2", on_secret=lambda value: None)
client.session()
client.close()
loaded = sorted(m for m in sys.modules if m == "airflow" or m.startswith("airflow."))
assert not loaded, loaded
try:
    import zoom_qos.hooks  # noqa: the Airflow side must need Airflow, or this test proves nothing
except ImportError:
    pass
else:
    raise SystemExit("zoom_qos.hooks imported without Airflow: the blocker is not working")
print("ok", len(names))
"""


def test_the_client_imports_and_runs_without_airflow():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    done = subprocess.run([sys.executable, "-c", _WITHOUT_AIRFLOW], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    ok, count = done.stdout.split()
    assert ok == "ok" and int(count) >= 10  # every module under zoom/ was imported


# --- one Session per thread -------------------------------------------------------------------
THREADS = 24  # more than urllib3's 10 connections per pool, as 16 extraction threads are


def _in_threads(work: Callable[[], object], threads: int = THREADS) -> None:
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            work()
        except BaseException as error:  # reported by the test
            errors.append(error)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not errors, errors


def test_one_shared_session_discards_connections(http_server, caplog, monkeypatch):
    """The problem the client avoids: many threads on one Session overflow its pool."""
    monkeypatch.setattr(_Handler, "delay", 0.05)
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    shared = requests.Session()
    url = f"http://127.0.0.1:{http_server.port}/v2/videosdk/sessions"
    _in_threads(lambda: [shared.get(url, timeout=10).content for _ in range(3)])
    shared.close()
    assert POOL_FULL in caplog.text


def test_each_thread_uses_its_own_session_and_keeps_its_connection(http_server, caplog, monkeypatch):
    monkeypatch.setattr(_Handler, "delay", 0.05)
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    client = make_client(f"http://127.0.0.1:{http_server.port}/v2")
    sessions: dict[int, int] = {}
    lock = threading.Lock()

    def work() -> None:
        for _ in range(5):
            assert client.get_json("videosdk/sessions", {"type": "past"}, HEAVY) == {
                "sessions": [], "next_page_token": ""}
        with lock:
            sessions[threading.get_ident()] = id(client.session())

    _in_threads(work)
    assert POOL_FULL not in caplog.text
    assert len(set(sessions.values())) == THREADS == client.session_count()
    assert client.stats.requests == 5 * THREADS
    assert http_server.connections == THREADS  # every thread reused its one kept-alive connection
    client.close()
    assert client.session_count() == 0


def test_close_closes_every_threads_session(http_server, monkeypatch):
    client = make_client(f"http://127.0.0.1:{http_server.port}/v2")
    closed: list[requests.Session] = []
    real_close = requests.Session.close

    def recording_close(self: requests.Session) -> None:
        closed.append(self)
        real_close(self)

    monkeypatch.setattr(requests.Session, "close", recording_close)
    made: list[requests.Session] = []
    lock = threading.Lock()

    def work() -> None:
        client.get_json("videosdk/sessions", {}, HEAVY)
        with lock:
            made.append(client.session())

    _in_threads(work, threads=4)
    client.close()
    assert {id(s) for s in closed} == {id(s) for s in made} and len(made) == 4
    client.get_json("videosdk/sessions", {}, HEAVY)  # still usable: a new Session for this thread
    assert client.session_count() == 1 and client.session() not in made


def test_each_session_carries_auth_headers_and_its_own_adapter(http_server):
    from requests.adapters import HTTPAdapter

    made: list[HTTPAdapter] = []

    def factory() -> HTTPAdapter:
        made.append(HTTPAdapter())
        return made[-1]

    client = ZoomClient(ZoomSettings(daily_request_limit=0), api_key="k", api_secret="s",
                        base_url=f"http://127.0.0.1:{http_server.port}/v2",
                        headers={"X-Test": "1"}, adapter_factory=factory)
    sessions: list[requests.Session] = []
    _in_threads(lambda: sessions.append(client.session()), threads=3)
    for session in sessions:
        assert session.auth is client.auth and session.headers["X-Test"] == "1"
        assert session.headers["Accept"] == "application/json"
        assert session.get_adapter("https://api.zoom.us/v2") in made
    assert len(made) == 6  # http:// and https:// of three Sessions, none shared


# --- verify on every request ------------------------------------------------------------------
def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[_Server, Path]]:
    cert, key = _self_signed(tmp_path)
    server = _Server()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    for running in _serve(server):
        yield running, cert


@pytest.fixture
def ca_bundle_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What this machine (and many CI images) set: a system bundle that lacks our test CA."""
    import certifi

    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(name, certifi.where())


def test_the_environment_overrides_a_sessions_verify(https_server, ca_bundle_env):
    """Why the client passes ``verify`` per request: requests prefers the variables to a Session's."""
    server, cert = https_server
    session = requests.Session()
    session.verify = str(cert)
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"https://127.0.0.1:{server.port}/v2/videosdk/sessions", timeout=10)
    session.close()


def test_the_configured_ca_bundle_is_used_despite_the_environment(https_server, ca_bundle_env):
    server, cert = https_server
    client = make_client(f"https://127.0.0.1:{server.port}/v2", verify=str(cert))
    assert client.get_json("videosdk/sessions", {"type": "past"}, HEAVY)["sessions"] == []
    client.close()


def test_default_verification_refuses_an_unknown_certificate(https_server, ca_bundle_env):
    server, _ = https_server
    client = make_client(f"https://127.0.0.1:{server.port}/v2", max_retries=0)
    with pytest.raises(RetriesExhaustedError) as caught:
        client.get_json("videosdk/sessions", {}, HEAVY)
    client.close()
    # the URL and the cause, not just the exception's class
    assert f"GET https://127.0.0.1:{server.port}/v2/videosdk/sessions failed 1 times" in str(caught.value)
    assert "SSLError: certificate verify failed: " in str(caught.value)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_host_names_the_url_and_the_cause_never_the_token():
    port = _closed_port()
    client = make_client(f"http://127.0.0.1:{port}/v2", max_retries=0)
    with pytest.raises(RetriesExhaustedError) as caught:
        client.get_json("videosdk/sessions", {"next_page_token": "tok-secret-1"}, HEAVY)
    client.close()
    message = str(caught.value)
    assert f"GET http://127.0.0.1:{port}/v2/videosdk/sessions failed 1 times" in message
    assert "(last: ConnectionError: connection refused)" in message
    assert "tok-secret-1" not in message


def test_a_name_that_does_not_resolve_says_so():
    import socket

    host = "no-such-host.invalid"
    with pytest.raises(socket.gaierror) as resolving:  # what this machine's resolver says
        socket.getaddrinfo(host, 80)
    client = make_client(f"http://{host}/v2", max_retries=0)
    with pytest.raises(RetriesExhaustedError) as caught:
        client.get_json("videosdk/sessions", {}, HEAVY)
    client.close()
    assert f"GET http://{host}/v2/videosdk/sessions" in str(caught.value)
    assert f"ConnectionError: {str(resolving.value.strerror).lower()})" in str(caught.value)


def test_verify_false_skips_verification(https_server, ca_bundle_env):
    server, _ = https_server
    client = make_client(f"https://127.0.0.1:{server.port}/v2", verify="false")
    assert client.settings.verify is False
    with pytest.warns(Warning):  # urllib3's InsecureRequestWarning: said once, loudly
        assert client.get_json("videosdk/sessions", {}, HEAVY)["sessions"] == []
    client.close()


# --- secrets and settings ---------------------------------------------------------------------
def test_the_secret_and_every_token_go_to_on_secret(http_server):
    told: list[str] = []
    client = ZoomClient(ZoomSettings(daily_request_limit=0), api_key="k", api_secret="the-secret",
                        base_url=f"http://127.0.0.1:{http_server.port}/v2", on_secret=told.append)
    assert told == ["the-secret"]
    client.get_json("videosdk/sessions", {}, HEAVY)
    assert told == ["the-secret", client.auth.token()]
    client.auth.invalidate()
    client.get_json("videosdk/sessions", {}, HEAVY)
    assert len(told) == 3 and told[2] == client.auth.token()


@pytest.mark.parametrize("extra,match", [
    ({"read_user_grades": "sure"}, "'read_user_grades' must be a bool"),
    ({"verify": ""}, "'verify' must be a bool or a CA bundle path"),
    ({"verify": 7}, "'verify' must be a bool or a CA bundle path"),
    ({"max_retries": None}, "'max_retries' must be a int"),
])
def test_settings_refuse_values_they_cannot_read(extra, match):
    with pytest.raises(ValueError, match=match):
        ZoomSettings.from_extra(extra)


@pytest.mark.parametrize("raw,expected", [
    ("true", True), (" YES ", True), ("1", True), (1, True), (True, True), ("t", True),
    ("on", True), ("false", False), ("no", False), (0, False), ("F", False), ("off", False),
    ("maybe", None), (2, None), (None, None), ("x" * 200, None),
])
def test_one_flag_parser(raw, expected):
    assert parse_bool(raw) is expected


def test_verify_reads_flags_and_paths():
    assert ZoomSettings.from_extra({"verify": "off"}).verify is False
    assert ZoomSettings.from_extra({"verify": "No"}).verify is False
    assert ZoomSettings.from_extra({"verify": "/etc/ca.pem"}).verify == "/etc/ca.pem"
    assert ZoomSettings.from_extra({"verify": True}).verify is True


# --- live sessions: type=live, and live polling's share of the budget --------------------------
def _sent(server: _Server) -> list[tuple[str, dict[str, str]]]:
    from urllib.parse import parse_qsl, urlsplit

    return [(urlsplit(p).path, dict(parse_qsl(urlsplit(p).query))) for p in server.paths]


def test_live_sessions_and_their_pages_are_asked_with_type_live(http_server):
    from zoom_qos.zoom.published import SESSION_QOS, SESSION_USERS, SESSIONS, request_problems

    client = make_client(f"http://127.0.0.1:{http_server.port}/v2")
    assert list(client.iter_live_sessions(dt.date(2026, 11, 25), dt.date(2026, 11, 26))) == []
    assert list(client.iter_session_qos_pages("/ab//c==", session_type="live")) == [(0, [])]
    assert list(client.iter_session_users_pages("abc==", session_type="live")) == [(0, [])]
    assert list(client.iter_past_sessions(dt.date(2026, 11, 26), dt.date(2026, 11, 26))) == []
    assert list(client.iter_session_qos_pages("abc==")) == [(0, [])]
    sent = _sent(http_server)
    assert sent == [
        ("/v2/videosdk/sessions",
         {"type": "live", "from": "2026-11-25", "to": "2026-11-26", "page_size": "300"}),
        ("/v2/videosdk/sessions/%252Fab%252F%252Fc%253D%253D/users/qos", {"type": "live", "page_size": "10"}),
        ("/v2/videosdk/sessions/abc%3D%3D/users", {"type": "live", "page_size": "300"}),
        ("/v2/videosdk/sessions",
         {"type": "past", "from": "2026-11-26", "to": "2026-11-26", "page_size": "300"}),
        ("/v2/videosdk/sessions/abc%3D%3D/users/qos", {"type": "past", "page_size": "10"}),
    ]
    for (_, params), endpoint in zip(sent, (SESSIONS, SESSION_QOS, SESSION_USERS, SESSIONS, SESSION_QOS),
                                     strict=True):
        assert request_problems(endpoint, params) == []


def test_an_unknown_session_type_is_refused_before_any_request(http_server):
    client = make_client(f"http://127.0.0.1:{http_server.port}/v2")
    for read in (client.iter_session_qos_pages, client.iter_session_users_pages):
        with pytest.raises(ValueError, match="session_type must be one of past, live"):
            read("abc", session_type="ended")  # type: ignore[arg-type]
    assert http_server.paths == []


def test_a_live_client_spends_only_live_pollings_share(http_server, tmp_path):
    from zoom_qos.zoom.budget import LiveBudgetExhaustedError
    from zoom_qos.zoom.counters import FileDailyCounter, Spent

    extra = {"daily_request_limit": 100, "backfill_reserve_requests": 10, "live_daily_request_budget": 2,
             "heavy_requests_per_second": 10_000.0}
    base_url = f"http://127.0.0.1:{http_server.port}/v2"

    def client(**kind: bool) -> ZoomClient:
        return ZoomClient(ZoomSettings.from_extra(extra), api_key="test-key", api_secret="test-secret",
                          base_url=base_url, budget_dir=tmp_path, **kind)

    live = client(live=True)
    today = dt.datetime.now(dt.UTC).date()
    list(live.iter_live_sessions(today - dt.timedelta(days=1), today))
    list(live.iter_session_qos_pages("abc", session_type="live"))
    with pytest.raises(LiveBudgetExhaustedError, match="live polling resumes after 00:00 UTC") as refused:
        list(live.iter_session_qos_pages("abd", session_type="live"))
    assert refused.value.kind == "live" and len(http_server.paths) == 2  # the refused one was not sent
    list(client().iter_past_sessions(today, today))  # a scheduled run is not held back by it
    [counts] = [p for p in tmp_path.glob("*.json")]
    [account] = [counts.stem]
    assert FileDailyCounter(tmp_path, account).get(today) == Spent(scheduled=1, backfill=0, live=2)
    with pytest.raises(ValueError, match="not both"):
        client(live=True, backfill=True)


def test_zooms_webhook_log_is_asked_as_published_and_costs_nothing_of_the_daily_cap(http_server, tmp_path):
    from zoom_qos.zoom.budget import LiveBudgetExhaustedError
    from zoom_qos.zoom.published import WEBHOOK_LOGS, request_problems

    extra = {"daily_request_limit": 100, "backfill_reserve_requests": 10, "live_daily_request_budget": 1}
    live = ZoomClient(ZoomSettings.from_extra(extra), api_key="test-key", api_secret="test-secret",
                      base_url=f"http://127.0.0.1:{http_server.port}/v2", budget_dir=tmp_path, live=True)
    now = dt.datetime(2026, 11, 26, 12, 0, 5, 999, tzinfo=dt.UTC)
    list(live.iter_session_qos_pages("abc", session_type="live"))  # live polling's whole share
    with pytest.raises(LiveBudgetExhaustedError):
        list(live.iter_session_qos_pages("abd", session_type="live"))
    for _ in range(3):  # Medium: outside the daily cap, so never refused by the budget
        assert list(live.iter_webhook_logs(now - dt.timedelta(days=7), now)) == []
    sent = _sent(http_server)[-3:]
    assert sent[0] == ("/v2/videosdk/report/webhook_logs", {
        "from": "2026-11-19T12:00:05Z", "to": "2026-11-26T12:00:05Z", "type": "2", "page_size": "300"})
    assert request_problems(WEBHOOK_LOGS, sent[0][1]) == []
