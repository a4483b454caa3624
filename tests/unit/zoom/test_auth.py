import jwt
import pytest
import requests

from zoom_qos.zoom.auth import RENEW_BEFORE_SECONDS, ZoomJwtAuth, make_jwt
from zoom_qos.zoom.errors import ZoomConfigError


def decode(token: str, secret: str = "s3cret") -> dict:
    return jwt.decode(token, secret, algorithms=["HS256"], options={"verify_exp": False})


def test_token_is_hs256_with_iss_iat_exp():
    token = make_jwt("api-key", "s3cret", now=1_000_000, ttl_seconds=1800)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = decode(token)
    assert claims["iss"] == "api-key"
    assert claims["iat"] <= 1_000_000 < claims["exp"] == 1_001_800


def test_wrong_secret_does_not_verify():
    token = make_jwt("api-key", "s3cret", now=1_000_000, ttl_seconds=1800)
    with pytest.raises(jwt.InvalidSignatureError):
        decode(token, "other")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_token_is_cached_then_renewed_before_expiry():
    clock = Clock(1_000_000)
    auth = ZoomJwtAuth("k", "s3cret", ttl_seconds=600, clock=clock)
    first = auth.token()
    clock.now += 600 - RENEW_BEFORE_SECONDS - 1
    assert auth.token() == first
    clock.now += 2
    renewed = auth.token()
    assert renewed != first and decode(renewed)["exp"] > decode(first)["exp"]
    assert auth.tokens_minted == 2


def test_invalidate_forces_a_new_token():
    clock = Clock(1_000_000)
    auth = ZoomJwtAuth("k", "s3cret", ttl_seconds=600, clock=clock)
    auth.token()
    auth.invalidate()
    clock.now += 1
    auth.token()
    assert auth.tokens_minted == 2


def test_bearer_header_and_no_secret_in_repr():
    auth = ZoomJwtAuth("k", "s3cret")
    request = auth(requests.Request("GET", "http://127.0.0.1/v2/x").prepare())
    assert request.headers["Authorization"].startswith("Bearer ")
    assert "s3cret" not in repr(auth) and auth.token() not in repr(auth)


@pytest.mark.parametrize("key,secret", [("", "s"), ("k", ""), (None, "s")])
def test_missing_credentials_are_a_clear_error(key, secret):
    with pytest.raises(ZoomConfigError, match="API key"):  # a setting to fix: permanent
        ZoomJwtAuth(key, secret)


@pytest.mark.parametrize("ttl", [RENEW_BEFORE_SECONDS, 0, "1800", None])
def test_a_token_lifetime_the_client_cannot_renew_in_time_is_refused(ttl):
    with pytest.raises(ZoomConfigError, match=f"'jwt_ttl_seconds' must be a number of seconds, more than "
                                              f"{RENEW_BEFORE_SECONDS}"):
        ZoomJwtAuth("k", "s3cret", ttl_seconds=ttl)
