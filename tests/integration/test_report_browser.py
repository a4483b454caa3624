"""The QoS report end to end: the DAG loads simulator data and emits the asset, the report DAG
renders the report, and headless Chromium shows it without a console message.

Chromium is Debian's package ``chromium`` (``/usr/bin/chromium``). Without it the browser test
is skipped with the reason, except on CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
import subprocess
import zlib
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from tests.integration.dagrun import dags_test, run_dag

pytestmark = pytest.mark.e2e

ASSET_URI = "zoom-qos://warehouse/qos"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--enable-logging=stderr", "--v=0",
    # Any host name fails to resolve: the page can reach nothing, even if it tried.
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
BLUE, ORANGE = (0x00, 0x72, 0xB2), (0xD5, 0x5E, 0x00)  # report.BAR_COLOUR, report.OVER_COLOUR


def chromium() -> str:
    found = shutil.which("chromium")
    if found or os.access("/usr/bin/chromium", os.X_OK):
        return found or "/usr/bin/chromium"
    message = ("headless Chromium not found: install Debian's package `chromium` "
               "(apt-get install -y chromium) to run the browser test")
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def run_chromium(binary: str, page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def read_png(path: Path) -> tuple[int, int, list[bytes], int]:
    """(width, height, rows of raw pixel bytes, bytes per pixel) of an 8-bit RGB/RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, bytearray()
    width = height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour_type in (2, 6) and interlace == 0, (depth, colour_type, interlace)
            channels = 3 if colour_type == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride = zlib.decompress(bytes(idat)), width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind != 0:
            for x in range(stride):
                left = line[x - channels] if x >= channels else 0
                up = previous[x]
                if kind == 1:
                    line[x] = (line[x] + left) & 0xFF
                elif kind == 3:
                    line[x] = (line[x] + (left + up) // 2) & 0xFF
                else:  # 4: Paeth
                    corner = previous[x - channels] if x >= channels else 0
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                    line[x] = (line[x] + best) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows, channels


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def loaded(world):
    """Three days of simulator data loaded by the real DAG."""
    sim, env, db = world
    last = (sim.dataset.now - timedelta(days=1)).date()
    params = {"from_date": (last - timedelta(days=2)).isoformat(), "to_date": last.isoformat()}
    dags_test(env, "-c", json.dumps(params))
    return sim, env, db


@pytest.fixture(scope="module")
def report_path(loaded, tmp_path_factory) -> Path:
    """The report, rendered by the report DAG (``airflow dags test``) into ``[zoom_qos] report_dir``."""
    _, env, _ = loaded
    out = tmp_path_factory.mktemp("reports")
    returncode, output = run_dag(env, "dags", "test", "zoom_videosdk_qos_report",
                                 AIRFLOW__ZOOM_QOS__REPORT_DIR=str(out))
    assert returncode == 0 and "state=success" in output, output[-4000:]
    reports = list(out.glob("zoom_qos_report_*.html"))
    assert len(reports) == 1, reports
    assert f"QoS report: {reports[0]}" in output
    return reports[0]


# --------------------------------------------------------------------------- tests
def test_a_successful_load_emits_the_asset_event(loaded):
    _, env, _ = loaded
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as conn:
        events = conn.execute(
            "SELECT e.source_dag_id, e.source_task_id FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.uri = ?", (ASSET_URI,)).fetchall()
    assert events and set(events) == {("zoom_videosdk_qos", "load_warehouse")}


def test_the_report_renders_in_headless_chromium(report_path, tmp_path):
    binary = chromium()
    dom = run_chromium(binary, report_path, tmp_path / "profile-dom", "--dump-dom")
    # The page has no script: any console line (CSP violation, failed load, error) is a defect.
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    rendered = dom.stdout
    assert rendered.count('<svg class="chart"') == 6
    for section in ('id="trend"', 'id="hist-latency-ms"', 'id="hist-avg-loss-pct"', 'id="worst-sessions"',
                    'id="breakdown-device"', 'id="breakdown-network-type"', 'id="breakdown-data-center"'):
        assert section in rendered, section
    assert 'data-media="audio"' in rendered and 'data-media="video"' in rendered
    assert rendered.count('<rect class="bar"') > 30 and "<path d=" in rendered
    assert rendered.count("<tr>") > 10

    shot = tmp_path / "report.png"
    done = run_chromium(binary, report_path, tmp_path / "profile-shot",
                        f"--screenshot={shot}", "--window-size=1280,2000")
    assert not [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert shot.is_file() and shot.stat().st_size > 10_000, shot.stat().st_size
    width, height, rows, channels = read_png(shot)
    assert (width, height) == (1280, 2000)
    pixels = Counter(row[x:x + 3] for row in rows[::2] for x in range(0, len(row), channels * 2))
    most_common_share = pixels.most_common(1)[0][1] / sum(pixels.values())
    assert len(pixels) > 50 and most_common_share < 0.9, (len(pixels), most_common_share)
    # the histograms' bars are drawn, below and above the poor-quality limit (a minority of the
    # samples are poor, as on a real account, so fewer bars are orange)
    blue, orange = pixels[bytes(BLUE)], pixels[bytes(ORANGE)]
    assert blue > 500 and orange > 100 and blue > orange, (blue, orange)
    shutil.copy(shot, report_path.with_suffix(".png"))  # next to the report, for a look


def test_without_chromium_the_browser_test_skips_but_fails_on_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="headless Chromium not found"):
        chromium()
