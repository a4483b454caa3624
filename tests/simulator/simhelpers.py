"""Helpers shared by the simulator's test modules: a JWT, id encoding as Zoom publishes it, crawls.

Kept apart from ``test_simulator.py`` (which has its own copies) so each new module can talk to a
simulator in a few words and stay about the behaviour it checks.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jwt
import requests

from include.zoom_simulator import Simulator, SimulatorConfig
from zoom_qos.zoom.published import Endpoint, needs_double_encoding, response_problems

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY, SECRET = "sim-key", "sim-secret-for-tests-0123456789abcdef"


def make_simulator(**overrides: Any) -> Simulator:
    """An unstarted simulator at NOW, rate limits off unless asked for."""
    settings: dict[str, Any] = {"api_key": KEY, "api_secret": SECRET, "seed": 42, "now": NOW,
                                "enforce_rate_limits": False, **overrides}
    return Simulator(SimulatorConfig(**settings), port=0)


def auth() -> dict[str, str]:
    now = int(time.time())
    token = jwt.encode({"iss": KEY, "iat": now, "exp": now + 3600}, SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def enc(session_id: str, times: int | None = None) -> str:
    """The id as one path segment: ``times`` times percent-encoded, or as the published rule says."""
    if times is None:
        times = 2 if needs_double_encoding(session_id) else 1
    for _ in range(times):
        session_id = quote(session_id, safe="")
    return session_id


def get(sim: Simulator, path: str, **params: Any) -> requests.Response:
    """GET ``path`` (relative to /v2, already encoded) with a valid JWT."""
    return requests.get(f"{sim.base_url}/{path}", params=params, headers=auth(), timeout=10)


def raw_get(sim: Simulator, path_and_query: str) -> requests.Response:
    """GET a raw path (no re-encoding by the client): for over-encoded paths."""
    root = sim.base_url.removesuffix("/v2")
    req = requests.Request("GET", f"{root}{path_and_query}", headers=auth()).prepare()
    req.url = f"{root}{path_and_query}"  # keep the escapes exactly as written
    with requests.Session() as s:
        return s.send(req, timeout=10)


def qos(sim: Simulator, session_id: str, times: int | None = None, **params: Any) -> requests.Response:
    params.setdefault("type", "past")
    return get(sim, f"videosdk/sessions/{enc(session_id, times)}/users/qos", **params)


def users(sim: Simulator, session_id: str, times: int | None = None, **params: Any) -> requests.Response:
    params.setdefault("type", "past")
    return get(sim, f"videosdk/sessions/{enc(session_id, times)}/users", **params)


def crawl(sim: Simulator, endpoint: Endpoint, path: str, problems: list[str] | None = None,
          **params: Any) -> list[dict[str, Any]]:
    """Every item of a paged list; each page's departures from the definition go to ``problems``."""
    items: list[dict[str, Any]] = []
    token = ""
    while True:
        r = get(sim, path, **params, **({"next_page_token": token} if token else {}))
        assert r.status_code == 200, r.text
        body = r.json()
        if problems is not None:
            problems.extend(response_problems(endpoint, body))
        items += body[endpoint.list_field]
        token = body.get("next_page_token") or ""
        if not token:
            return items
