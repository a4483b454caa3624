"""Whether a listed session's QoS could be read: the ``sessions.qos_status`` of docs/warehouse.md (v2).

Every session Zoom lists is kept, with the state of its QoS. Zoom answers 404/3001 ("not
available … or the session has not ended yet") for a session it lists while it is still
processing it, so a 3001 soon after the end is *pending* (asked again by every run) and only a
3001 long after it, or an answer that the session id is invalid (400/300) or too old (400/12702),
makes it *unavailable*. Every run asks again for the listed sessions that are not ``loaded``;
see ``pipeline.listing``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from zoom_qos.core.statuses import PENDING, UNAVAILABLE
from zoom_qos.zoom.errors import ZoomApiError, ZoomDailyLimitError


def status_after_error(
    error: ZoomApiError, ended_at: datetime | None, checked_at: datetime, pending_max_hours: float
) -> str | None:
    """``pending`` or ``unavailable`` for an answer that says the QoS cannot be read (now), None for
    any other error (which must fail the task, so that its retry reads the session).

    ``ended_at`` is the session's end (its start when Zoom gave no end); ``checked_at`` the wall
    clock at the request.
    """
    if isinstance(error, ZoomDailyLimitError):
        return None
    if error.session_unavailable:
        return UNAVAILABLE
    if not error.session_not_ready:
        return None
    if ended_at is None or checked_at - ended_at < timedelta(hours=pending_max_hours):
        return PENDING
    return UNAVAILABLE
