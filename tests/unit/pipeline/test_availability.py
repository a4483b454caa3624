"""What each published answer of the QoS endpoint makes of a listed session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from zoom_qos.core.statuses import PENDING, UNAVAILABLE
from zoom_qos.pipeline.availability import status_after_error
from zoom_qos.zoom.errors import ZoomApiError, ZoomDailyLimitError

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
QOS = "videosdk/sessions/abc/users/qos"
NOT_READY = ("This session's detail info is not available.<br>The Session ID is not valid or the "
             "session has not ended yet.")


def error(status: int, code: int | None, message: str = "") -> ZoomApiError:
    return ZoomApiError(status, code, message, QOS, "abc")


@pytest.mark.parametrize("hours_ago,expected", [(0.1, PENDING), (71.9, PENDING), (72.1, UNAVAILABLE),
                                                (400, UNAVAILABLE)])
def test_3001_is_pending_until_the_limit_after_the_end_then_unavailable(hours_ago, expected):
    ended = NOW - timedelta(hours=hours_ago)
    assert status_after_error(error(404, 3001, NOT_READY), ended, NOW, 72) == expected


def test_the_limit_is_the_callers_and_a_session_without_end_is_pending():
    ended = NOW - timedelta(hours=5)
    assert status_after_error(error(404, 3001), ended, NOW, 4) == UNAVAILABLE
    assert status_after_error(error(404, 3001), None, NOW, 72) == PENDING


@pytest.mark.parametrize("status,code,message", [
    (400, 300, "Invalid session ID."),
    (400, 300, "Session ID does not exist: abc."),
    (400, 12702, "Can not access a session a year ago."),
])
def test_an_invalid_or_too_old_session_is_unavailable_at_once(status, code, message):
    assert status_after_error(error(status, code, message), NOW, NOW, 72) == UNAVAILABLE


@pytest.mark.parametrize("status,code,message", [
    (400, 300, "Invalid field: page_size. It must be at most 10."),  # Zoom's 300 is any invalid field
    (400, 300, "The next page token is invalid or expired."),
    (400, 300, "Invalid parameter: type."),
    (400, 200, "This API is only available for Video SDK accounts."),
    (403, None, "Forbidden"),
    (404, 2300, "This API endpoint is not recognized."),
    (404, None, "Not found"),
    (401, 124, "Invalid access token."),
])
def test_any_other_answer_fails_the_task(status, code, message):
    assert status_after_error(error(status, code, message), NOW, NOW, 72) is None


def test_a_daily_limit_is_never_a_status():
    limit = ZoomDailyLimitError(429, None, "daily", QOS, NOW)
    assert status_after_error(limit, NOW, NOW, 72) is None
