"""Shared test builders: Zoom Video SDK payloads as the API returns them, and a concurrency helper.

- :func:`zoom_session`: a session object as ``GET /videosdk/sessions`` lists it;
- :func:`zoom_user`: a QoS user object as ``GET /videosdk/sessions/{id}/users/qos`` returns it,
  with its ``user_qos`` samples; :func:`qos_sample` builds one sample (its time and its blocks),
  :func:`stream_metrics` one stream block of a sample (``audio_input``, ``video_output``, ...);
- :func:`run_concurrently`: the same work in N threads released at once, errors re-raised.

Conventions, the same for every builder:

- a named argument taking a time (``join``, ``leave``, ``at``) writes a ``datetime`` as Zoom
  writes times (:func:`zoom_time`) and takes anything else as given, so the builders also make
  malformed payloads; :data:`ABSENT` leaves the field out (a session's ``start`` is a datetime:
  give a malformed one as ``start_time=``);
- any other keyword argument is a raw field of the object (``start_time``, ``join_time``,
  ``user_qos``, ``brand_new_field``, ...): set exactly as given after the builder's own values (a
  new field comes last), or left out when :data:`ABSENT`;
- every call builds new objects: a test may change what it got without touching another's.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, TypeVar

#: A session id as Zoom gives them: base64, with the ``/`` and ``=`` a URL path must escape.
SESSION_ID: Final = "sfk/aOFJSJSYhGwk1hnxgw=="
#: When the default session starts and the default user joins: 2025-03-01 10:00 UTC.
T0: Final = datetime(2025, 3, 1, 10, tzinfo=UTC)

T = TypeVar("T")


class _Marker:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: Give this for a field to leave it out of the object (as Zoom leaves out what it does not know).
ABSENT: Final = _Marker("ABSENT")
_NAMED_AFTER_ID: Final = _Marker("name-<user id>")  # zoom_user's default name

#: The fields the session list gives besides the six core ones (``zoom_session(details=True)``):
#: flags, session key and quality grades.
SESSION_DETAILS: Final = MappingProxyType({
    "has_voip": False,
    "has_video": True,
    "has_screen_share": False,
    "has_recording": False,
    "has_pstn": False,
    "session_key": "k1",
    "audio_quality": "good",
    "video_quality": "fair",
    "screen_share_quality": None,
})


@functools.lru_cache(maxsize=4096)  # tests write the same few times over and over: strftime is slow
def zoom_time(at: datetime) -> str:
    """A time as Zoom writes it: UTC, to the second, ``Z`` (``2025-03-01T10:00:00Z``); naive is UTC."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(value: Any) -> Any:
    return zoom_time(value) if isinstance(value, datetime) else value


def _finish(obj: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with ``fields`` applied (in place: a new field comes last) and ABSENT fields removed."""
    obj.update(fields)
    if ABSENT in obj.values():  # a quick check, by identity (no __eq__); the loop decides
        for key in [key for key, value in obj.items() if value is ABSENT]:
            del obj[key]
    return obj


def zoom_session(
    session_id: Any = SESSION_ID,
    *,
    name: Any = "Standup",
    start: datetime = T0,
    length: timedelta | None = timedelta(hours=1, minutes=2, seconds=3),
    users: Any = 2,
    details: bool = True,
    **fields: Any,
) -> dict[str, Any]:
    """A session object as the sessions list returns it.

    ``id``, ``session_name``, ``start_time``, then ``end_time`` and ``duration`` (``HH:MM:SS``) from
    ``start`` + ``length`` (``length=None``: a session still running, both null, as the live list
    gives it), ``user_count`` = ``users``; then, with ``details``, :data:`SESSION_DETAILS` (without:
    only those six fields, a minimal payload). Defaults: :data:`SESSION_ID`, "Standup", 10:00:00 to
    11:02:03 UTC on 2025-03-01 (``01:02:03``), two users.
    """
    if length is None:
        end, duration = None, None
    else:
        hours, rest = divmod(int(length.total_seconds()), 3600)
        end, duration = start + length, f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    session = {
        "id": session_id,
        "session_name": name,
        "start_time": _time(start),
        "end_time": _time(end),
        "duration": duration,
        "user_count": users,
    }
    if details:
        session.update(SESSION_DETAILS)
    return _finish(session, fields)


def stream_metrics(
    bitrate: Any = "23 kbps",
    *,
    latency: Any = "126 ms",
    jitter: Any = "6 ms",
    avg_loss: Any = "0.3%",
    max_loss: Any = "1.9%",
    **metrics: Any,
) -> dict[str, Any]:
    """One stream block of a QoS sample (``audio_input``, ``video_output``, ``as_input``, ...), the
    values as text with Zoom's units; defaults: a fine audio stream. ``metrics``: more (``resolution``,
    ``frame_rate``) or ABSENT to leave one out."""
    block = {"bitrate": bitrate, "latency": latency, "jitter": jitter, "avg_loss": avg_loss,
             "max_loss": max_loss}
    return _finish(block, metrics)


def qos_sample(at: Any, **blocks: Any) -> dict[str, Any]:
    """One entry of a user's ``user_qos``: ``date_time`` (``at``), then the blocks in the order given:
    stream blocks (see :func:`stream_metrics`), ``cpu_usage``, ``wifi_rssi``, ... A ``date_time``
    among ``blocks`` replaces ``at`` as given."""
    return _finish({"date_time": _time(at)}, blocks)


def zoom_user(
    user_id: Any = "u1",
    *,
    name: Any = _NAMED_AFTER_ID,
    device: Any = "Mac",
    join: Any = T0,
    leave: Any = T0 + timedelta(minutes=30),
    samples: Iterable[Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A QoS user object as ``/users/qos`` returns it: one join of one user, with its samples.

    ``id``, ``name`` (default ``name-<user_id>``), ``device``, ``join_time``, ``leave_time`` (None:
    null, as Zoom sends for a user still in a live session; ABSENT: left out), ``user_qos`` = the
    ``samples`` (default: one fine audio sample a minute after ``join``), then ``fields`` (profile
    fields such as ``network_type``, ``data_center``, ``is_original_host``, or anything Zoom may add).
    Defaults: "u1" on a Mac from 10:00 to 10:30 UTC on 2025-03-01.
    """
    if samples is None:
        first = (join if isinstance(join, datetime) else T0) + timedelta(minutes=1)
        samples = [qos_sample(first, audio_input=stream_metrics())]
    user = {
        "id": user_id,
        "name": f"name-{user_id}" if name is _NAMED_AFTER_ID else name,
        "device": device,
        "join_time": _time(join),
        "leave_time": _time(leave),
        "user_qos": list(samples),
    }
    return _finish(user, fields)


def run_concurrently(work: Callable[[], T], threads: int = 4) -> list[T]:
    """Run ``work()`` in ``threads`` threads at once (a barrier releases them together) and return
    what each returned, in thread order, once all have ended.

    An exception in a thread fails the caller: one is re-raised as it is (its traceback points into
    ``work``), several together as a :class:`BaseExceptionGroup`. ``work`` opens and closes what it
    needs per thread (its own ``Warehouse``, connection, ...).
    """
    barrier = threading.Barrier(threads)
    results: list[Any] = [None] * threads
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work()
        except BaseException as error:  # re-raised below, in the caller's thread
            errors.append(error)

    pool = [threading.Thread(target=run, args=(i,), name=f"run_concurrently-{i}") for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise BaseExceptionGroup(f"{len(errors)} of {threads} threads failed", errors)
    return results
