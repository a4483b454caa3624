"""``zoom-qos webhooks serve`` as a user runs it: the token from the Zoom connection's extra, a clear
one-line error without it, and never the token in its output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ZOOM_QOS = Path(sys.executable).with_name("zoom-qos")
TOKEN = "serve-token-93ab1f"


def env(tmp_path: Path, extra: dict[str, str]) -> dict[str, str]:
    zoom = {"conn_type": "zoom_videosdk", "host": "http://127.0.0.1:9/v2", "login": "k", "password": "s",
            "extra": extra}
    warehouse = {"conn_type": "sqlite", "host": str(tmp_path / "w.db")}
    return {**os.environ, "AIRFLOW_CONN_ZOOM_VIDEOSDK": json.dumps(zoom),
            "AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE": json.dumps(warehouse)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_without_the_token_it_says_which_extra_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([str(ZOOM_QOS), "webhooks", "serve", "--port", str(free_port())],
                          env=env(tmp_path, {}), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("zoom-qos: error: SettingsError:") and "webhook_secret_token" in done.stderr
    assert "Traceback" not in done.stderr


def test_it_serves_health_and_never_shows_the_token(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen([str(ZOOM_QOS), "webhooks", "serve", "--port", str(port)],
                              env=env(tmp_path, {"webhook_secret_token": TOKEN}),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    assert json.load(answer)["status"] == "ok"
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.3)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert TOKEN not in output
