"""Turn Zoom's unit-bearing strings (``"1.2 Mbps"``, ``"126 ms"``, ``"0.3%"``) into numbers.

Zoom sends every QoS metric as a string with a unit, and the unit is not guaranteed to be
the one in its examples. The warehouse stores one canonical unit per column, so every value
is converted here. A value that cannot be understood must never fail a load (docs/warehouse.md,
"Values"): it becomes ``None`` and is *counted* in a :class:`ParseIssues` so the run record
shows how much data was lost and one example of what it looked like.

All parsers accept any Python object and never raise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TypeGuard

from zoom_qos.core.flags import parse_bool

__all__ = [
    "ParseIssues",
    "is_empty",
    "parse_bitrate_kbps",
    "parse_bool",
    "parse_duration_ms",
    "parse_duration_seconds",
    "parse_fps",
    "parse_number",
    "parse_percent",
    "parse_resolution",
    "parse_timestamp",
    "utc_day",
]

# Strings Zoom (or a proxy) uses for "no value". They load as NULL and are not an error.
_EMPTY_STRINGS = frozenset({"", "-", "--", "n/a", "na", "null", "none"})

# Anything longer cannot be a metric; refusing it early keeps regexes and float() cheap.
_MAX_LEN = 100

_NUMBER_UNIT_RE = re.compile(
    r"""^
    (?P<num>[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][+-]?\d+)?   # 1,234.5 / 12 / 1e3
           |[+-]?\.\d+(?:[eE][+-]?\d+)?)                                  # .5
    \s*
    (?P<unit>[^\d\s.,+-][^\d]*?)?                                           # unit, no digits
    \s*$""",
    re.VERBOSE,
)

_RESOLUTION_RE = re.compile(r"^(\d{1,6})\s*[*xX×]\s*(\d{1,6})$")
_INT32_MAX = 2**31 - 1

# Unit (lower-cased, spaces removed) -> factor to the canonical unit of the field.
_BITRATE_UNITS: dict[str, float] = {
    "bps": 0.001,
    "b/s": 0.001,
    "bit/s": 0.001,
    "bits/s": 0.001,
    "kbps": 1.0,
    "kb/s": 1.0,
    "kbit/s": 1.0,
    "kbits/s": 1.0,
    "mbps": 1000.0,
    "mb/s": 1000.0,
    "mbit/s": 1000.0,
    "mbits/s": 1000.0,
    "gbps": 1_000_000.0,
    "gb/s": 1_000_000.0,
    "gbit/s": 1_000_000.0,
    "gbits/s": 1_000_000.0,
}
_DURATION_UNITS: dict[str, float] = {
    "ms": 1.0,
    "msec": 1.0,
    "millisecond": 1.0,
    "milliseconds": 1.0,
    "s": 1000.0,
    "sec": 1000.0,
    "secs": 1000.0,
    "second": 1000.0,
    "seconds": 1000.0,
    "us": 0.001,
    "µs": 0.001,  # MICRO SIGN
    "μs": 0.001,  # GREEK SMALL LETTER MU
    "usec": 0.001,
    "microsecond": 0.001,
    "microseconds": 0.001,
}
_PERCENT_UNITS: dict[str, float] = {"%": 1.0, "pct": 1.0, "percent": 1.0}
_FPS_UNITS: dict[str, float] = {"fps": 1.0, "f/s": 1.0}
_RSSI_UNITS: dict[str, float] = {"dbm": 1.0}


@dataclass
class ParseIssues:
    """Per-field count of values that could not be parsed, with the first example of each.

    Kept separate from logging so a run can report *how many* values were lost (the run
    record's ``unparsed_values``/``unparsed_detail``) without one log line per value.
    """

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, field: str, raw: object) -> None:
        """Count one unparseable ``raw`` value of ``field``; the first one is kept as example."""
        self.counts[field] = self.counts.get(field, 0) + 1
        if field not in self.examples:
            self.examples[field] = _example(raw)

    def merge(self, other: ParseIssues) -> None:
        """Add ``other``'s counts to this one (examples already held here are kept)."""
        for name, count in other.counts.items():
            self.counts[name] = self.counts.get(name, 0) + count
            if name not in self.examples and name in other.examples:
                self.examples[name] = other.examples[name]

    @property
    def total(self) -> int:
        """Number of values counted across all fields."""
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, dict[str, object]]:
        """JSON-ready ``{field: {"count": n, "example": "..."}}`` for the run record."""
        return {
            name: {"count": count, "example": self.examples.get(name, "")}
            for name, count in sorted(self.counts.items())
        }

    def __bool__(self) -> bool:
        return self.total > 0


def _example(raw: object) -> str:
    """``str(raw)[:100]`` that survives objects whose ``__str__`` is broken or huge."""
    try:
        if isinstance(raw, str):
            return raw[:_MAX_LEN]
        return str(raw)[:_MAX_LEN]
    except Exception:  # an example must never break counting
        return f"<unprintable {type(raw).__name__}>"


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str) -> str:
    """Text any database and UTF-8 file can hold: NUL dropped, lone surrogates replaced.

    JSON may carry a lone ``\\ud800`` escape and ``json.loads`` keeps it; UTF-8 cannot encode
    it and PostgreSQL rejects NUL, so either would fail a whole load over one odd value.
    """
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)


def is_empty(value: object) -> bool:
    """True for the forms Zoom uses for "no value": missing/None, "", "-", "N/A", "null"."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() in _EMPTY_STRINGS
    return False


def _is_json_number(value: object) -> TypeGuard[int | float]:
    # bool is an int subclass but ``true`` is never a measurement.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(number: float) -> float | None:
    return number if math.isfinite(number) else None


class _Bad:
    """What the text parsers cache for a string they could not understand."""


_BAD = _Bad()
_CACHE_MAX = 1 << 16


def _text_with_units(text: str, units: Mapping[str, float]) -> float | None | _Bad:
    """A string value in the canonical unit, None when empty, ``_BAD`` when not understood."""
    if len(text) > _MAX_LEN:
        return None if is_empty(text) else _BAD
    if is_empty(text):
        return None
    match = _NUMBER_UNIT_RE.match(text.strip())
    if not match:
        return _BAD
    unit = match.group("unit")
    factor = 1.0 if unit is None else units.get(unit.replace(" ", "").lower())
    if factor is None:
        return _BAD
    try:
        number = _finite(float(match.group("num").replace(",", "")) * factor)
    except (OverflowError, ValueError):
        return _BAD
    return _BAD if number is None else number


def _unit_parser(units: Mapping[str, float], doc: str) -> Callable[[object, str, ParseIssues], float | None]:
    """A parser for one kind of measurement: empty → None; JSON number or unitless string as
    is; a known unit converted; anything else None and counted.

    Each parser caches the strings it has seen: a day's samples repeat a small set of values
    ("0 kbps", "12 ms", "0.0%") hundreds of thousands of times, and parsing them again was
    most of a load's CPU time. Strings only: nothing else can be a dict key safely.
    """
    cache: dict[str, float | None | _Bad] = {}

    def parse(value: object, field: str, issues: ParseIssues) -> float | None:
        if type(value) is str:  # the hot path: exactly str (a subclass is handled below)
            try:
                result = cache[value]
            except KeyError:
                result = _text_with_units(value, units)
                if len(cache) < _CACHE_MAX and len(value) <= _MAX_LEN:
                    cache[value] = result
            if isinstance(result, _Bad):
                issues.add(field, value)
                return None
            return result
        if value is None:
            return None
        number: float | None = None
        if _is_json_number(value):
            try:
                number = _finite(float(value))
            except (OverflowError, ValueError):
                number = None
        elif isinstance(value, str):  # a str subclass
            return parse(str(value), field, issues)
        if number is None:
            issues.add(field, value)
        return number

    parse.__doc__ = doc
    return parse


parse_bitrate_kbps = _unit_parser(
    _BITRATE_UNITS, "Bitrate in kilobits per second: bps, kbps, Mbps, Gbps (and ``kb/s`` forms).")
parse_duration_ms = _unit_parser(_DURATION_UNITS, "Latency/jitter in milliseconds: ms, s, us/µs.")
parse_percent = _unit_parser(
    _PERCENT_UNITS, "Percentage as a number of percent (``\"0.3%\"`` → 0.3, not 0.003).")
parse_fps = _unit_parser(_FPS_UNITS, "Frame rate in frames per second (``\"12 fps\"`` → 12.0).")
parse_number = _unit_parser(
    _RSSI_UNITS, "Plain number, optionally in dBm (Wi-Fi RSSI: ``-60``, ``\"-60 dBm\"``).")


def parse_resolution(value: object, field: str, issues: ParseIssues) -> tuple[int | None, int | None]:
    """``"1280*720"`` (or ``x``, ``X``, ``×``) → (1280, 720); anything else → (None, None)."""
    if is_empty(value):
        return None, None
    if isinstance(value, str) and len(value) <= _MAX_LEN:
        match = _RESOLUTION_RE.match(value.strip())
        if match:
            return int(match.group(1)), int(match.group(2))
    issues.add(field, value)
    return None, None


_TIMESTAMPS: dict[str, datetime | None] = {}


def utc_day(value: object) -> date:
    """The UTC day of a value read back from the warehouse: an aware datetime's UTC date, a naive
    one's date (the warehouse's naive times are UTC), a date as it is, else the ISO text's date."""
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def parse_timestamp(value: object) -> datetime | None:
    """ISO-8601 → aware UTC datetime; naive values are taken as UTC; invalid → None.

    Zoom documents UTC timestamps with ``Z``; an offset is honoured and converted, a
    missing offset is assumed to be UTC rather than the worker's local zone. Cached for
    strings: every user of a session has samples at the same minutes.
    """
    if type(value) is str:
        try:
            return _TIMESTAMPS[value]
        except KeyError:
            parsed = _parse_timestamp(value)
            if len(value) <= _MAX_LEN:
                if len(_TIMESTAMPS) >= _CACHE_MAX:
                    _TIMESTAMPS.clear()
                _TIMESTAMPS[value] = parsed
            return parsed
    return _parse_timestamp(value)


def _parse_timestamp(value: object) -> datetime | None:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and 0 < len(value.strip()) <= _MAX_LEN:
        text = value.strip()
        if text[-1:] in ("z", "Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    if parsed.tzinfo is None or parsed.tzinfo.utcoffset(parsed) is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00:00+01:00
        return None


def parse_duration_seconds(value: object) -> int | None:
    """Zoom's session ``duration``: ``"01:02:03"`` / ``"62:03"`` / ``"45"`` / 45 → seconds."""
    if _is_json_number(value):
        number = float(value)
        if math.isfinite(number) and number >= 0 and number == int(number):
            return _int32(int(number))
        return None
    if not isinstance(value, str) or len(value) > _MAX_LEN:
        return None
    parts = value.strip().split(":")
    if not all(part.isascii() and part.isdigit() for part in parts):
        return None
    numbers = [int(part) for part in parts]
    if len(numbers) == 1:
        return _int32(numbers[0])
    if len(numbers) == 2:  # MM:SS, minutes may exceed 59 ("62:03")
        minutes, seconds = numbers
        return _int32(minutes * 60 + seconds) if seconds < 60 else None
    if len(numbers) == 3:
        hours, minutes, seconds = numbers
        if minutes < 60 and seconds < 60:
            return _int32(hours * 3600 + minutes * 60 + seconds)
    return None


def _int32(number: int) -> int | None:
    # The warehouse column is a 32-bit integer; a larger value is garbage, not a duration.
    return number if 0 <= number <= _INT32_MAX else None


