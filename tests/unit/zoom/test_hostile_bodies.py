"""Zoom bodies built to hurt, served by a hostile local server (``tests/hostile_zoom.py``): each is
refused with a clear error in bounded memory and time, and nothing is left staged under a final
name. Ids built to hurt are in ``tests/integration/test_hostile_ids.py``."""

from __future__ import annotations

import itertools
import json
import tracemalloc
import zlib
from datetime import date

import pytest

from tests.conftest import zoom_connection_json
from tests.hostile_zoom import Answer, HostileZoom, Request, json_answer, repeated
from zoom_qos.core.errors import PermanentError
from zoom_qos.pipeline.staging import write_jsonl
from zoom_qos.zoom import client as client_module
from zoom_qos.zoom import transport
from zoom_qos.zoom.bodies import (
    MAX_BODY_BYTES,
    BodyError,
    BodyTooDeepError,
    BodyTooLargeError,
    capped_body,
)
from zoom_qos.zoom.client import ZoomClient
from zoom_qos.zoom.errors import MalformedPageError, PaginationError, RetriesExhaustedError, ZoomApiError
from zoom_qos.zoom.pagination import MAX_EMPTY_PAGES
from zoom_qos.zoom.published import HEAVY
from zoom_qos.zoom.settings import ZoomSettings

MiB = 1024 * 1024
FIFTY_MB = 50 * MiB
DEEP = 100_000
TOKEN = "tok-MUST-NOT-LEAK-4711"
DAY = date(2026, 11, 20)
FAST = {"daily_request_limit": 0, "heavy_requests_per_second": 10_000.0,
        "resource_intensive_requests_per_minute": 10_000.0, "backoff_base_seconds": 0.01,
        "max_retries": 2, "timeout_seconds": 5.0}


def make_client(zoom: HostileZoom, **extra: object) -> ZoomClient:
    return ZoomClient(ZoomSettings.from_extra({**FAST, **extra}), api_key="test-key",
                      api_secret="test-secret", base_url=zoom.base_url)


def list_sessions(client: ZoomClient) -> list[dict]:
    return list(client.iter_past_sessions(DAY, DAY))


def qos_pages(client: ZoomClient, session_id: str = "abc==") -> list:
    return list(client.iter_session_qos_pages(session_id))


def is_qos(request: Request) -> bool:
    return request.path.startswith("/v2/videosdk/sessions/") and request.path.endswith("/users/qos")


@pytest.fixture
def taken(monkeypatch) -> list[int]:
    """The bytes the client takes from each 200 body's stream, one entry per body."""
    counts: list[int] = []
    real = transport.capped_body

    def counting(chunks, **kwargs):
        counts.append(0)

        def each():
            for chunk in chunks:
                counts[-1] += len(chunk)
                yield chunk

        return real(each(), **kwargs)

    monkeypatch.setattr(transport, "capped_body", counting)
    return counts


def peak_bytes(work) -> tuple[BaseException, int]:
    """The error ``work()`` raised and the peak of traced allocations meanwhile."""
    tracemalloc.start()
    try:
        work()
    except Exception as error:  # returned for the test to judge
        raised: BaseException = error
    else:
        raise AssertionError("expected an error")
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return raised, peak


# --- size ------------------------------------------------------------------------------------------
def test_the_cap_is_what_a_zoom_page_can_be_and_less_than_50_mb():
    # the arithmetic of the comment on MAX_BODY_BYTES: 10 users, 30 hours of one sample a minute
    assert 10 * 30 * 60 * 2_217 < MAX_BODY_BYTES < FIFTY_MB


def test_capped_body_reads_up_to_the_limit_and_refuses_one_byte_more():
    assert capped_body([b"ab", b"cd"], declared_length=None, where="GET x", limit=4) == b"abcd"
    with pytest.raises(BodyTooLargeError, match="past the limit after 5 bytes"):
        capped_body([b"ab", b"cd", b"e"], declared_length=None, where="GET x", limit=4)


def test_a_declared_length_over_the_limit_is_refused_before_a_byte_is_read():
    def never():
        raise AssertionError("the body was read")
        yield b""

    with pytest.raises(BodyTooLargeError, match="declares 5 bytes") as refused:
        capped_body(never(), declared_length="5", where="GET http://h/v2/x", limit=4)
    assert isinstance(refused.value, PermanentError) and "GET http://h/v2/x" in str(refused.value)
    # a Content-Length that is no number is left to the transport (which checks it)
    assert capped_body([b"ab"], declared_length="junk", where="GET x", limit=4) == b"ab"


def test_a_50_mb_body_stops_at_the_cap_in_bounded_memory_and_is_not_retried(taken):
    with HostileZoom(lambda r: Answer(body=repeated(b" " * transport.READ_CHUNK_BYTES, FIFTY_MB))) as zoom:
        client = make_client(zoom)
        error, peak = peak_bytes(
            lambda: client.get_json("videosdk/sessions", {"next_page_token": TOKEN}, HEAVY))
    assert isinstance(error, BodyTooLargeError) and isinstance(error, PermanentError)
    assert len(zoom.requests) == 1  # not retried: the same request brings the same body
    assert MAX_BODY_BYTES < taken[0] <= MAX_BODY_BYTES + transport.READ_CHUNK_BYTES  # stopped at the cap
    assert peak < MAX_BODY_BYTES + 8 * MiB, f"{peak:,} bytes traced"
    message = str(error)
    assert f"GET {zoom.base_url}/videosdk/sessions" in message and f"{MAX_BODY_BYTES:,} bytes" in message
    assert TOKEN not in message and "next_page_token" not in message and "not retried" in message


def test_a_declared_50_mb_is_refused_before_reading(taken):
    # headers only: a client that read would wait for the body and time out instead
    with HostileZoom(lambda r: Answer(body=b"", length=FIFTY_MB)) as zoom:
        with pytest.raises(BodyTooLargeError, match=f"declares {FIFTY_MB:,} bytes"):
            qos_pages(make_client(zoom, timeout_seconds=2.0))
    assert taken == [0] and len(zoom.requests) == 1


def test_a_gzip_bomb_is_capped_on_its_decoded_size(taken):
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    bomb = b"".join(packer.compress(b" " * MiB) for _ in range(50)) + packer.flush()
    assert len(bomb) < MiB  # 50 MiB of spaces in ~50 KB on the wire
    with HostileZoom(lambda r: Answer(body=bomb, headers={"Content-Encoding": "gzip"})) as zoom:
        error, peak = peak_bytes(lambda: qos_pages(make_client(zoom)))
    assert isinstance(error, BodyTooLargeError) and "went past the limit" in str(error)
    chunk = transport.READ_CHUNK_BYTES
    assert len(zoom.requests) == 1 and MAX_BODY_BYTES < taken[0] <= MAX_BODY_BYTES + chunk
    assert peak < MAX_BODY_BYTES + 8 * MiB, f"{peak:,} bytes traced"


def test_an_error_answer_is_read_no_further_than_zoom_s_code_and_message():
    huge = json.dumps({"code": 300, "message": "x" * FIFTY_MB}).encode()
    with HostileZoom(lambda r: Answer(400, huge)) as zoom:
        error, peak = peak_bytes(lambda: list_sessions(make_client(zoom)))
    assert isinstance(error, ZoomApiError) and error.status == 400 and len(zoom.requests) == 1
    assert len(str(error)) < 1_000
    assert peak < 8 * MiB, f"{peak:,} bytes traced"


# --- nesting ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("read, body", [
    (qos_pages, b'{"users":' + b"[" * DEEP + b"]" * DEEP + b"}"),
    (qos_pages, b'{"users":[' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"]}"),
    (list_sessions, b'{"a":' * DEEP + b"1" + b"}" * DEEP),
    (list_sessions, b'{"sessions":[' + b"[" * DEEP + b"]" * DEEP + b"]}"),
], ids=["qos-arrays", "qos-objects", "list-objects", "list-arrays"])
def test_a_deeply_nested_body_is_a_clear_error_at_once(read, body):
    with HostileZoom(lambda r: Answer(body=body)) as zoom:
        with pytest.raises(BodyTooDeepError, match="nested deeper than the decoder's limit") as refused:
            read(make_client(zoom))
    assert not isinstance(refused.value.__cause__, RecursionError)  # the message, not a traceback
    assert f"GET {zoom.base_url}/videosdk/sessions" in str(refused.value)
    assert len(zoom.requests) == 1  # refused at once, not retried


def test_a_truncated_body_by_contrast_is_retried():
    with HostileZoom(lambda r: Answer(body=b'{"users": [{"id": "u1"')) as zoom:
        with pytest.raises(RetriesExhaustedError, match="not complete JSON"):
            qos_pages(make_client(zoom))
    assert len(zoom.requests) == 3  # max_retries = 2


# --- paging ----------------------------------------------------------------------------------------
def test_a_token_that_comes_back_forever_stops_at_its_first_repeat():
    page = {"sessions": [{"id": "s1"}], "next_page_token": TOKEN}
    with HostileZoom(lambda r: json_answer(page)) as zoom:
        with pytest.raises(PaginationError, match="already returned") as stopped:
            list_sessions(make_client(zoom))
    assert len(zoom.requests) == 2 and TOKEN not in str(stopped.value)
    assert "past sessions 2026-11-20..2026-11-20" in str(stopped.value)


@pytest.mark.parametrize("read, field, check", [(qos_pages, "users", is_qos),
                                                (list_sessions, "sessions", lambda r: True)])
def test_new_tokens_on_empty_pages_forever_stop_after_a_bounded_run(read, field, check):
    counter = itertools.count()

    def answer(request: Request) -> Answer | None:
        if not check(request):
            return None
        return json_answer({field: [], "next_page_token": f"{TOKEN}-{next(counter)}"})

    with HostileZoom(answer) as zoom:
        with pytest.raises(PaginationError, match=f"{MAX_EMPTY_PAGES} empty pages in a row") as stopped:
            read(make_client(zoom))
    assert len(zoom.requests) == MAX_EMPTY_PAGES and TOKEN not in str(stopped.value)


def test_a_page_with_a_user_resets_the_empty_run():
    counter = itertools.count()

    def answer(request: Request) -> Answer:
        n = next(counter)
        users = [{"id": f"u{n}"}] if n % MAX_EMPTY_PAGES == MAX_EMPTY_PAGES - 2 else []
        token = f"t{n}" if n < 2 * MAX_EMPTY_PAGES else ""
        return json_answer({"users": users, "next_page_token": token})

    with HostileZoom(answer) as zoom:
        pages = qos_pages(make_client(zoom))
    assert sum(len(users) for _, users in pages) == 2 and len(zoom.requests) == 2 * MAX_EMPTY_PAGES + 1


def test_new_tokens_with_users_forever_stop_at_the_session_page_cap(monkeypatch):
    counter = itertools.count()
    monkeypatch.setattr(client_module, "MAX_SESSION_JOINS", 30)  # 30 joins: 4 pages of 10
    with HostileZoom(lambda r: json_answer({"users": [{"id": "u"}], "next_page_token": f"t{next(counter)}"})
                     ) as zoom:
        client = make_client(zoom)
        with pytest.raises(PaginationError, match="stopped after 4 pages"):
            qos_pages(client)
    assert len(zoom.requests) == 4
    monkeypatch.undo()
    # at Zoom's maxima: 5,000 users joining ten times each, 10 to a page; the listing keeps MAX_PAGES
    assert client._paginator(10).max_pages == 5_001 and client._paginator().max_pages == 100_000


# --- a list field that is not a list ---------------------------------------------------------------
@pytest.mark.parametrize("users, kind", [({"id": "u1"}, "object"), ("u1", "string"), (7, "number")])
def test_users_that_are_not_a_list_are_a_clear_error(users, kind):
    with HostileZoom(lambda r: json_answer({"users": users, "next_page_token": ""})) as zoom:
        with pytest.raises(MalformedPageError) as refused:
            qos_pages(make_client(zoom), "sfk/aOFJ==")
    error = refused.value
    assert error.session_id == "sfk/aOFJ==" and len(zoom.requests) == 1
    assert "HTTP 200" in str(error) and not isinstance(error, PermanentError)  # the task's retry may read it
    assert f"'users' is a JSON {kind}, not a list" in str(error) and "'sfk/aOFJ=='" in str(error)


# --- through the extraction task: it fails with the message, nothing staged under a final name ----
@pytest.fixture
def hostile_batch(tmp_path, monkeypatch):
    """Runs the extraction operator on one session against a hostile server's ``handler``."""
    from zoom_qos.operators import ZoomSessionQosOperator

    def run(handler) -> tuple[BaseException, HostileZoom, list[str]]:
        batch = {"index": 0, "sessions_uri": (tmp_path / "sessions.jsonl").as_uri(),
                 "qos_uri": (tmp_path / "qos").as_uri(), "sessions": 1}
        write_jsonl(batch["sessions_uri"], [{"id": "abc==", "start_time": "2026-11-20T10:00:00Z",
                                              "end_time": "2026-11-20T11:00:00Z"}])
        with HostileZoom(handler) as zoom:
            monkeypatch.setenv("AIRFLOW_CONN_ZOOM_VIDEOSDK", zoom_connection_json(zoom.base_url, **FAST))
            with pytest.raises(Exception) as failed:
                ZoomSessionQosOperator(task_id="extract_qos", batch=batch).execute(context={})
        staged = sorted(p.name for p in (tmp_path / "qos").iterdir()) if (tmp_path / "qos").exists() else []
        return failed.value, zoom, staged

    return run


@pytest.mark.parametrize("body, expected, message", [
    (b'{"users":' + b"[" * DEEP + b"]" * DEEP + b"}", BodyTooDeepError, "nested deeper"),
    (b'{"users": {"id": "u1"}, "next_page_token": ""}', MalformedPageError, "'users' is a JSON object"),
], ids=["nested", "users-object"])
def test_the_extraction_fails_with_the_message_and_stages_nothing(hostile_batch, body, expected, message):
    from airflow.sdk.exceptions import AirflowFailException

    error, zoom, staged = hostile_batch(lambda r: Answer(body=body) if is_qos(r) else None)
    if expected is BodyTooDeepError:  # the same bytes would come back: the task fails at once
        assert isinstance(error, AirflowFailException)
        error = error.__cause__
    assert isinstance(error, expected) and message in str(error)
    assert isinstance(error, BodyError) == (expected is BodyTooDeepError)
    assert len(zoom.requests) == 1
    # the attempt's request counts, never a session file (final or partial) or an index entry
    assert not [name for name in staged if not name.startswith("stats-")], staged
