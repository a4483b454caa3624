"""Configuration and fault switches for the Zoom Video SDK API simulator.

Kept separate from the server so tests and the CLI can build and validate both
without importing the HTTP machinery.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class SimulatorConfig:
    """Static settings of one simulator instance.

    Everything Zoom leaves unknown (page-size maxima, token lifetime, range rules) is a
    field here so the pipeline can be tested against each plausible variant.
    """

    api_key: str = "sim-key"
    api_secret: str = "sim-secret"
    seed: int = 42
    # Anchor of the simulated world (aware UTC). None = real time, fixed at construction.
    now: datetime | None = None
    sessions_per_day: int = 12
    list_page_size_default: int = 30
    list_page_size_max: int = 300
    qos_page_size_default: int = 10
    qos_page_size_max: int = 10
    page_token_ttl_seconds: float = 900.0
    heavy_rate_per_second: float = 40.0
    resource_intensive_per_minute: float = 20.0
    daily_limit: int = 60000
    enforce_rate_limits: bool = True
    # Zoom says "at most one month"; we read that as 31 days unless told otherwise.
    max_range_days: int = 31
    # Zoom keeps six months of past data; the dataset spans exactly this many days.
    history_days: int = 183

    def resolved_now(self) -> datetime:
        """Return the anchor time as an aware UTC datetime truncated to the second."""
        now = self.now if self.now is not None else datetime.now(UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return now.astimezone(UTC).replace(microsecond=0)


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
        """Build from JSON-ish input, rejecting unknown names so typos do not pass silently."""
        if not isinstance(data, dict):
            raise ValueError("faults must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if f.name in ("gone_sessions", "invalid_sessions"):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError(f"{f.name} must be a list of strings")
                kwargs[f.name] = list(value)
            elif f.name in ("daily_limit_exhausted", "retry_after_http_date", "expire_page_tokens"):
                if not isinstance(value, bool):
                    raise ValueError(f"{f.name} must be a boolean")
                kwargs[f.name] = value
            elif f.name in ("latency_ms", "daily_reset_seconds", "chaos_rate"):
                kwargs[f.name] = float(value)
            elif f.name == "token_ttl_seconds":
                kwargs[f.name] = None if value is None else float(value)
            else:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{f.name} must be a non-negative integer")
                kwargs[f.name] = value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable copy (for the control endpoint)."""
        return dataclasses.asdict(self)

    def copy(self) -> Faults:
        """Deep-enough copy so callers cannot mutate the active switches behind our back."""
        return Faults.from_dict(self.to_dict())
