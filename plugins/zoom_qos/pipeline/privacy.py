"""Optional pseudonymization of personal data before anything is written.

With a key configured, user names, IP addresses and user keys are replaced by a keyed HMAC
(SHA-256) of their value as soon as they are read from Zoom, so neither staging, the raw layer
nor the warehouse ever holds them. The same person gets the same pseudonym in every session
and run (joins and counts still work), and without the key nobody can recompute it from a
guessed name. Changing the key changes every pseudonym.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any

from zoom_qos.zoom.errors import ZoomConfigError

PSEUDONYMIZED_FIELDS = ("name", "ip_address", "user_key")
PREFIX = "pseudo:"
#: The shortest key taken: a short key can be guessed, and with it every pseudonym recomputed.
MIN_KEY_LENGTH = 16


class Pseudonymizer:
    def __init__(self, key: str, fields: Iterable[str] = PSEUDONYMIZED_FIELDS) -> None:
        """``key`` is the Zoom connection's extra ``pseudonymization_key``: text of at least
        ``MIN_KEY_LENGTH`` characters, else ``ZoomConfigError`` (permanent; the key is never shown)."""
        if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
            what = "shorter" if isinstance(key, str) else f"a {type(key).__name__}, not text"
            raise ZoomConfigError(
                f"Connection extra 'pseudonymization_key' must be text of at least {MIN_KEY_LENGTH} "
                f"characters, but it is {what}: set a longer random key (changing it changes every "
                "pseudonym), or remove it to keep names, IP addresses and user keys as Zoom sends them.")
        self._key = key.encode()
        self.fields = tuple(fields)
        try:
            from airflow.sdk.log import mask_secret  # masked in Airflow's logs when there
        except ImportError:
            pass
        else:
            mask_secret(key)

    def pseudonym(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
        return PREFIX + digest[:32]

    def user(self, user: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of a Zoom user object with the personal fields replaced (empty values stay)."""
        out = dict(user)
        for field in self.fields:
            value = out.get(field)
            if value not in (None, "") and not (isinstance(value, str) and value.startswith(PREFIX)):
                out[field] = self.pseudonym(str(value))
        return out

    def __repr__(self) -> str:
        return f"Pseudonymizer(fields={self.fields!r})"
