"""Video SDK REST authentication: short-lived HS256 JWTs signed with the API secret.

Zoom documents no OAuth for ``/videosdk``; each request carries ``Bearer <JWT>`` whose
``iss`` is the Video SDK *API key*. Tokens are minted locally, cached, renewed shortly before
they expire and dropped on demand when Zoom answers 401/124, so a long extraction never
sends an expired token twice.

Nothing here imports Airflow: whoever runs the client under Airflow passes ``on_secret``
(Airflow's ``mask_secret``), which is told the API secret and every token minted, so that log
lines never show them.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable

import jwt
import requests
from jwt.warnings import InsecureKeyLengthWarning

from zoom_qos.zoom.errors import ZoomConfigError

# Zoom issues the secrets; their length is not ours to choose, so PyJWT's advice is noise.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)

# Zoom suggests lifetimes of at most an hour; half of that leaves room for clock skew.
DEFAULT_TTL_SECONDS = 1800
RENEW_BEFORE_SECONDS = 60
# Servers whose clock runs slightly behind ours would reject an ``iat`` in their future.
CLOCK_SKEW_SECONDS = 30


def make_jwt(api_key: str, api_secret: str, now: float, ttl_seconds: int) -> str:
    """One signed token; ``iat`` is back-dated by the skew allowance."""
    issued = int(now) - CLOCK_SKEW_SECONDS
    payload = {"iss": api_key, "iat": issued, "exp": int(now) + ttl_seconds}
    return jwt.encode(payload, api_secret, algorithm="HS256", headers={"typ": "JWT"})


class ZoomJwtAuth(requests.auth.AuthBase):
    """A ``requests`` auth that attaches a cached, self-renewing Video SDK JWT."""

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
        on_secret: Callable[[str], None] | None = None,
    ) -> None:
        """``on_secret`` is called with the API secret now and with each token when it is minted
        (before it is used), e.g. to have a log masker hide them; None when nothing masks logs.

        The key, the secret and ``ttl_seconds`` (the extra ``jwt_ttl_seconds``) are the Zoom
        connection's: a missing credential or a lifetime that is not a finite number of seconds
        above ``RENEW_BEFORE_SECONDS`` raises ``ZoomConfigError`` (permanent), naming the field,
        never its value."""
        if not api_key or not api_secret or not isinstance(api_key, str) or not isinstance(api_secret, str):
            raise ZoomConfigError(
                "The Zoom connection needs the Video SDK API key as login and the API secret "
                "as password: set both (App Marketplace > your Video SDK app > API keys)."
            )
        if (isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int | float)
                or not math.isfinite(ttl_seconds) or ttl_seconds <= RENEW_BEFORE_SECONDS):
            raise ZoomConfigError(
                f"Connection extra 'jwt_ttl_seconds' must be a number of seconds, more than "
                f"{RENEW_BEFORE_SECONDS} (tokens are renewed {RENEW_BEFORE_SECONDS} s before they "
                f"expire), got {ttl_seconds!r}: raise it, or remove it to use {DEFAULT_TTL_SECONDS}.")
        self._api_key = api_key
        self._api_secret = api_secret
        self._ttl = ttl_seconds
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.tokens_minted = 0
        self._on_secret = on_secret
        self._register(api_secret)

    def _register(self, value: str) -> None:
        if self._on_secret is not None:
            self._on_secret(value)

    def token(self) -> str:
        """The current token, minting a new one when it is missing or about to expire."""
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._expires_at - RENEW_BEFORE_SECONDS:
                self._token = make_jwt(self._api_key, self._api_secret, now, self._ttl)
                self._expires_at = now + self._ttl
                self.tokens_minted += 1
                self._register(self._token)
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token (Zoom said it is invalid); the next request mints anew."""
        with self._lock:
            self._token = None

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    def __repr__(self) -> str:  # never show the secret or token
        return f"ZoomJwtAuth(api_key={self._api_key!r})"
