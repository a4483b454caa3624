"""The client's tuning knobs: the Zoom connection's extras, typed and checked before any request.

Each default is defined once: where a lower module owns the fact (Zoom's page-token lifetime in
``pagination``, the backoff in ``retry``, the JWT lifetime in ``auth``, the page-size maxima in
``published``) the field refers to it; the rest are defined here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zoom_qos.errors import ZoomConfigError
from zoom_qos.zoom.auth import DEFAULT_TTL_SECONDS
from zoom_qos.zoom.flags import parse_bool
from zoom_qos.zoom.pagination import (
    DEFAULT_MAX_RESTARTS,
    DEFAULT_TOKEN_SAFETY_SECONDS,
    ZOOM_PAGE_TOKEN_TTL_SECONDS,
)
from zoom_qos.zoom.published import SESSION_QOS, SESSION_USERS, SESSIONS, Endpoint
from zoom_qos.zoom.retry import DEFAULT_BASE_SECONDS, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_TOTAL_SECONDS


@dataclass(frozen=True)
class ZoomSettings:
    """Tuning knobs, read from the connection's extras (same names).

    Defaults are Zoom's Business+ rate limits; a Pro account sets
    ``heavy_requests_per_second: 10`` and ``resource_intensive_requests_per_minute: 10``.
    Page sizes default to the maxima of Zoom's published definition (``published.py``); a larger
    value is refused when the connection is read, since Zoom would refuse every request (400/300).
    """

    list_page_size: int = SESSIONS.max_page_size
    qos_page_size: int = SESSION_QOS.max_page_size
    users_page_size: int = SESSION_USERS.max_page_size
    # Also read GET /videosdk/sessions/{id}/users for the per-join quality grades (one more Heavy
    # request per session and 300 joins; see docs/budget.md, "What a day costs").
    read_user_grades: bool = False
    heavy_requests_per_second: float = 40.0
    resource_intensive_requests_per_minute: float = 20.0
    timeout_seconds: float = 60.0
    # Sessions read at the same time by one extraction task (pages of a session stay in order).
    max_concurrent_sessions: int = 16
    max_retries: int = DEFAULT_MAX_ATTEMPTS
    retry_max_total_seconds: float = DEFAULT_MAX_TOTAL_SECONDS
    backoff_base_seconds: float = DEFAULT_BASE_SECONDS
    page_token_ttl_seconds: float = ZOOM_PAGE_TOKEN_TTL_SECONDS
    page_token_safety_seconds: float = DEFAULT_TOKEN_SAFETY_SECONDS
    max_page_restarts: int = DEFAULT_MAX_RESTARTS
    jwt_ttl_seconds: int = DEFAULT_TTL_SECONDS
    # True, False, or the path of a CA bundle; passed with every request (see client.py).
    verify: bool | str = True
    # Shared pacing across tasks and workers (see docs/budget.md, "Rate limits"); empty = per process.
    rate_limit_redis_url: str = ""
    # Set to pseudonymize user names, IP addresses and user keys (see privacy.py); off when empty.
    pseudonymization_key: str = ""
    # After Zoom's daily cap resets, wait this long before resuming (not on the dot with everyone).
    daily_limit_resume_delay_seconds: float = 30.0
    # Zoom's daily cap shared by all endpoints (Business+ 60,000; Pro accounts set 30,000; 0 turns
    # tracking off), see budget.py and docs/budget.md.
    daily_request_limit: int = 60_000
    # What backfills and range reloads leave of the cap to scheduled runs. A run reads its own
    # day's sessions (the lookback day's are loaded already) and lists two days: about sessions
    # + 2 × ⌈sessions/300⌉ requests. 10,000 covers the daily run of an account with up to ~9,500
    # single-page sessions a day, with room for a backfill's listings (which count as a scheduled
    # run's), and leaves a backfill 50,000 a day on Business+ (20,000 on Pro). Busier accounts
    # raise it to about their scheduled run's requests.
    backfill_reserve_requests: int = 10_000
    # Live polling's share of the cap (the zoom_videosdk_qos_live DAG), carved out of it first:
    # scheduled runs and backfills share daily_request_limit less this, and live polling may use
    # only this (0: live polling gets no requests). 3,000 is 5 % of Business+'s 60,000, 10 % of
    # Pro's 30,000. With backfill_reserve_requests it must stay below daily_request_limit.
    live_daily_request_budget: int = 3_000

    @classmethod
    def from_extra(cls, extra: Mapping[str, object]) -> ZoomSettings:
        """The settings a connection's extras ask for; unknown keys are ignored (they belong to
        others), a value of the wrong type raises ``ValueError`` naming the key, and a page size
        above Zoom's published maximum raises ``ZoomConfigError``: both before any request."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}  # each checked by _typed against its field's default
        for key, raw in extra.items():
            if key not in known:
                continue
            default = known[key].default
            try:
                values[key] = _typed(key, raw, default)
            except (TypeError, ValueError) as exc:
                expected = "bool or a CA bundle path" if key == "verify" else type(default).__name__
                raise ValueError(f"Connection extra {key!r} must be a {expected}, got {raw!r}") from exc
        settings = cls(**values)
        for name, endpoint in _PAGE_SIZES.items():
            _check_page_size(name, getattr(settings, name), endpoint)
        return settings


def _typed(key: str, raw: object, default: object) -> object:
    """``raw`` as the type of the field's default; raises ``ValueError`` when it is not one."""
    if key == "verify":  # a boolean, or the path of a CA bundle
        flag = parse_bool(raw)
        if flag is not None:
            return flag
        if isinstance(raw, str) and raw.strip():
            return raw
        raise ValueError(raw)
    if isinstance(default, bool):
        flag = parse_bool(raw)
        if flag is None:
            raise ValueError(raw)
        return flag
    if isinstance(default, str):
        return str(raw)
    if not isinstance(raw, str | int | float):
        raise TypeError(type(raw).__name__)
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    raise TypeError(f"no conversion for a {type(default).__name__} setting")


#: Each page-size setting and the endpoint whose published maximum bounds it.
_PAGE_SIZES: dict[str, Endpoint] = {"list_page_size": SESSIONS, "qos_page_size": SESSION_QOS,
                                    "users_page_size": SESSION_USERS}


def _check_page_size(name: str, value: int, endpoint: Endpoint) -> None:
    maximum = endpoint.max_page_size
    if not 1 <= value <= maximum:
        raise ZoomConfigError(
            f"Connection extra {name!r} is {value}, but Zoom's published definition allows 1 to "
            f"{maximum} for GET /{endpoint.path} (a larger page_size is refused with HTTP 400): set it "
            f"to at most {maximum}, or remove it to use {maximum}."
        )
