"""Check the imported call-quality dashboard in a running Superset, as a user would see it.

Runs in Superset's own venv (it has selenium; Airflow's venv must not get Superset's
dependencies). Through the REST API: exactly one dashboard with our slug, and every chart of it
answers its saved query context with rows and no error. Then, logged in, headless Chromium
(Debian's ``chromium`` and ``chromium-driver``) opens the dashboard, waits until every chart has
drawn, fails on any chart showing an error or no data, and keeps a screenshot.

Prints one line per chart and ends with ``OK`` or exits 1 naming what failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

#: What each kind of chart has drawn once it has data (a selector inside the chart's holder).
_DRAWN = {
    "table": "tbody tr",
    "big_number_total": ".header-line",
    "echarts_timeseries_line": "canvas",
    "echarts_timeseries_bar": "canvas",
}
#: Text Superset shows in a chart that failed or came back empty.
_BAD_TEXT = ("No results were returned", "Data error", "Unexpected error", "There is no chart definition")

_STATE_JS = """
return [...document.querySelectorAll('[data-test-chart-id]')].map(h => {
  const alert = h.querySelector('[role=alert]');
  return {id: h.getAttribute('data-test-chart-id'), viz: h.getAttribute('data-test-viz-type'),
          text: h.innerText.slice(0, 2000), alert: alert ? alert.innerText : '',
          drawn: Object.fromEntries(Object.entries(arguments[0]).map(([k, s]) => [k, !!h.querySelector(s)])),
          loading: h.querySelectorAll('.loading').length};
});
"""


class Api:
    """Superset's REST API with a bearer token (``POST /api/v1/security/login``)."""

    def __init__(self, base: str, user: str, password: str) -> None:
        self.base = base.rstrip("/")
        body = {"username": user, "password": password, "provider": "db", "refresh": True}
        self.token = self.call("POST", "/api/v1/security/login", body)["access_token"]

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(self.base + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None)
        if body is not None:  # only with a body: on a bodiless GET Superset answers 400
            request.add_header("Content-Type", "application/json")
        if getattr(self, "token", None):
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:500]
            raise SystemExit(f"FAIL: {method} {path} answered {error.code}: {detail}") from None


def dashboard_id(api: Api, slug: str) -> int:
    query = urllib.parse.quote(f"(filters:!((col:slug,opr:eq,value:'{slug}')))")
    found = api.call("GET", f"/api/v1/dashboard/?q={query}")["result"]
    if len(found) != 1:
        raise SystemExit(f"FAIL: expected one dashboard with slug {slug!r}, Superset has {len(found)}")
    return int(found[0]["id"])


def check_chart_data(api: Api, dash: int) -> dict[int, str]:
    """Every chart's saved query context answers rows; returns chart id -> name."""
    listed = api.call("GET", f"/api/v1/dashboard/{dash}/charts")["result"]
    charts = {int(c["id"]): c["slice_name"] for c in listed}
    failed = []
    for chart_id, name in sorted(charts.items()):
        result = api.call("GET", f"/api/v1/chart/{chart_id}/data/?format=json")["result"][0]
        ok = result.get("error") is None and (result.get("rowcount") or 0) > 0
        print(f"  data  {'ok ' if ok else 'BAD'} {result.get('rowcount')!s:>5} rows  {name}", flush=True)
        if not ok:
            failed.append(f"{name}: rowcount {result.get('rowcount')}, error {result.get('error')}")
    if failed:
        raise SystemExit("FAIL: chart data through the REST API:\n  " + "\n  ".join(failed))
    return charts


def check_in_browser(base: str, user: str, password: str, slug: str, charts: dict[int, str],
                     screenshot: Path, timeout: float) -> None:
    from selenium import webdriver  # Superset's venv has selenium; imported only for this step
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1200",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"{base}/login/")
        driver.find_element(By.ID, "username").send_keys(user)
        driver.find_element(By.ID, "password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        deadline = time.monotonic() + 30
        while "/login" in driver.current_url and time.monotonic() < deadline:
            time.sleep(0.2)
        if "/login" in driver.current_url:
            raise SystemExit("FAIL: could not log in to Superset in the browser")
        driver.get(f"{base}/superset/dashboard/{slug}/?standalone=1")
        # A window as tall as the page: every chart is on screen, so every chart is drawn.
        time.sleep(2)
        height = int(driver.execute_script("return document.body.scrollHeight"))
        driver.set_window_size(1600, max(1200, height + 100))
        states = _wait_drawn(driver, charts, timeout)
        driver.set_window_size(1600, int(driver.execute_script("return document.body.scrollHeight")) + 40)
        time.sleep(1)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    for state in states:
        print(f"  drawn ok  {state['viz']:<24} {charts[int(state['id'])]}")
    print(f"  screenshot: {screenshot}")


def _wait_drawn(driver: Any, charts: dict[int, str], timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    problems = ["the dashboard did not show"]
    while time.monotonic() < deadline:
        states = driver.execute_script(_STATE_JS, _DRAWN)
        problems = _problems(states, charts)
        if not problems:
            return list(states)
        if any("error" in p for p in problems):
            break  # an error does not go away by waiting
        time.sleep(1)
    raise SystemExit("FAIL: in the browser:\n  " + "\n  ".join(problems))


def _problems(states: list[dict[str, Any]], charts: dict[int, str]) -> list[str]:
    shown = {int(s["id"]) for s in states}
    problems = [f"{charts[c]}: not on the page" for c in sorted(set(charts) - shown)]
    for s in states:
        name = charts.get(int(s["id"]), s["id"])
        bad = next((t for t in _BAD_TEXT if t in s["text"]), None)
        if s["alert"] or bad:
            problems.append(f"{name}: shows an error: {(s['alert'] or bad)[:300]}")
        elif s["loading"] or not s["drawn"].get(s["viz"], False):
            problems.append(f"{name}: not drawn yet ({s['viz']})")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8088")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", required=True)
    parser.add_argument("--slug", default="zoom-call-quality")
    parser.add_argument("--expect-charts", type=int, required=True)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    api = Api(args.url, args.user, args.password)
    dash = dashboard_id(api, args.slug)
    charts = check_chart_data(api, dash)
    if len(charts) != args.expect_charts:
        raise SystemExit(f"FAIL: the dashboard has {len(charts)} charts, the bundle {args.expect_charts}")
    if args.screenshot:
        check_in_browser(args.url, args.user, args.password, args.slug, charts, args.screenshot, args.timeout)
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
