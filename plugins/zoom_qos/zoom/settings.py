"""The client's tuning knobs: the Zoom connection's extras, typed and checked before any request.

Each default is defined once: where a lower module owns the fact (Zoom's page-token lifetime in
``pagination``, the backoff in ``retry``, the JWT lifetime in ``auth``, the page-size maxima in
``published``) the field refers to it; the rest are defined here. Each numeric extra's allowed
range is written next to its field (``_within``, ``_page_size``) and checked by ``from_extra``.
Whatever is wrong with an extra (its type, its range), it is refused with ``ZoomConfigError``
(a ``SettingsError``, so permanent: the task fails without retrying).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from zoom_qos.core.flags import parse_bool
from zoom_qos.zoom.auth import DEFAULT_TTL_SECONDS, RENEW_BEFORE_SECONDS
from zoom_qos.zoom.errors import ZoomConfigError
from zoom_qos.zoom.pagination import (
    DEFAULT_MAX_RESTARTS,
    DEFAULT_TOKEN_SAFETY_SECONDS,
    ZOOM_PAGE_TOKEN_TTL_SECONDS,
)
from zoom_qos.zoom.published import SESSION_QOS, SESSION_USERS, SESSIONS, Endpoint
from zoom_qos.zoom.retry import DEFAULT_BASE_SECONDS, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_TOTAL_SECONDS

_T = TypeVar("_T")
#: The keys of a field's metadata that ``from_extra`` checks: its ``Bounds``, or the endpoint
#: whose published maximum bounds a page size.
_BOUNDS = "bounds"
_ENDPOINT = "endpoint"
#: Far above any plan's daily cap (Business+ 60,000): a larger count of requests is a typo.
_MAX_DAILY_REQUESTS = 10_000_000


class Bounds(NamedTuple):
    """The values a numeric extra may take: ``low`` to ``high``, both included, or more than
    ``low`` when ``above`` (a rate or a timeout of 0 means nothing, unlike a count of 0)."""

    low: float
    high: float
    above: bool = False

    def allows(self, value: float) -> bool:
        """Whether ``value`` lies within; NaN compares false with everything, so it never does."""
        return (value > self.low if self.above else value >= self.low) and value <= self.high

    def describe(self) -> str:
        """The range in words, as the refusal names it."""
        if self.above:
            return f"more than {_number(self.low)} and at most {_number(self.high)}"
        return f"from {_number(self.low)} to {_number(self.high)}"


def _number(value: float) -> str:
    """``value`` as a person writes it in a message: 10,000 and 0.5, not 10000.0."""
    return f"{int(value):,}" if math.isfinite(value) and float(value).is_integer() else f"{value:g}"


def _within(default: _T, low: float, high: float, *, above: bool = False) -> _T:
    """A field whose extra must lie in ``Bounds(low, high, above)``: the range is written once,
    next to the field, and ``from_extra`` refuses a value outside it before any request."""
    return dataclasses.field(default=default, metadata={_BOUNDS: Bounds(low, high, above)})


def _page_size(endpoint: Endpoint) -> int:
    """A page-size field: 1 to ``endpoint``'s published maximum, which is also its default."""
    return dataclasses.field(default=endpoint.max_page_size, metadata={_ENDPOINT: endpoint})


@dataclass(frozen=True)
class ZoomSettings:
    """Tuning knobs, read from the connection's extras (same names).

    Defaults are Zoom's Business+ rate limits; a Pro account sets
    ``heavy_requests_per_second: 10`` and ``resource_intensive_requests_per_minute: 10``.
    Page sizes default to the maxima of Zoom's published definition (``published.py``); a larger
    value is refused when the connection is read, since Zoom would refuse every request (400/300).
    """

    list_page_size: int = _page_size(SESSIONS)
    qos_page_size: int = _page_size(SESSION_QOS)
    users_page_size: int = _page_size(SESSION_USERS)
    # Also read GET /videosdk/sessions/{id}/users for the per-join quality grades (one more Heavy
    # request per session and 300 joins; see docs/budget.md, "What a day costs").
    read_user_grades: bool = False
    # Rates: 0 would never send a request; the maxima are far above any plan's (tests pace at
    # 10,000 to not wait at all).
    heavy_requests_per_second: float = _within(40.0, 0, 10_000, above=True)
    resource_intensive_requests_per_minute: float = _within(20.0, 0, 10_000, above=True)
    # Per request; an hour is already far longer than any answer Zoom gives.
    timeout_seconds: float = _within(60.0, 0, 3_600, above=True)
    # Sessions read at the same time by one extraction task (pages of a session stay in order);
    # each is a thread and a pooled connection, so a few hundred is the most that makes sense.
    max_concurrent_sessions: int = _within(16, 1, 256)
    # Retries after the first try (0: never retry), and what they may wait in all.
    max_retries: int = _within(DEFAULT_MAX_ATTEMPTS, 0, 100)
    retry_max_total_seconds: float = _within(DEFAULT_MAX_TOTAL_SECONDS, 0, 86_400, above=True)
    backoff_base_seconds: float = _within(DEFAULT_BASE_SECONDS, 0, 600, above=True)
    # Zoom's tokens live 900 s: a longer lifetime would send tokens Zoom has expired. The safety
    # margin must also stay below the lifetime (checked in from_extra).
    page_token_ttl_seconds: float = _within(ZOOM_PAGE_TOKEN_TTL_SECONDS, 0, ZOOM_PAGE_TOKEN_TTL_SECONDS,
                                            above=True)
    page_token_safety_seconds: float = _within(DEFAULT_TOKEN_SAFETY_SECONDS, 0, ZOOM_PAGE_TOKEN_TTL_SECONDS,
                                               above=True)
    # 0: a list whose token expires fails at once.
    max_page_restarts: int = _within(DEFAULT_MAX_RESTARTS, 0, 100)
    # The client renews a token RENEW_BEFORE_SECONDS before it expires, so it must live longer;
    # a token valid for more than a day is only a larger risk if it leaks.
    jwt_ttl_seconds: int = _within(DEFAULT_TTL_SECONDS, RENEW_BEFORE_SECONDS, 86_400, above=True)
    # True, False, or the path of a CA bundle; passed with every request (see client.py).
    verify: bool | str = True
    # Shared pacing across tasks and workers (see docs/budget.md, "Rate limits"); empty = per process.
    rate_limit_redis_url: str = ""
    # Set to pseudonymize user names, IP addresses and user keys (see privacy.py); off when empty.
    pseudonymization_key: str = ""
    # After Zoom's daily cap resets, wait this long before resuming (not on the dot with everyone).
    # 0 resumes on the dot; more than an hour only loses the day's requests.
    daily_limit_resume_delay_seconds: float = _within(30.0, 0, 3_600)
    # Zoom's daily cap shared by all endpoints (Business+ 60,000; Pro accounts set 30,000; 0 turns
    # tracking off), see budget.py and docs/budget.md.
    daily_request_limit: int = _within(60_000, 0, _MAX_DAILY_REQUESTS)
    # What backfills and range reloads leave of the cap to scheduled runs. A run reads its own
    # day's sessions (the lookback day's are loaded already) and lists two days: about sessions
    # + 2 × ⌈sessions/300⌉ requests. 10,000 covers the daily run of an account with up to ~9,500
    # single-page sessions a day, with room for a backfill's listings (which count as a scheduled
    # run's), and leaves a backfill 50,000 a day on Business+ (20,000 on Pro). Busier accounts
    # raise it to about their scheduled run's requests.
    backfill_reserve_requests: int = _within(10_000, 0, _MAX_DAILY_REQUESTS)
    # Live polling's share of the cap (the zoom_videosdk_qos_live DAG), carved out of it first:
    # scheduled runs and backfills share daily_request_limit less this, and live polling may use
    # only this (0: live polling gets no requests). 3,000 is 5 % of Business+'s 60,000, 10 % of
    # Pro's 30,000. With backfill_reserve_requests it must stay below daily_request_limit.
    live_daily_request_budget: int = _within(3_000, 0, _MAX_DAILY_REQUESTS)

    @classmethod
    def from_extra(cls, extra: Mapping[str, object]) -> ZoomSettings:
        """The settings a connection's extras ask for; unknown keys are ignored (they belong to
        others); a value of the wrong type, or outside its field's range (a page size above Zoom's
        published maximum, a rate of 0, NaN), raises ``ZoomConfigError`` naming the key and what
        it must be: all before any request, so a task fails at once instead of sending requests
        that cannot work."""
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
                raise ZoomConfigError(
                    f"Connection extra {key!r} must be a {expected}, got {_shown(raw)}: set it to one, "
                    f"or remove it to use the default, {_shown(default)}.") from exc
        settings = cls(**values)
        for field in dataclasses.fields(cls):
            _check_field(field, getattr(settings, field.name))
        _check_token_margin(settings.page_token_ttl_seconds, settings.page_token_safety_seconds)
        return settings


def _shown(value: object) -> str:
    """``value`` for a message: a number as a person writes it, anything else its repr, cut short
    (an extra of the wrong type may be anything, a whole JSON document)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number(value)
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:80]}… ({len(text):,} characters)"


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
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise TypeError(type(raw).__name__)  # JSON true is no count, though Python says 1
    if isinstance(default, int):
        if isinstance(raw, float) and not raw.is_integer():
            raise ValueError(raw)  # 2.5 retries: refused, not cut down to 2 (nor NaN, inf)
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    raise TypeError(f"no conversion for a {type(default).__name__} setting")


def _check_field(field: dataclasses.Field[Any], value: Any) -> None:
    """Refuse ``value`` when it lies outside the range its field declares (``_within``,
    ``_page_size``); fields without one (flags, text) take anything of their type."""
    endpoint = field.metadata.get(_ENDPOINT)
    if endpoint is not None:
        _check_page_size(field.name, value, endpoint)
    bounds: Bounds | None = field.metadata.get(_BOUNDS)
    if bounds is not None and not bounds.allows(value):
        default = field.default
        shown = _number(default) if isinstance(default, int | float) else repr(default)
        raise ZoomConfigError(
            f"Connection extra {field.name!r} is {value!r}, but it must be {bounds.describe()}: "
            f"set it within that range, or remove it to use the default, {shown}."
        )


def _check_token_margin(ttl: float, safety: float) -> None:
    """A page token must have time left once the safety margin is taken off, or no list could get
    past its first page; the paginator would find out only at the first list, mid-run."""
    if safety >= ttl:
        raise ZoomConfigError(
            f"Connection extra 'page_token_safety_seconds' ({_number(safety)}) must be less than "
            f"'page_token_ttl_seconds' ({_number(ttl)}), or no page token could ever be sent: lower "
            f"it, or remove both to use {_number(DEFAULT_TOKEN_SAFETY_SECONDS)} and "
            f"{_number(ZOOM_PAGE_TOKEN_TTL_SECONDS)}."
        )


def _check_page_size(name: str, value: int, endpoint: Endpoint) -> None:
    maximum = endpoint.max_page_size
    if not 1 <= value <= maximum:
        raise ZoomConfigError(
            f"Connection extra {name!r} is {value}, but Zoom's published definition allows 1 to "
            f"{maximum} for GET /{endpoint.path} (a larger page_size is refused with HTTP 400): set it "
            f"to at most {maximum}, or remove it to use {maximum}."
        )
