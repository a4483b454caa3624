"""``zoom-qos webhooks serve`` as a user runs it: the token from the Zoom connection's extra (masked
at once), a clear one-line error without it or with a port in use, a signed event stored in the
warehouse it migrated, and never the token in its output."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from zoom_qos.cli import webhooks as cli
from zoom_qos.cli.main import run
from zoom_qos.core.errors import SettingsError
from zoom_qos.zoom.webhooks import sign

ZOOM_QOS = Path(sys.executable).with_name("zoom-qos")
TOKEN = "serve-token-93ab1f"
API_SECRET = "api-secret-77c0e2d4"


def zoom_conn(extra: dict[str, object]) -> str:
    return json.dumps({"conn_type": "zoom_videosdk", "host": "http://127.0.0.1:9/v2", "login": "k",
                       "password": API_SECRET, "extra": extra})


def env(tmp_path: Path, extra: dict[str, object]) -> dict[str, str]:
    warehouse = {"conn_type": "sqlite", "host": str(tmp_path / "w.db")}
    return {**os.environ, "AIRFLOW_CONN_ZOOM_VIDEOSDK": zoom_conn(extra),
            "AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE": json.dumps(warehouse)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the token --------------------------------------------------------------------------------

def test_the_token_is_read_from_the_extra_and_handed_to_airflows_masker_first(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow.sdk.log

    masked: list[object] = []
    monkeypatch.setattr(airflow.sdk.log, "mask_secret", lambda value, name=None: masked.append(value))
    monkeypatch.setenv("AIRFLOW_CONN_ZOOM_VIDEOSDK", zoom_conn({"webhook_secret_token": f"  {TOKEN}\n"}))
    assert cli.secret_token("zoom_videosdk") == TOKEN
    assert TOKEN in masked


@pytest.mark.parametrize("extra", [{}, {"webhook_secret_token": ""}, {"webhook_secret_token": "   "},
                                   {"webhook_secret_token": 12345678}, {"webhook_secret": TOKEN}])
def test_a_missing_token_is_one_line_naming_the_extra_and_the_connection(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, object]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ZOOM_VIDEOSDK", zoom_conn(extra))
    with pytest.raises(SettingsError) as caught:
        cli.secret_token("zoom_videosdk")
    message = str(caught.value)
    assert "'webhook_secret_token'" in message and "'zoom_videosdk'" in message and "\n" not in message
    assert TOKEN not in message and API_SECRET not in message


def test_an_unreadable_connection_variable_is_named_not_taken_for_a_missing_one(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = '{"conn_type": "zoom_videosdk", "password": "' + API_SECRET  # JSON cut short
    monkeypatch.setenv("AIRFLOW_CONN_ZOOM_WEBHOOKS_TEST", broken)
    with pytest.raises(SettingsError, match="AIRFLOW_CONN_ZOOM_WEBHOOKS_TEST is set but") as caught:
        cli.secret_token("zoom_webhooks_test")
    assert API_SECRET not in str(caught.value)
    monkeypatch.delenv("AIRFLOW_CONN_ZOOM_WEBHOOKS_TEST")
    with pytest.raises(SettingsError, match="'zoom_webhooks_test' is not defined"):
        cli.secret_token("zoom_webhooks_test")


# --- the port ---------------------------------------------------------------------------------

def test_a_port_in_use_is_a_one_line_error_with_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ZOOM_VIDEOSDK", zoom_conn({"webhook_secret_token": TOKEN}))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run(["webhooks", "serve", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"zoom-qos: error: SettingsError: cannot listen on 127.0.0.1:{port}")
    assert "--port" in err and len(err.strip().splitlines()) == 1 and TOKEN not in err


def test_listen_binds_the_loopback_by_default() -> None:
    args = argparse.ArgumentParser()
    cli.add_commands(args.add_subparsers())
    parsed = args.parse_args(["webhooks", "serve"])
    assert (parsed.host, parsed.port, parsed.conn_id, parsed.warehouse_conn_id) == (
        "127.0.0.1", 8090, "zoom_videosdk", "zoom_qos_warehouse")
    sock = cli.listen("127.0.0.1", 0)
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()
    with pytest.raises(SettingsError, match="not an address of this machine"):
        cli.listen("no-such-host.invalid", 0)


# --- as a user runs it ------------------------------------------------------------------------

def test_without_the_token_it_says_which_extra_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([str(ZOOM_QOS), "webhooks", "serve", "--port", str(free_port())],
                          env=env(tmp_path, {}), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("zoom-qos: error: SettingsError:") and "webhook_secret_token" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert API_SECRET not in done.stdout + done.stderr
    assert not (tmp_path / "w.db").exists()  # nothing started: not even the warehouse


def post(url: str, raw: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=raw, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_it_stores_signed_events_refuses_others_and_never_shows_the_token(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen([str(ZOOM_QOS), "webhooks", "serve", "--port", str(port)],
                              env=env(tmp_path, {"webhook_secret_token": TOKEN}),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:
                    assert json.load(answer)["status"] == "ok"
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.3)
        raw = json.dumps({"event": "session.ended", "event_ts": int(time.time() * 1000),
                          "payload": {"object": {"session_id": "served-1"}}}).encode()
        stamp = str(int(time.time()))
        assert post(f"{base}/webhooks/zoom", raw, {"x-zm-request-timestamp": stamp,
                                                   "x-zm-signature": sign(TOKEN, stamp, raw)}) == 200
        assert post(f"{base}/webhooks/zoom", raw, {"x-zm-request-timestamp": stamp,
                                                   "x-zm-signature": sign("guess", stamp, raw)}) == 401
        with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:
            counts = json.load(answer)["counts"]
        assert (counts["accepted"], counts["forged"]) == (1, 1)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    # uvicorn stops gracefully, then re-raises the signal it caught: killed by SIGTERM, as asked
    assert server.returncode in (0, -signal.SIGTERM), output
    assert f"Receiving Zoom's webhooks at http://127.0.0.1:{port}/webhooks/zoom" in output
    assert "Refused a webhook request (forged, HTTP 401)" in output
    assert TOKEN not in output and API_SECRET not in output
    with sqlite3.connect(tmp_path / "w.db") as db:
        assert db.execute("select session_id, deliveries from webhook_events").fetchall() == [("served-1", 1)]
