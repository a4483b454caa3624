"""pipeline.extraction.BatchExtractor, the one extraction path, on a client that sends nothing.

The daily batches (``extract_batch``, through the operator) and the live poll are tested against
the simulator in tests/integration (test_operator.py, test_live_polls.py)."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from zoom_qos.pipeline.extraction import BatchExtractor


class FakeClient:
    """Pages of raw users per session; a session id in ``failing`` raises on its first page."""

    def __init__(self, pages: dict[str, list[tuple[int, list[bytes]]]], *, workers: int = 3,
                 key: str = "", failing: frozenset[str] = frozenset()) -> None:
        self.pages, self.failing = pages, failing
        self.settings = SimpleNamespace(max_concurrent_sessions=workers, pseudonymization_key=key)
        self.stats = SimpleNamespace(requests=0)
        self.asked: list[str] = []
        self._lock = threading.Lock()

    def iter_session_qos_pages(self, session_id: str, *, session_type: str = "past"):
        with self._lock:
            self.asked.append(f"{session_type}:{session_id}")
        if session_id in self.failing:
            raise RuntimeError(f"boom {session_id}")
        yield from self.pages.get(session_id, [(0, [])])


def user(uid: str, name: str = "Ann") -> bytes:
    return json.dumps({"id": uid, "name": name, "ip_address": "10.0.0.1", "user_qos": []}).encode()


def extractor(client: FakeClient, session_type: str = "past") -> BatchExtractor:
    return BatchExtractor(client, session_type=session_type)  # type: ignore[arg-type]


def test_every_item_is_read_and_handed_over_in_the_calling_thread():
    client = FakeClient({})
    caller = threading.get_ident()
    seen: list[tuple[str, int]] = []
    extractor(client).run([f"s{i}" for i in range(10)],
                          lambda s: (s, threading.get_ident()),
                          lambda r: seen.append((r[0], threading.get_ident())), total=10)
    assert sorted(s for s, _ in seen) == sorted(f"s{i}" for i in range(10))
    assert {thread for _, thread in seen} == {caller}


def test_after_a_failure_no_new_read_starts_and_the_failure_is_raised():
    started: list[str] = []

    def read(item: str) -> str:
        started.append(item)
        if item == "a":
            raise ValueError("a failed")
        return item

    done: list[str] = []
    with pytest.raises(ValueError, match="a failed"):
        extractor(FakeClient({}, workers=1)).run(["a", "b", "c"], read, done.append, total=3)
    assert started == ["a"] and done == []


def test_a_read_in_flight_when_another_fails_is_still_handed_over():
    b_finished = threading.Event()

    def read(item: str) -> str:
        if item == "a":  # fails once b, running beside it, has finished
            assert b_finished.wait(timeout=30)
            raise ValueError("a failed")
        b_finished.set()
        return item

    done: list[str] = []
    with pytest.raises(ValueError, match="a failed"):
        extractor(FakeClient({}, workers=2)).run(["a", "b"], read, done.append, total=2)
    assert done == ["b"]


def test_users_are_read_whole_as_of_the_last_pass_and_pseudonymized_with_a_key():
    pages = {"s1": [(0, [user("u1")]), (1, [user("u1"), user("u2", "Bob")]), (1, [user("u3")])]}
    plain = extractor(FakeClient(pages)).users("s1")
    assert [u["id"] for u in plain] == ["u1", "u2", "u3"] and plain[0]["name"] == "Ann"
    hidden = extractor(FakeClient(pages, key="k" * 16)).users("s1")
    assert [u["id"] for u in hidden] == ["u1", "u2", "u3"]
    assert all(u["name"] not in ("Ann", "Bob") and u["ip_address"] != "10.0.0.1" for u in hidden)


def test_the_session_type_is_asked_for_and_an_unsafe_id_is_never_sent():
    client = FakeClient({})
    live = extractor(client, "live")
    assert live.users("ok==") == [] and client.asked == ["live:ok=="]
    assert live.refused("a/../b") is not None and live.refused("sfk/aOFJSJSYhGwk1hnxgw==") is None
    assert client.asked == ["live:ok=="]


def test_a_failing_read_names_its_session():
    client = FakeClient({}, failing=frozenset({"bad"}))
    kept: list[Any] = []
    with pytest.raises(RuntimeError, match="boom bad"):
        extractor(client).run(["bad"], lambda s: extractor(client).users(s), kept.append, total=1)
    assert kept == []
