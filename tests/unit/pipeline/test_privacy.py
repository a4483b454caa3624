import pytest

from zoom_qos.pipeline.privacy import PREFIX, Pseudonymizer
from zoom_qos.zoom.errors import ZoomConfigError

KEY = "a-long-enough-test-key-123"
USER = {"id": "u1", "name": "Ada Lovelace", "ip_address": "203.0.113.7", "user_key": "uk-1",
        "device": "Mac", "location": "London", "join_time": "2026-11-20T10:00:00Z"}


def test_personal_fields_are_replaced_and_others_kept():
    out = Pseudonymizer(KEY).user(USER)
    for field in ("name", "ip_address", "user_key"):
        assert out[field].startswith(PREFIX) and USER[field] not in out[field]
    assert {k: out[k] for k in ("id", "device", "location", "join_time")} == {
        k: USER[k] for k in ("id", "device", "location", "join_time")}


def test_stable_for_a_key_different_across_keys():
    a, b = Pseudonymizer(KEY), Pseudonymizer(KEY + "x")
    assert a.user(USER)["name"] == a.user(dict(USER))["name"]
    assert a.user(USER)["name"] != b.user(USER)["name"]


def test_idempotent_and_empty_values_untouched():
    p = Pseudonymizer(KEY)
    once = p.user(USER)
    assert p.user(once) == once
    assert p.user({"name": "", "ip_address": None})["name"] == ""


def test_short_keys_rejected_and_key_not_in_repr():
    with pytest.raises(ZoomConfigError, match="'pseudonymization_key' must be text of at least 16"):
        Pseudonymizer("short")
    assert KEY not in repr(Pseudonymizer(KEY))
