"""QoS pages split into raw users, and staged users decoded back."""

from __future__ import annotations

import json

import pytest

from zoom_qos.zoom.bodies import BodyError, decode_user, is_raw_object, json_object, raw_qos_page


def test_a_page_keeps_each_user_as_the_bytes_zoom_sent():
    users = [{"id": "u1", "name": "Ana", "user_qos": [{"date_time": "2026-01-01T00:00:00Z"}]},
             {"id": "u2", "name": "Bo\u00e9"}]
    body = json.dumps({"page_size": 2, "next_page_token": "t0k", "users": users}, ensure_ascii=False)
    page = raw_qos_page(body.encode())
    assert page["next_page_token"] == "t0k"
    assert [decode_user(u) for u in page["users"]] == users
    assert all(isinstance(u, bytes) for u in page["users"])


@pytest.mark.parametrize("body, token, users", [
    (b'{"users": []}', None, []),
    (b'{"next_page_token": ""}', "", None),
    (b'{"next_page_token": 7, "users": {"id": 1}}', 7, {"id": 1}),  # reported by the caller
])
def test_odd_but_valid_pages_are_passed_on_for_the_caller_to_judge(body, token, users):
    page = raw_qos_page(body)
    assert page["next_page_token"] == token and page["users"] == users


@pytest.mark.parametrize("body, reason", [
    (b'{"users": [{"id": 1}', "not complete JSON"),
    (b"", "not complete JSON"),
    (b"[1, 2]", "list instead of an object"),
    (b'"text"', "str instead of an object"),
])
def test_bodies_that_are_not_json_objects_are_retryable_errors(body, reason):
    with pytest.raises(BodyError, match=reason):
        raw_qos_page(body)
    with pytest.raises(BodyError, match=reason):
        json_object(body)


def test_valid_json_msgspec_refuses_takes_the_tolerant_path():
    # a lone surrogate escape is valid JSON for Python, not for msgspec
    body = b'{"users": [{"id": "u1", "name": "x\\ud800y"}], "next_page_token": ""}'
    page = raw_qos_page(body)
    (user,) = page["users"]
    assert b"\n" not in user and user.isascii()
    assert decode_user(user) == {"id": "u1", "name": "x\ud800y"}


def test_invalid_utf8_in_a_staged_user_is_replaced_not_fatal():
    assert decode_user(b'{"id": "u1", "name": "a\xffb"}') == {"id": "u1", "name": "a\ufffdb"}


@pytest.mark.parametrize("item, expected", [(b'{"a": 1}', True), (b' {"a": 1}', True), (b"3", False),
                                            (b'"s"', False), (b"[1]", False), (b"null", False)])
def test_only_objects_count_as_users(item, expected):
    assert is_raw_object(item) is expected


def test_a_decoded_user_keeps_its_text_for_the_raw_layer():
    from zoom_qos.warehouse.writers import json_serializer as _json_serializer

    line = b'{"id": "u1", "name": "Ren\xc3\xa9", "user_qos": [{"date_time": "2026-01-01T00:00:00Z"}]}\n'
    user = decode_user(line)
    assert user == json.loads(line) and user.json_text == line.decode().strip()
    assert _json_serializer(user) == user.json_text  # stored as sent, not encoded again


@pytest.mark.parametrize("line", [b'{"id": "u1", "name": "a\\u0000b"}',
                                  b'{"id": "u1", "n": "\\ud83d\\ude00"}'])
def test_text_with_escapes_is_encoded_again_so_jsonb_can_take_it(line):
    from zoom_qos.warehouse.writers import json_serializer as _json_serializer

    stored = _json_serializer(decode_user(line))
    assert "\\u0000" not in stored and json.loads(stored)["id"] == "u1"
