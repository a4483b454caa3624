"""Hostile names in headless Chromium: the report of :mod:`tests.unit.report.hostileworld` runs no
script from the data, gains no element from it, and shows every name as the text it is.

Chromium is driven over its DevTools protocol (``--remote-debugging-pipe``: JSON messages ending in
NUL on the child's file descriptors 3 and 4), so the test reads the page's DOM and its JavaScript
globals after the load. Each report is opened twice: as written, where its Content-Security-Policy
would block an injected script anyway (so the console must stay silent: no blocked script, no
error), and with that policy taken out, so that escaping alone is what keeps ``window.__pwned``
undefined.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_report_browser import CHROMIUM_FLAGS, chromium
from tests.unit.report.hostileworld import (
    BREAKDOWN_VALUES,
    LIVE_SESSION_ID,
    LIVE_SESSION_NAME,
    LIVE_USER_ID,
    LIVE_USER_NAME,
    PWNED,
    RUN_ID,
    SESSION_ID,
    SESSION_NAME,
    load_hostile,
)
from zoom_qos.report import build_report
from zoom_qos.warehouse.store import Warehouse

CSP = ('<meta http-equiv="Content-Security-Policy" '
       "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">")
TIMEOUT = 30.0  # seconds for any one answer of the browser (it takes well under one)

#: What the page holds after its load, read in the page.
PROBE = """(() => {
  const text = (el) => el ? el.textContent : null;
  const column = (table, i) => table ? [...table.tBodies[0].rows].map((row) => row.cells[i].textContent) : [];
  const all = [...document.querySelectorAll('*')];
  const worst = document.querySelector('table.worst');
  const live = document.querySelector('table.live');
  return {
    pwned: typeof window.PWNED,
    foreign: all.map((e) => e.tagName.toLowerCase())
      .filter((t) => ['script', 'img', 'iframe', 'object', 'embed', 'a', 'foreignobject'].includes(t)),
    handlers: all.flatMap((e) => [...e.attributes]
      .filter((a) => a.name.startsWith('on') || /^\\s*javascript:/i.test(a.value))
      .map((a) => e.tagName + ' ' + a.name)),
    charts: document.querySelectorAll('svg').length,
    figures: document.querySelectorAll('figure').length,
    live: {session: column(live, 0), user: column(live, 1)},
    worst: {session: column(worst, 1), id: column(worst, 2),
            summary: text(document.querySelector('#worst-sessions p.summary'))},
    breakdowns: Object.fromEntries(['device', 'network_type', 'data_center'].map((dim) => {
      const figure = document.getElementById('breakdown-' + dim.replace('_', '-'));
      return [dim, {
        tooltips: [...figure.querySelectorAll('text.cat > title')].map((t) => t.textContent),
        table: column(figure.querySelector('details table'), 0),
        summary: text(figure.querySelector('figcaption')),
      }];
    })),
    run: [...document.querySelectorAll('p.summary')].map((p) => p.textContent)
      .filter((t) => t.startsWith('Latest pipeline run')),
  };
})()""".replace("PWNED", PWNED)


def _clear_of_3_and_4(fd: int) -> int:
    """``fd`` moved to 10 or above, where redirecting fds 3 and 4 in the child cannot clobber it."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class DevTools:
    """One headless Chromium and one page in it, over the DevTools pipe."""

    def __init__(self, binary: str, profile: Path, log: Path) -> None:
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()
        to_browser, from_browser = _clear_of_3_and_4(to_browser), _clear_of_3_and_4(from_browser)
        self._buffer = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        # The browser reads fd 3 and writes fd 4: bash (dash knows fds 0-9 only) puts the pipes' ends there.
        redirect = f"3<&{to_browser} 4>&{from_browser} {to_browser}<&- {from_browser}>&-"
        command = ["bash", "-c", f'exec "$@" {redirect}',
                   "bash", binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
                   "about:blank"]
        self.log = log
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                                            pass_fds=(to_browser, from_browser))
        os.close(to_browser)
        os.close(from_browser)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=self.session)

    def _message(self) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._in], [], [], max(left, 0))
            chunk = os.read(self._in, 1 << 16) if ready else b""
            if not chunk:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise AssertionError(f"Chromium did not answer ({'closed' if ready else 'timeout'}): {tail}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._id += 1
        request: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            request["sessionId"] = session
        os.write(self._out, json.dumps(request).encode() + b"\0")
        while True:
            message = self._message()
            if message.get("id") == self._id:
                assert "error" not in message, (method, message["error"])
                return message["result"]
            self.events.append(message)

    def open(self, page: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Load ``page``; the probe's answer and what the page said (console, errors, log)."""
        self.events.clear()
        self.call("Page.navigate", session=self.session, url=page.as_uri())
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._message())
        result = self.call("Runtime.evaluate", session=self.session, expression=PROBE, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        said = [e for e in self.events if e.get("method") in (
            "Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded")]
        return result["result"]["value"], said

    def close(self) -> None:
        try:
            self.call("Browser.close")
            self.process.wait(timeout=TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            os.close(self._in)
            os.close(self._out)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    """One browser for the module's pages (it starts in about a second)."""
    folder = tmp_path_factory.mktemp("chromium")
    tools = DevTools(chromium(), folder / "profile", folder / "chromium.log")
    try:
        yield tools
    finally:
        tools.close()


def hostile_report(request: pytest.FixtureRequest, folder: Path, *, named: bool) -> tuple[Path, Path]:
    """The report of the hostile world (SQLite), as written and without its CSP."""
    folder.mkdir()
    shutil.copyfile(request.getfixturevalue("sqlite_template_file"), folder / "warehouse.db")
    wh = Warehouse(f"sqlite:///{folder / 'warehouse.db'}")
    try:
        load_hostile(wh, named=named)
        path = build_report(wh, folder / "reports", now=datetime(2025, 3, 21, 12, tzinfo=UTC))
    finally:
        wh.dispose()
    text = path.read_text(encoding="utf-8")
    assert text.count(CSP) == 1
    open_page = folder / "without-csp.html"
    open_page.write_text(text.replace(CSP, ""), encoding="utf-8")
    return path, open_page


def check_page(page: dict[str, Any], named: bool) -> None:
    assert page["pwned"] == "undefined"  # no script from the data ran
    assert page["foreign"] == [] and page["handlers"] == []  # nor became an element or a handler
    assert page["charts"] == page["figures"] == 6  # no chart was closed early or a new one opened
    # and every name is the text it is
    if named:
        assert LIVE_SESSION_NAME in page["live"]["session"] and LIVE_USER_NAME in page["live"]["user"]
        assert SESSION_NAME in page["worst"]["session"] and SESSION_NAME in page["worst"]["summary"]
        for dim, value in BREAKDOWN_VALUES.items():
            shown = page["breakdowns"][dim]
            assert value in shown["tooltips"] and value in shown["table"] and value in shown["summary"], dim
        assert len(page["run"]) == 1 and RUN_ID in page["run"][0]
    else:  # the ids stand in for the names
        assert page["live"] == {"session": [LIVE_SESSION_ID], "user": [LIVE_USER_ID]}
        assert "" in page["worst"]["session"] and SESSION_ID in page["worst"]["summary"]
    assert SESSION_ID in page["worst"]["id"]


@pytest.mark.parametrize("named", [True, False], ids=["named", "nameless"])
def test_hostile_names_are_text_in_headless_chromium(
    request: pytest.FixtureRequest, browser: DevTools, tmp_path: Path, named: bool
) -> None:
    written, without_csp = hostile_report(request, tmp_path / "world", named=named)
    page, said = browser.open(written)
    check_page(page, named)
    # nothing was blocked by the CSP (an injected script or handler would be) and nothing failed
    assert said == [], said
    page, _ = browser.open(without_csp)
    check_page(page, named)  # escaping alone keeps the page safe
