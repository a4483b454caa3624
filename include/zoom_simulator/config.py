"""Configuration and fault switches for the Zoom Video SDK API simulator.

Kept separate from the server so tests and the CLI can build and validate both
without importing the HTTP machinery. Facts Zoom publishes (page-size maxima and defaults,
error codes) are not configurable here: the server takes them from ``zoom_qos.zoom.published``,
so the simulator cannot be configured into a Zoom that does not exist.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

#: The simulator's names of the endpoints it serves (``by_endpoint`` stats keys, ``forbidden_endpoints``).
ENDPOINT_LIST = "list_sessions"
ENDPOINT_QOS = "user_qos"
ENDPOINT_USERS = "session_users"
ENDPOINT_DAILY = "daily_report"
ENDPOINT_WEBHOOK_LOGS = "webhook_logs"
ENDPOINT_NAMES = (ENDPOINT_LIST, ENDPOINT_QOS, ENDPOINT_USERS, ENDPOINT_DAILY, ENDPOINT_WEBHOOK_LOGS)


@dataclass(frozen=True)
class SimulatorConfig:
    """Static settings of one simulator instance.

    Only what Zoom leaves open (token lifetime, range rules, rate-limit plan) or what a test
    needs to size (data volume, clock) is a field here.
    """

    api_key: str = "sim-key"
    api_secret: str = "sim-secret"
    seed: int = 42
    # Anchor of the simulated world (aware UTC). None = real time, fixed at construction.
    now: datetime | None = None
    sessions_per_day: int = 12
    page_token_ttl_seconds: float = 900.0
    heavy_rate_per_second: float = 40.0
    resource_intensive_per_minute: float = 20.0
    daily_limit: int = 60000
    enforce_rate_limits: bool = True
    # Zoom says "at most one month"; we read that as 31 days unless told otherwise.
    max_range_days: int = 31
    # Zoom keeps six months of past data; the dataset spans exactly this many days.
    history_days: int = 183
    # Serve HTTPS with this PEM certificate and key (both or neither; see ``tls.make_self_signed_cert``).
    # Zoom is HTTPS only: with TLS a new connection costs a handshake, which is what reuse saves.
    tls_cert: str | None = None
    tls_key: str | None = None
    # Simulated seconds per wall-clock second: 0 = frozen at `now`; s > 0 = the dataset's time is
    # now + elapsed × s, so live sessions grow (60 = a minute of samples per second). Tests move the
    # clock explicitly instead (Simulator.advance / set_now, POST /_sim/clock).
    clock_speed: float = 0.0
    # Scripted live sessions around `live_anchor` (see Dataset.live_scenarios): churn, degrading,
    # then sessions that end a few minutes after the anchor. 0 = none.
    live_scenarios: int = 3
    # Where the live sessions are placed; None = `now`. A frozen simulator at a later `now` with the
    # same anchor serves exactly what a running one serves once its clock gets there.
    live_anchor: datetime | None = None
    # Six scripted past sessions on the UTC day before the anchor's (``live_anchor``, else `now`),
    # each with known call-quality causes (see Dataset.quality_scenarios). Off: the data is as
    # without them (they come from their own RNG, so the other sessions are the same either way).
    quality_scenarios: bool = False
    # Values in a unit no loader knows ("23 furlongs"): Zoom sends none, so only tests of that path ask.
    unit_faults: bool = False
    # ~3 % of `duration` strings off end - start by over 60 s, as in the definition's example, not in data.
    duration_faults: bool = False
    # Seconds between the ends of the scripted "ending" live sessions (live_scenarios beyond 2).
    ending_every_seconds: float = 240.0
    # Zoom's side of webhooks (include/zoom_simulator/webhooks.py): with both set, every session
    # ending (and every alert) is POSTed, signed with the token, to the URL, with Zoom's retries.
    webhook_url: str | None = None
    webhook_secret_token: str | None = field(default=None, repr=False)
    # Wall seconds per second of Zoom's retry schedule (+5, +20, +60 min): 1/30 makes it 10 s, 40 s, 2 min.
    webhook_time_scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.clock_speed < float("inf"):
            raise ValueError("clock_speed must be a finite number >= 0")
        if self.live_scenarios < 0:
            raise ValueError("live_scenarios must be >= 0")
        if (self.webhook_url is None) != (self.webhook_secret_token is None):
            raise ValueError("webhook_url and webhook_secret_token go together: give both or neither")

    def resolved_now(self) -> datetime:
        """Return the start time as an aware UTC datetime truncated to the second."""
        return _utc_second(self.now if self.now is not None else datetime.now(UTC))

    def resolved_anchor(self, now: datetime) -> datetime:
        """Where the live sessions sit: ``live_anchor``, else ``now`` (the resolved start time)."""
        return _utc_second(self.live_anchor) if self.live_anchor is not None else now


def _utc_second(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def parse_utc(text: str) -> datetime:
    """An ISO-8601 time (``Z`` allowed; naive means UTC) as an aware UTC datetime."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


_BOOLS = ("daily_limit_exhausted", "retry_after_http_date", "expire_page_tokens", "not_videosdk_account")
_FLOATS = ("latency_ms", "daily_reset_seconds", "chaos_rate")
_ID_LISTS = ("gone_sessions", "invalid_sessions", "too_old_sessions")


@dataclass
class Faults:
    """Switchable misbehaviours; all off by default.

    "every N" counters count API requests (not control endpoints) since the faults
    were set, so a test can predict exactly which request misbehaves.
    """

    latency_ms: float = 0.0
    qps_429_every: int = 0
    bare_429_every: int = 0
    daily_limit_exhausted: bool = False
    retry_after_http_date: bool = False
    server_error_every: int = 0
    truncated_body_every: int = 0
    reset_connection_every: int = 0
    expire_page_tokens: bool = False
    expire_next_tokens: int = 0
    token_ttl_seconds: float | None = None
    gone_sessions: list[str] = field(default_factory=list)
    invalid_sessions: list[str] = field(default_factory=list)
    # 400/12702 "Can not access a session a year ago." for these ids (QoS and users lists).
    too_old_sessions: list[str] = field(default_factory=list)
    # session id -> how many QoS/users list requests for it answer 404/3001 ("not ended yet")
    # before it is served; counted per session since the faults were set.
    not_ready_sessions: dict[str, int] = field(default_factory=dict)
    # session id -> ISO UTC time (real clock): 404/3001 until then.
    not_ready_until: dict[str, str] = field(default_factory=dict)
    # Every API endpoint answers 400/200 "only available for Video SDK accounts".
    not_videosdk_account: bool = False
    # Endpoint names (ENDPOINT_NAMES) that answer 403: the app lacks the scope or plan.
    forbidden_endpoints: list[str] = field(default_factory=list)
    # "YYYY-MM-DD" -> number added to that day's `sessions` in the daily report.
    daily_report_offsets: dict[str, int] = field(default_factory=dict)
    expired_jwt_every: int = 0
    # After this many API requests, answer the Daily-limit 429 for daily_reset_seconds, then
    # serve normally again (a daily cap that "resets" within a test).
    daily_limit_after: int = 0
    daily_reset_seconds: float = 0.0
    # Chaos: each API request misbehaves with this probability, the misbehaviour drawn from a
    # seeded RNG among 429 (with and without headers), 5xx, truncated body, reset connection,
    # 401/124, expired page token (requests carrying one) and a latency spike.
    chaos_rate: float = 0.0
    chaos_seed: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faults:
        """Build from JSON-ish input, rejecting unknown names and wrong types so typos do not pass
        silently (a fault that silently does nothing makes a test pass for the wrong reason)."""
        if not isinstance(data, dict):
            raise ValueError("faults must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(unknown)}")
        return cls(**{name: _checked(name, value) for name, value in data.items()})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable copy (for the control endpoint)."""
        return dataclasses.asdict(self)

    def copy(self) -> Faults:
        """Deep-enough copy so callers cannot mutate the active switches behind our back."""
        return Faults.from_dict(self.to_dict())


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


def _string_list(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings")
    return list(value)


def _string_map(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{name} must be a JSON object keyed by strings")
    return dict(value)


def _checked(name: str, value: Any) -> Any:
    """One fault value, type-checked and copied."""
    if name in _BOOLS:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be a boolean")
        return value
    if name in _FLOATS:
        return float(value)
    if name == "token_ttl_seconds":
        return None if value is None else float(value)
    if name in _ID_LISTS:
        return _string_list(name, value)
    if name == "forbidden_endpoints":
        names = _string_list(name, value)
        wrong = sorted(set(names) - set(ENDPOINT_NAMES))
        if wrong:
            raise ValueError(f"{name}: unknown endpoint(s) {', '.join(wrong)}; "
                             f"known: {', '.join(ENDPOINT_NAMES)}")
        return names
    if name == "not_ready_sessions":
        return {k: _non_negative_int(f"{name}[{k!r}]", v) for k, v in _string_map(name, value).items()}
    if name == "not_ready_until":
        out = _string_map(name, value)
        for k, v in out.items():
            try:
                parse_utc(v)
            except (ValueError, TypeError, AttributeError):
                raise ValueError(f"{name}[{k!r}] must be an ISO-8601 time, got {v!r}") from None
        return out
    if name == "daily_report_offsets":
        out = _string_map(name, value)
        for k, v in out.items():
            try:
                if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", k):
                    raise ValueError(k)
                date.fromisoformat(k)
            except ValueError:
                raise ValueError(f"{name}: key {k!r} is not a YYYY-MM-DD date") from None
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{name}[{k!r}] must be an integer")
        return out
    return _non_negative_int(name, value)
