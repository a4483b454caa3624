"""Serving over TLS and counting connections: what the connection-reuse benchmark stands on.

The reuse figure is 1 - api_connections / requests, so the counters must be exact (one connection
for many keep-alive requests, one per fresh connection), and TLS must behave like a real HTTPS
endpoint: trusted only by a client given the certificate, and unharmed by clients that are not.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from include.zoom_simulator import Faults, Simulator, make_self_signed_cert
from include.zoom_simulator.__main__ import _parse_args
from include.zoom_simulator.tls import _with_openssl
from tests.simulator.simhelpers import auth, make_simulator

PAST = {"from": "2026-11-20", "to": "2026-11-21", "type": "past"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cert_and_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_sim(cert_and_key: tuple[Path, Path]) -> Iterator[Simulator]:
    cert, key = cert_and_key
    s = make_simulator(tls_cert=str(cert), tls_key=str(key)).start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def clean_tls(request: pytest.FixtureRequest) -> None:
    """Like conftest's ``clean`` for the TLS simulator, when a test uses it."""
    if "tls_sim" in request.fixturenames:
        s: Simulator = request.getfixturevalue("tls_sim")
        s.set_faults(Faults())
        s.reset_stats()


def _list(session: requests.Session, sim: Simulator, **kwargs: Any) -> requests.Response:
    return session.get(f"{sim.base_url}/videosdk/sessions", params=PAST, headers=auth(), timeout=10, **kwargs)


def _stat_eventually(sim: Simulator, name: str, want: int) -> int:
    """The counter once it reaches ``want`` (or after 2 s): a server thread may count a moment
    after the client has seen the outcome (a refused handshake)."""
    deadline = time.monotonic() + 2
    while (value := sim.stats()[name]) != want and time.monotonic() < deadline:
        time.sleep(0.02)
    return int(value)


# ----------------------------------------------------------------------------- TLS
def test_tls_serves_https_to_a_client_trusting_the_certificate(tls_sim: Simulator,
                                                               cert_and_key: tuple[Path, Path]) -> None:
    """``verify=<cert>`` is how the pipeline trusts a private CA; the API answers as over HTTP."""
    assert tls_sim.tls and tls_sim.base_url.startswith("https://127.0.0.1:")
    with requests.Session() as s:
        r = _list(s, tls_sim, verify=str(cert_and_key[0]))
    assert r.status_code == 200, r.text
    assert r.json()["sessions"]
    assert tls_sim.stats()["tls_handshake_failures"] == 0


def test_tls_rejected_by_a_client_using_the_system_bundle(tls_sim: Simulator,
                                                          cert_and_key: tuple[Path, Path]) -> None:
    """A self-signed certificate must not pass ``verify=True`` (else the bench could not tell a
    client that ignores its ``verify`` extra); the refused handshake is counted, the server lives."""
    refused = pytest.raises(requests.exceptions.SSLError, match="certificate verify failed")
    with requests.Session() as s, refused:
        _list(s, tls_sim, verify=True)
    assert _stat_eventually(tls_sim, "tls_handshake_failures", 1) == 1
    assert tls_sim.stats()["requests"] == 0
    with requests.Session() as s:
        assert _list(s, tls_sim, verify=str(cert_and_key[0])).status_code == 200


def test_plain_http_and_silent_clients_do_not_kill_the_tls_server(tls_sim: Simulator,
                                                                 cert_and_key: tuple[Path, Path]) -> None:
    """Handshake failures end only their own connection: HTTP spoken to the TLS port, and a client
    that connects and hangs up without a word."""
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(tls_sim.base_url.replace("https://", "http://") + "/videosdk/sessions", timeout=5)
    socket.create_connection(("127.0.0.1", tls_sim.port), timeout=5).close()
    assert _stat_eventually(tls_sim, "tls_handshake_failures", 2) == 2
    with requests.Session() as s:
        assert _list(s, tls_sim, verify=str(cert_and_key[0])).status_code == 200


def test_keep_alive_works_over_tls(tls_sim: Simulator, cert_and_key: tuple[Path, Path]) -> None:
    """HTTP/1.1 keep-alive must survive the TLS wrapping: five requests, one handshake."""
    with requests.Session() as s:
        codes = [_list(s, tls_sim, verify=str(cert_and_key[0])).status_code for _ in range(5)]
    assert codes == [200] * 5
    stats = tls_sim.stats()
    assert (stats["requests"], stats["connections"], stats["api_connections"]) == (5, 1, 1)


def test_the_certificate_names_127_0_0_1_and_localhost(cert_and_key: tuple[Path, Path]) -> None:
    """Clients match the URL host against subjectAltName only, so both names must be there; the
    key is private to its owner."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_and_key[0].read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert cert_and_key[1].stat().st_mode & 0o077 == 0


def test_the_certificate_passes_strict_verification(tls_sim: Simulator,
                                                    cert_and_key: tuple[Path, Path]) -> None:
    """Python 3.13's default context verifies in X509 strict mode; a certificate that only lax
    OpenSSL accepts would break clients on a newer Python (the bench's control calls among them)."""
    context = ssl.create_default_context(cafile=str(cert_and_key[0]))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    root = tls_sim.base_url.removesuffix("/v2")
    with urllib.request.urlopen(f"{root}/_sim/health", timeout=10, context=context) as resp:
        assert resp.status == 200


@pytest.mark.skipif(not Path("/usr/bin/openssl").exists(), reason="no openssl CLI")
def test_openssl_fallback_makes_a_working_certificate(tmp_path: Path) -> None:
    """Without ``cryptography`` the helper uses the openssl CLI; its certificate must serve too."""
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    _with_openssl(cert, key, ("127.0.0.1", "localhost"), 1)
    with make_simulator(tls_cert=str(cert), tls_key=str(key)) as sim, requests.Session() as s:
        assert _list(s, sim, verify=str(cert)).status_code == 200


def test_tls_settings_are_checked_when_the_simulator_is_built(cert_and_key: tuple[Path, Path],
                                                              tmp_path: Path) -> None:
    """A half or wrong TLS setting fails at construction, not at the first client's handshake."""
    with pytest.raises(ValueError, match="both or neither"):
        make_simulator(tls_cert=str(cert_and_key[0]))
    with pytest.raises(OSError):
        make_simulator(tls_cert=str(tmp_path / "missing.pem"), tls_key=str(cert_and_key[1]))
    with pytest.raises(SystemExit):
        _parse_args(["--tls-cert", str(cert_and_key[0])])
    with pytest.raises(SystemExit):
        _parse_args(["--tls", "--tls-cert", str(cert_and_key[0]), "--tls-key", str(cert_and_key[1])])
    assert _parse_args(["--tls"]).tls


def test_cli_tls_serves_https_with_the_certificate_it_names(tmp_path: Path) -> None:
    """``--tls`` makes a certificate and says where it is (stdout, READY_FILE.cert), so a make
    target or a developer can point the pipeline's ``verify`` at it."""
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-m", "include.zoom_simulator", "--port", "0", "--tls", "--ready-file", str(ready)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])},
    )
    try:
        deadline = time.monotonic() + 15
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        base = ready.read_text().strip()
        assert re.fullmatch(r"https://127\.0\.0\.1:\d+/v2", base)
        cert = Path(Path(f"{ready}.cert").read_text().strip())
        health = requests.get(f"{base.removesuffix('/v2')}/_sim/health", verify=str(cert), timeout=10)
        assert health.json()["base_url"] == base
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert f"TLS certificate (clients trust this file): {cert}" in out


# ----------------------------------------------------------------------------- connection counting
def test_one_connection_for_several_keep_alive_requests(sim: Simulator) -> None:
    """One Session, four requests: four requests answered on one connection (reuse 75 %)."""
    with requests.Session() as s:
        assert [_list(s, sim).status_code for _ in range(4)] == [200] * 4
    stats = sim.stats()
    assert (stats["requests"], stats["connections"], stats["api_connections"]) == (4, 1, 1)


def test_several_connections_are_counted_as_several(sim: Simulator) -> None:
    """A fresh Session per request opens a connection per request: reuse 0 %."""
    for _ in range(3):
        with requests.Session() as s:
            assert _list(s, sim).status_code == 200
    stats = sim.stats()
    assert (stats["requests"], stats["connections"], stats["api_connections"]) == (3, 3, 3)


def test_control_calls_count_as_connections_but_not_api_connections(sim: Simulator) -> None:
    """A harness reading /_sim/stats between runs must not dent the API's reuse figure."""
    root = sim.base_url.removesuffix("/v2")
    for _ in range(2):
        assert requests.get(f"{root}/_sim/health", timeout=10).status_code == 200
    stats = sim.stats()
    assert (stats["requests"], stats["connections"], stats["api_connections"]) == (0, 2, 0)


def test_reset_stats_restarts_the_connection_counters(sim: Simulator) -> None:
    """After a reset a connection still open is counted again on its next API request (once), so
    a measurement covers exactly the connections its own requests used."""
    with requests.Session() as s:
        _list(s, sim)
        _list(s, sim)
        sim.reset_stats()
        stats = sim.stats()
        assert (stats["requests"], stats["connections"], stats["api_connections"]) == (0, 0, 0)
        _list(s, sim)
        _list(s, sim)
    stats = sim.stats()
    assert (stats["requests"], stats["connections"], stats["api_connections"]) == (2, 0, 1)


def test_a_reset_connection_makes_the_client_open_another(sim: Simulator) -> None:
    """The reset_connection fault drops the socket: the next request needs (and counts) a new one."""
    sim.set_faults(Faults(reset_connection_every=2))
    with requests.Session() as s:
        assert _list(s, sim).status_code == 200
        with pytest.raises(requests.exceptions.ConnectionError):
            _list(s, sim)
        assert _list(s, sim).status_code == 200
    stats = sim.stats()
    assert (stats["requests"], stats["connection_resets"]) == (3, 1)
    assert (stats["connections"], stats["api_connections"]) == (2, 2)
