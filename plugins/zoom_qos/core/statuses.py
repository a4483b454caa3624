"""The state of a listed session's QoS: ``sessions.qos_status`` (docs/warehouse.md, v2).

Every session Zoom lists is kept, with the state of its QoS. The values are the contract's, so the
enum is a ``StrEnum``: a member is its text, in SQL and in JSON alike. The module-level names are
the members' plain text, for SQL parameters whose driver would otherwise write an enum's name.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class QosStatus(StrEnum):
    """``loaded``: read completely; ``pending``: Zoom answered 404/3001 soon after the end (asked
    again by every run); ``unavailable``: Zoom will not serve it; ``live``: provisional rows of a
    session in progress (replaced whole by each live poll, then by the daily run)."""

    LOADED = "loaded"
    PENDING = "pending"
    UNAVAILABLE = "unavailable"
    LIVE = "live"


LOADED: Final[str] = QosStatus.LOADED.value
PENDING: Final[str] = QosStatus.PENDING.value
UNAVAILABLE: Final[str] = QosStatus.UNAVAILABLE.value
LIVE: Final[str] = QosStatus.LIVE.value

#: How long after a session's end a 3001 still means "not ready yet" (the DAG param's default).
DEFAULT_QOS_PENDING_MAX_HOURS: Final[int] = 72
