import pytest

from zoom_qos.core.errors import ZoomQosError
from zoom_qos.zoom.errors import (
    PageRestartsExhaustedError,
    PageTokenDeadlineError,
    PaginationError,
    ZoomApiError,
)
from zoom_qos.zoom.pagination import RestartingPaginator, _StartOver, is_page_token_rejection, next_token


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeList:
    """Serves items in pages; tokens are 't<offset>'. Records every call."""

    def __init__(self, items, page_size=2, last_token=""):
        self.items = items
        self.page_size = page_size
        self.last_token = last_token
        self.calls: list[tuple[str | None, float | None]] = []

    def __call__(self, token, deadline):
        self.calls.append((token, deadline))
        offset = int(token[1:]) if token else 0
        end = offset + self.page_size
        page = {"items": self.items[offset:end]}
        if end < len(self.items):
            page["next_page_token"] = f"t{end}"
        elif self.last_token is not None:
            page["next_page_token"] = self.last_token
        return page


def items_of(pages):
    return [item for page in pages for item in page["items"]]


@pytest.mark.parametrize("last_token", ["", None])
def test_reads_every_page_and_stops_on_empty_or_missing_token(last_token):
    fetch = FakeList(list(range(5)), last_token=last_token)
    pages = list(RestartingPaginator().pages(fetch))
    assert items_of(pages) == [0, 1, 2, 3, 4]
    assert [c[0] for c in fetch.calls] == [None, "t2", "t4"]


@pytest.mark.parametrize("page,expected", [({}, None), ({"next_page_token": ""}, None),
                                           ({"next_page_token": None}, None),
                                           ({"next_page_token": "x"}, "x")])
def test_next_token(page, expected):
    assert next_token(page) == expected


def test_a_repeated_token_is_an_error_not_a_loop():
    def fetch(token, deadline):
        return {"items": [1], "next_page_token": "same"}

    with pytest.raises(PaginationError, match="already returned"):
        list(RestartingPaginator().pages(fetch))


def test_page_limit_stops_an_endless_list():
    counter = iter(range(10**6))

    def fetch(token, deadline):
        return {"items": [], "next_page_token": f"t{next(counter)}"}

    with pytest.raises(PaginationError, match="3 pages"):
        list(RestartingPaginator(max_pages=3).pages(fetch))


def test_deadline_is_passed_for_token_requests_only():
    clock = Clock()
    fetch = FakeList(list(range(4)))
    list(RestartingPaginator(token_ttl=900, safety=60, clock=clock).pages(fetch))
    assert fetch.calls[0] == (None, None)
    assert fetch.calls[1] == ("t2", 840.0)


def test_proactive_restart_when_the_consumer_outlives_the_token():
    clock = Clock()
    fetch = FakeList(list(range(6)))
    paginator = RestartingPaginator(token_ttl=900, safety=60, clock=clock)
    seen = []
    for page in paginator.pages(fetch):
        seen.extend(page["items"])
        if seen == [0, 1]:
            clock.now += 841  # slower than the token's lifetime
    assert paginator.restarts == 1
    # the expired token "t2" was never sent: the list started over from the first page
    assert [c[0] for c in fetch.calls] == [None, None, "t2", "t4"]
    assert seen == [0, 1, 0, 1, 2, 3, 4, 5]


def test_rejected_token_restarts_from_the_first_page():
    fetch = FakeList(list(range(4)))
    rejections = iter([True])

    def flaky(token, deadline):
        if token and next(rejections, False):
            raise ZoomApiError(400, 300, "The next page token is invalid or expired.", "x")
        return fetch(token, deadline)

    paginator = RestartingPaginator()
    assert items_of(paginator.pages(flaky)) == [0, 1, 0, 1, 2, 3]
    assert paginator.restarts == 1


def test_restarts_are_bounded_and_explained():
    def always_rejects(token, deadline):
        if token:
            raise ZoomApiError(400, 300, "The next page token is invalid or expired.", "x")
        return {"items": [1], "next_page_token": "t"}

    with pytest.raises(PageRestartsExhaustedError, match="restarted 2 times"):
        list(RestartingPaginator(max_restarts=2).pages(always_rejects, what="QoS of session 'a'"))


def test_errors_on_the_first_page_are_not_restarts():
    def gone(token, deadline):
        raise ZoomApiError(404, 3001, "Session does not exist.", "x")

    paginator = RestartingPaginator()
    with pytest.raises(ZoomApiError):
        list(paginator.pages(gone))
    assert paginator.restarts == 0


@pytest.mark.parametrize(
    "error,expected",
    [
        (ZoomApiError(400, 300, "The next page token is invalid or expired.", "x"), True),
        (ZoomApiError(404, 3001, "gone", "x"), True),
        (ZoomApiError(401, 124, "Invalid access token.", "x"), False),
        (ZoomApiError(429, 429, "slow down", "x"), False),
        (ZoomApiError(500, None, "boom", "x"), False),
        (PageTokenDeadlineError("late"), True),
        (ValueError("x"), False),
    ],
)
def test_which_errors_mean_start_over(error, expected):
    assert is_page_token_rejection(error) is expected


def test_last_pass_keeps_the_items_read_after_the_last_restart():
    from zoom_qos.zoom.pagination import last_pass

    pages = [(0, ["a", "b"]), (0, ["c"]), (1, ["a"]), (1, ["b", "c", "d"]), (2, []), (2, ["d", "c"])]
    assert last_pass(pages) == ["d", "c"]
    assert last_pass([(0, ["a"]), (0, ["b"])]) == ["a", "b"] and last_pass([]) == []


def test_the_restart_signal_is_no_error_of_the_package():
    """``_StartOver`` is control flow inside the paginator: an ``except ZoomQosError`` (or one of
    its branches, which decide retries) must never catch it."""
    assert issubclass(_StartOver, Exception) and not issubclass(_StartOver, ZoomQosError)
    assert _StartOver.__name__.startswith("_")
