"""A staging write that fails leaves nothing under a final name, and one no retry can cure (no
space, read-only) says where and why (zoom_qos.pipeline.staging)."""

from __future__ import annotations

import errno
import json

import pytest
from airflow.sdk import ObjectStoragePath

from zoom_qos.core.errors import PermanentError, StorageUnwritableError
from zoom_qos.pipeline.staging import (
    StagedSessionWriter,
    session_file,
    staged_cost,
    staged_index,
    write_index_part,
    write_jsonl,
    write_stats,
)

NO_SPACE = OSError(errno.ENOSPC, "No space left on device")


class FullDisk:
    """A file object whose writes fail as on a full disk, after ``room`` bytes."""

    def __init__(self, inner, room: int = 0) -> None:
        self.inner, self.room = inner, room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.inner.write(data)

    def close(self) -> None:
        self.inner.close()


def files(folder) -> list[str]:
    return sorted(p.name for p in ObjectStoragePath(folder).iterdir())


def test_a_full_disk_mid_session_fails_naming_the_file_and_leaves_no_file(tmp_path):
    folder = (tmp_path / "qos").as_uri()
    with pytest.raises(StorageUnwritableError) as raised:
        with StagedSessionWriter(folder, "abc==", "2026-11-30T00:00:00+00:00") as staged:
            staged.write([b'{"id": "u1"}'])
            staged._out = FullDisk(staged._out)
            staged.write([b'{"id": "u2"}'])
    message = str(raised.value)
    assert str(session_file(folder, "abc==")) in message
    assert "no space left on device (ENOSPC)" in message and "without retrying" in message
    assert files(folder) == []
    assert isinstance(raised.value, PermanentError)


def test_write_jsonl_that_runs_out_of_space_leaves_neither_file(tmp_path, monkeypatch):
    target = tmp_path / "sessions" / "batch-00000.jsonl"

    def records():
        yield {"id": "a"}
        raise NO_SPACE

    with pytest.raises(StorageUnwritableError, match="batch-00000.jsonl"):
        write_jsonl(target.as_uri(), records())
    assert list((tmp_path / "sessions").iterdir()) == []


def test_another_os_error_is_not_made_permanent_but_still_cleans_up(tmp_path):
    target = tmp_path / "sessions" / "batch-00000.jsonl"

    def records():
        yield {"id": "a"}
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError) as raised:
        write_jsonl(target.as_uri(), records())
    assert not isinstance(raised.value, StorageUnwritableError)
    assert list((tmp_path / "sessions").iterdir()) == []


def test_bookkeeping_ignores_another_writers_temporary_files(tmp_path):
    folder = (tmp_path / "qos").as_uri()
    write_index_part(folder, "seg", 0, {"a": 3})
    write_stats(folder, "seg", {"requests": 4})
    # What a writer that died mid-write leaves: a temporary name, half a JSON document.
    (tmp_path / "qos" / "index-seg-00001.json.0123456789ab.partial").write_text('{"b": ')
    (tmp_path / "qos" / "stats-other.json.0123456789ab.partial").write_text('{"requests": ')
    assert staged_index(folder) == {"a": 3}
    assert staged_cost(folder) == {"requests": 4}
    assert json.loads((tmp_path / "qos" / "index-seg-00000.json").read_text()) == {"a": 3}
