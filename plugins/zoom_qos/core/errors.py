"""The error roots every layer shares, and the errors that are not Zoom's.

Every error the package raises on purpose is a ``ZoomQosError``. Whether a retry can help is said
once, by the branch an error class sits in: a ``PermanentError`` (a setting, the run's params, the
account, a full or read-only storage) fails the task at once (the Airflow layer's ``fail_fast``
reads only this branch); a ``TransientError`` (a network, a daily limit, a Redis away) is left to
the retries. Zoom's own answers and the client's errors live in ``zoom.errors``. Messages name
what failed and what to do; they never include credentials or tokens.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime


class ZoomQosError(Exception):
    """Root of the errors this package raises."""


class PermanentError(ZoomQosError):
    """No retry can cure it: what is wrong must be fixed first (a setting, the account, the run's
    params, a full disk), so the task fails at once instead of retrying."""


class TransientError(ZoomQosError):
    """A retry may cure it (a network, a Redis away, a body cut on the way): left to the
    client's and Airflow's retries."""


class SettingsError(PermanentError, ValueError):
    """A setting (a connection extra, a ``[zoom_qos]`` key) that cannot be used, whatever was
    wrong with it: its type, its range, its format. Found before any request or write. A
    ``ValueError`` too, for callers that caught the plain one before."""


class StagingIncompleteError(TransientError):
    """A batch's session has no staged QoS: its extraction did not finish (a retry of the
    extraction reads it)."""


class NothingToLoad(ZoomQosError):
    """The requested window lies entirely outside what Zoom still serves."""


class DailyLimitReached(TransientError):
    """Nothing more may be requested before ``reset_at`` (UTC): Zoom's daily cap or our own budget.

    Extraction parks on it (it defers until the reset and resumes where it stopped).
    """

    reset_at: datetime | None = None



class InvalidWindowError(PermanentError, ValueError):
    """The run's ``from_date``/``to_date`` cannot make a window (not a date, or the end before the
    start): found before any request, and no retry changes the params, so it is permanent.
    A ``ValueError`` too, for callers that caught the plain one before."""


class InvalidParamError(PermanentError, ValueError):
    """A run's param that is not a whole number in its allowed range (``config.LISTING_PARAMS``):
    found before any request or write, and no retry changes the params, so it is permanent."""


class WarehouseConnectionError(PermanentError, ValueError):
    """The warehouse connection is defined but cannot be used (its type, a missing or malformed
    field, a provider not installed): a setting to fix, so permanent."""


class WarehouseUnreachableError(PermanentError):
    """The warehouse could not be connected to or its schema made ready, checked before any Zoom
    request so a run does not spend the daily budget on data it cannot load. Permanent for the
    task: the listing is cheap to clear once the warehouse is back."""


class StagingRemovedError(PermanentError):
    """A task of a run whose staged files are gone (removed by the staging retention): no retry
    can bring them back, the run must list again."""


class StorageUnwritableError(PermanentError):
    """Staging or the warehouse refused a write for a reason that stays until someone acts: no
    space left, a quota, a read-only file system, no permission.

    A retry a minute later meets the same full disk, so the task fails at once (permanent); what
    was written before is kept, nothing is left under a final name, and the task cleared once
    there is room resumes where it stopped. ``where`` is the path or the warehouse's masked URL.
    """

    def __init__(self, what: str, where: str, cause: str) -> None:
        self.what, self.where, self.cause = what, where, cause
        super().__init__(
            f"Cannot write {what} at {where}: {cause}. A retry would meet the same problem, so the "
            "task fails without retrying. Nothing is left half-written under a final name and what "
            "was written before is kept: free space or make it writable, then clear the task (it "
            "resumes where it stopped).")


#: What each errno of an unwritable storage is called in messages (``os.strerror`` wording).
UNWRITABLE_ERRNOS: dict[int, str] = {
    errno.ENOSPC: "no space left on device (ENOSPC)",
    errno.EDQUOT: "disk quota exceeded (EDQUOT)",
    errno.EROFS: "read-only file system (EROFS)",
    errno.EACCES: "permission denied (EACCES)",
    errno.EPERM: "operation not permitted (EPERM)",
}


def unwritable_cause(error: BaseException) -> str | None:
    """Why ``error`` (or an error it was raised from) is a write no retry can cure, as a message
    says it; None for anything else (a network share that hiccups is retried as before)."""
    seen: list[BaseException] = []
    item: BaseException | None = error
    while item is not None and not any(item is s for s in seen):
        seen.append(item)
        if isinstance(item, OSError) and item.errno in UNWRITABLE_ERRNOS:
            return UNWRITABLE_ERRNOS[item.errno]
        item = item.__cause__ or item.__context__
    return None


@contextmanager
def unwritable_as(
    what: str,
    where: str,
    catch: type[BaseException] | tuple[type[BaseException], ...] = OSError,
    cause_of: Callable[[BaseException], str | None] = unwritable_cause,
) -> Iterator[None]:
    """Inside, an error of type ``catch`` that ``cause_of`` finds no retry can cure becomes a
    ``StorageUnwritableError`` naming ``what`` and ``where``; anything else passes unchanged.
    ``catch`` keeps the net to the writes in question: around a whole listing, a refused socket
    (EACCES) is Zoom's network, not the warehouse's disk."""
    try:
        yield
    except catch as error:
        cause = cause_of(error)
        if cause is None:
            raise
        raise StorageUnwritableError(what, where, cause) from error
