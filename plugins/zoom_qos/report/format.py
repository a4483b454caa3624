"""How the report writes numbers, ranges and times: one place, so the charts, their tables and the
prose around them show a figure the same way (``–`` for "no figure", never ``None`` or ``nan``).

Nothing here escapes HTML: the page's template autoescapes, and the charts escape what they write.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["MISSING", "bin_label", "num", "pct", "text_time", "with_unit"]

#: What stands where a figure is unknown (an en dash, not "0": nothing was measured).
MISSING = "–"


def pct(value: float | None, digits: int = 1) -> str:
    """A share (0..1) as a percentage: ``0.1234`` -> ``12.3%``."""
    return MISSING if value is None else f"{value * 100:.{digits}f}%"


def num(value: float | None, unit: str = "", digits: int = 0) -> str:
    """A measurement with thousands separators and its unit (``%`` sticks to the number)."""
    if value is None:
        return MISSING
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".strip() if unit != "%" else f"{text}%"


def with_unit(value: float, unit: str) -> str:
    """A limit or bin edge with its unit, as short as it goes: ``150 ms``, ``2%``."""
    return f"{value:g}%" if unit == "%" else f"{value:g} {unit}"


def bin_label(low: float, high: float | None, unit: str) -> str:
    """A histogram bin: ``25–50 ms``; the open last bin (``high`` None) is ``≥ 500 ms``."""
    return f"≥ {with_unit(low, unit)}" if high is None else f"{low:g}–{with_unit(high, unit)}"


def text_time(value: Any) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM`` UTC, ``""`` for None.

    SQLite returns timestamps as text, PostgreSQL as (aware) datetimes: both end up alike.
    """
    if value is None:
        return ""
    if isinstance(value, datetime):
        moment: datetime = value if value.tzinfo is None else value.astimezone(UTC)
        return moment.strftime("%Y-%m-%d %H:%M")
    return str(value).replace("T", " ")[:16]
