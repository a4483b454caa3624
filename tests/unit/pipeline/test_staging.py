"""A session's staging file: written page by page, published whole or not at all."""

from __future__ import annotations

import pytest

from zoom_qos.pipeline.staging import (
    StagedSessionWriter,
    read_staged_grades,
    read_staged_session,
    session_file,
    stage_grades,
    stage_unread_session,
)

SESSION = "sfk/aOFJSJSYhGwk1hnxgw=="


def test_users_are_read_back_lazily_in_order(tmp_path):
    folder = str(tmp_path)
    with StagedSessionWriter(folder, SESSION, "2026-01-01T00:00:00+00:00") as staged:
        staged.write([b'{"id": "a"}', b'{"id":\n"b"}'])  # a line break inside is whitespace
        staged.write([])
        staged.write([b'{"id": "c"}'])
        assert staged.commit() == 3
    header, users = read_staged_session(folder, SESSION)
    assert header == {"session_id": SESSION, "status": "ok", "fetched_at": "2026-01-01T00:00:00+00:00"}
    assert [u["id"] for u in users] == ["a", "b", "c"]
    assert [p.name for p in tmp_path.iterdir()] == [session_file(folder, SESSION).name]


def test_a_restart_discards_the_earlier_pass(tmp_path):
    folder = str(tmp_path)
    with StagedSessionWriter(folder, SESSION, "t") as staged:
        staged.write([b'{"id": "a"}', b'{"id": "b"}'])
        staged.restart()
        staged.write([b'{"id": "a"}'])
        assert staged.commit() == 1
    assert [u["id"] for u in read_staged_session(folder, SESSION)[1]] == ["a"]


def test_an_error_leaves_no_file_and_keeps_an_earlier_complete_one(tmp_path):
    folder = str(tmp_path)
    with StagedSessionWriter(folder, SESSION, "first") as staged:
        staged.write([b'{"id": "old"}'])
        staged.commit()
    with pytest.raises(RuntimeError), StagedSessionWriter(folder, SESSION, "second") as staged:
        staged.write([b'{"id": "new"}'])
        raise RuntimeError("Zoom went away")
    header, users = read_staged_session(folder, SESSION)
    assert header["fetched_at"] == "first" and [u["id"] for u in users] == ["old"]
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("status", ["pending", "unavailable"])
def test_an_unread_session_has_a_header_with_its_status_and_no_users(tmp_path, status):
    stage_unread_session(str(tmp_path), SESSION, "t", status, "Session does not exist.")
    header, users = read_staged_session(str(tmp_path), SESSION)
    assert header["status"] == status and header["error"] == "Session does not exist."
    assert header["fetched_at"] == "t" and list(users) == []


def test_grades_are_staged_beside_the_session_and_absent_when_not_read(tmp_path):
    folder = str(tmp_path)
    assert read_staged_grades(folder, SESSION) is None
    stage_grades(folder, SESSION, [{"id": "u1", "join_time": "2026-11-20T10:00:00Z", "audio_quality": "poor",
                                    "user_qos": [{"not": "kept"}]}])
    [entry] = read_staged_grades(folder, SESSION)
    assert entry["audio_quality"] == "poor" and entry["id"] == "u1" and "user_qos" not in entry
    assert read_staged_grades(folder, "another session") is None


def test_ids_that_differ_only_in_unsafe_characters_get_different_files(tmp_path):
    assert session_file(str(tmp_path), "a/b=") != session_file(str(tmp_path), "a+b=")
