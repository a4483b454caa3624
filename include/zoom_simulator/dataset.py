"""Deterministic fake Zoom Video SDK data, plus the "truth" a correct loader must store.

Every UTC day (and every session's users) is generated from its own RNG seeded by
(seed, date) or (seed, session id). That keeps any single day cheap, stable across
processes and independent of which days were generated before. Numbers are decided
first and rendered into Zoom's unit-bearing strings second, so the expected warehouse
rows come straight from the numbers rather than from re-parsing the strings.
"""

from __future__ import annotations

import base64
import math
import random
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Any

_MISSING: Any = object()  # sentinel: leave the key out of the rendered object
_NULL_TEXT = (None, "", "-", "N/A")

AUDIO_BLOCKS = ("audio_input", "audio_output", "audio_device_from_rwg", "audio_device_to_rwg")
VIDEO_BLOCKS = ("video_input", "video_output", "video_device_from_rwg", "video_device_to_rwg")
SHARE_BLOCKS = ("as_input", "as_output", "as_device_from_rwg", "as_device_to_rwg")
NEW_BLOCK = "audio_sharing_input"  # a block Zoom might add later
#: Units no loader knows, served only with ``unit_faults`` on (Zoom itself sends only its documented units).
UNKNOWN_UNITS = ("furlongs", "parsecs", "widgets")

_WORDS = (
    "Standup", "Support", "Tutoring", "Telehealth", "Webinar", "Interview", "Review",
    "Onboarding", "Demo", "Coaching", "Sync", "Workshop", "Office hours", "Consult",
)
_FIRST = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jia",
          "Kofi", "Lena", "Mateo", "Noor", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tomoko")
_LAST = ("Silva", "Okafor", "Nguyen", "Müller", "Kowalski", "Haddad", "Ito", "Smith",
         "García", "Rossi", "Andersson", "Kim", "Dubois", "Novak")
# "" is what Zoom reports for an external user (an H.323/SIP-like room system, for example).
_DEVICES = ("Windows", "Mac", "iOS", "Android", "Phone", "H.323/SIP", "")
_DEVICE_WEIGHTS = (28, 24, 15, 15, 7, 6, 5)
_CLIENTS = {
    "Windows": ("Windows SDK", "Web SDK"), "Mac": ("macOS SDK", "Web SDK"),
    "iOS": ("iOS SDK",), "Android": ("Android SDK", "Web SDK"),
    "Phone": ("PSTN",), "H.323/SIP": ("H.323/SIP",), "": ("",),
}
_OS = {
    "Windows": ("Windows 11", ("10.0.22631", "10.0.26100")), "Mac": ("macOS", ("14.5", "15.1")),
    "iOS": ("iOS", ("17.5", "18.1")), "Android": ("Android", ("13", "14")),
    "Phone": ("", ("",)), "H.323/SIP": ("", ("",)), "": ("", ("",)),
}
_BROWSERS = (("Chrome", "126.0.0.0"), ("Firefox", "128.0"), ("Safari", "17.5"), ("Edge", "126.0.2592.87"))
_NETWORKS = {
    "Windows": ("Wired", "Wifi", "Others"), "Mac": ("Wifi", "Wired"),
    "iOS": ("Wifi", "Cellular"), "Android": ("Cellular", "Wifi"),
    "Phone": ("PPP", "Others"), "H.323/SIP": ("Wired",), "": ("Wired", "Others"),
}
# Location -> the short data-center code its users usually land on (Zoom's examples use "SC").
_LOCATIONS = (("San Jose (US)", "SC"), ("New York (US)", "NY"), ("London (GB)", "AM"), ("Berlin (DE)", "FR"),
              ("Tokyo (JP)", "TY"), ("Sydney (AU)", "SY"), ("São Paulo (BR)", "SP"), ("Mumbai (IN)", "MB"))
_LOCATION_WEIGHTS = (22, 20, 14, 12, 10, 8, 7, 7)
_DATA_CENTERS = tuple(dc for _, dc in _LOCATIONS)
_MICS = ("Built-in Microphone", "Headset Microphone (Jabra Evolve 75)", "MacBook Pro Microphone",
         "Realtek(R) Audio", "")
_SPEAKERS = ("Built-in Speakers", "Headset Earphone (Jabra Evolve 75)", "MacBook Pro Speakers", "")
_CAMERAS = ("FaceTime HD Camera", "Integrated Webcam", "Logitech BRIO", "")
_RESOLUTIONS = ((1280, 720), (640, 360), (1920, 1080), (320, 180), (960, 540))
_GRADES = ("good", "fair", "poor", "bad")
_FLAGS = ("has_voip", "has_video", "has_screen_share", "has_recording", "has_pstn")
_PRESSURE = ("nominal", "fair", "serious", "critical")
_ZOOM_NUMBERS = ("16699006833", "18773690926", "442034815237", "4969380979360")

# Why quality is poor, so the demo report has a story to find: each join draws a condition
# (good / degraded / bad) with a probability that grows with its network, data center, device
# and a rare session-wide incident. Metrics are lognormal around the condition's medians, so
# distributions have long tails rather than the flat ranges no real network produces.
_NETWORK_TROUBLE = {"Wired": 0.01, "Wifi": 0.14, "Cellular": 0.30, "PPP": 0.12, "Others": 0.05}
_DC_TROUBLE = {"SY": 0.15, "MB": 0.22}
_DEVICE_TROUBLE = {"Android": 0.06, "": 0.10}
_INCIDENT_RATE, _INCIDENT_TROUBLE = 0.05, 0.45
_BAD_SHARE = 0.35  # of troubled joins, the share that is bad rather than degraded
_SPIKE_RATE = 0.01  # a sample one condition worse than its join (a short burst)
# (latency ms, jitter ms, avg loss %) medians per condition: good, degraded, bad.
_CONDITIONS = ((40.0, 4.0, 0.1), (100.0, 14.0, 0.7), (230.0, 45.0, 3.5))
#: Zoom's network guidance, the limits above which a stream sample counts as poor (the warehouse's
#: ``qos_thresholds`` defaults); used here to grade each join consistently with its samples.
POOR_LIMITS = {"latency_ms": 150.0, "jitter_ms": 40.0, "avg_loss_pct": 2.0}
#: Share of poor samples below which a join's grade is good, fair, poor (above the last: bad).
GRADE_BOUNDS = (0.10, 0.30, 0.60)
#: Share of past sessions whose ``duration`` string disagrees with end - start by over a minute
#: (only with ``duration_faults`` on: Zoom's definition shows one in an example, data has shown none).
DURATION_MISMATCH_RATE = 0.03

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "sessions": (
        "session_id", "session_name", "session_key", "start_time", "end_time", "duration_seconds",
        "user_count", "has_voip", "has_video", "has_screen_share", "has_recording", "has_pstn",
        "audio_quality", "video_quality", "screen_share_quality", "qos_status",
    ),
    "session_users": (
        "session_id", "user_id", "join_time", "leave_time", "user_name", "user_key", "device",
        "client", "os", "os_version", "browser_name", "browser_version", "network_type",
        "ip_address", "location", "microphone", "speaker", "camera", "data_center",
        "connection_type", "is_original_host", "participant_uuid", "audio_quality", "video_quality",
        "screen_share_quality",
    ),
    "user_qos": (
        "session_id", "user_id", "join_time", "sampled_at", "stream", "bitrate_kbps", "latency_ms",
        "jitter_ms", "avg_loss_pct", "max_loss_pct", "resolution_width", "resolution_height",
        "frame_rate_fps",
    ),
    "user_system_qos": (
        "session_id", "user_id", "join_time", "sampled_at", "zoom_min_cpu_pct", "zoom_avg_cpu_pct",
        "zoom_max_cpu_pct", "system_max_cpu_pct", "wifi_max_rssi", "wifi_avg_rssi", "wifi_min_rssi",
        "wifi_rssi_unit", "cpu_pressure_level",
    ),
}
#: Identity columns of ``session_users`` copied from the user object under the same name.
_IDENTITY_COLUMNS = ("user_key", "device", "client", "os", "os_version", "browser_name", "browser_version",
                     "network_type", "ip_address", "location", "microphone", "speaker", "camera",
                     "data_center", "connection_type")
#: ``session_users`` columns only the users endpoint (``GET .../users``) provides.
GRADE_COLUMNS = ("participant_uuid", "audio_quality", "video_quality", "screen_share_quality")
_MEDIA_GRADE = {"audio": "audio_quality", "video": "video_quality", "share": "screen_share_quality"}


def iso(dt: datetime) -> str:
    """Render like Zoom: ISO-8601 UTC with a trailing Z and whole seconds."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc_second(dt: datetime) -> datetime:
    """An aware UTC datetime truncated to the second (naive means UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).replace(microsecond=0)


def _text(value: Any) -> Any:
    """What a correct loader stores for a rendered text value (null-ish strings -> None)."""
    return None if value is _MISSING or value in _NULL_TEXT else value


def _render_duration(seconds: int, long_form: bool) -> str:
    """Zoom's duration string: "HH:MM:SS" or minutes that may exceed 59: "62:03"."""
    if long_form:
        return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def grade(poor: int, total: int) -> str:
    """A join's grade from its share of poor samples of one media ("" when it had none)."""
    if total <= 0:
        return ""
    share = poor / total
    for bound, name in zip(GRADE_BOUNDS, _GRADES, strict=False):
        if share < bound:
            return name
    return _GRADES[-1]


def is_poor(latency_ms: float, jitter_ms: float, avg_loss_pct: float) -> bool:
    """A stream sample beyond any of Zoom's network-guidance limits."""
    return (latency_ms > POOR_LIMITS["latency_ms"] or jitter_ms > POOR_LIMITS["jitter_ms"]
            or avg_loss_pct > POOR_LIMITS["avg_loss_pct"])


def _fmt(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return rng.lognormvariate(math.log(median), sigma)


@dataclass
class _Counter:
    """The rendering of one session's users: the unknown-unit switch, and what a loader cannot parse."""

    unit_faults: bool = False
    unparseable: int = 0


def _render_metric(
    rng: random.Random, kind: str, value: float, counter: _Counter
) -> tuple[Any, float | None]:
    """Render one metric number as Zoom would, returning (rendered, value a loader must store).

    kind is the canonical unit: "kbps", "ms", "pct" or "fps". A low rate of the odd values Zoom
    sends (empty, "-", "N/A", missing key, bare JSON number) exercises the loader; with
    ``counter.unit_faults`` also a value in an unknown unit, which Zoom does not send.
    """
    r = rng.random()
    if r < 0.010:
        return "", None
    if r < 0.017:
        return "-", None
    if r < 0.024:
        return "N/A", None
    if r < 0.031:
        return _MISSING, None
    if r < 0.038:
        return value, float(value)
    if r < 0.043:
        # The unit is drawn either way, so the switch changes these values and nothing else.
        unit = rng.choice(UNKNOWN_UNITS)
        if counter.unit_faults:
            counter.unparseable += 1
            return f"{_fmt(value)} {unit}", None
        alt = False  # off: the value as usual, in its canonical unit
    else:
        alt = rng.random() < 0.06
    if kind == "kbps":
        if value < 1:  # sub-kbps values are always sent in bps
            bps = round(value * 1000)
            return f"{bps} bps", bps / 1000
        if alt and value >= 1000:
            tenths = max(10, round(value / 100))  # one decimal in Mbps keeps the value exact
            return f"{tenths / 10:g} Mbps", float(tenths * 100)
        return f"{_fmt(value)} kbps", float(value)
    if kind == "ms":
        if alt and value >= 100:
            tenths = round(value / 100)
            return f"{tenths / 10:g} s", float(tenths * 100)
        return f"{_fmt(value)} ms", float(value)
    if kind == "pct":
        return f"{_fmt(value)}%", float(value)
    return f"{_fmt(value)} fps", float(value)


def _put(obj: dict[str, Any], key: str, rendered: Any) -> None:
    if rendered is not _MISSING:
        obj[key] = rendered


@dataclass(frozen=True)
class _Scenario:
    """The script of one live scenario session: who is in it when, and what goes wrong."""

    kind: str  # one of SCENARIO_KINDS
    description: str
    # (role, spans): one entry per distinct user, in the order their identities are drawn.
    users: tuple[tuple[str, tuple[tuple[datetime, datetime], ...]], ...]
    degrades_at: datetime | None = None  # "degrading": the "victim" user's samples turn bad after this


@dataclass
class _Session:
    """Internal truth for one session: times as datetimes, the rendered object, and flags."""

    id: str
    day: date
    start: datetime
    end: datetime  # true end: the session is live while start <= t < end, past once t >= end
    obj: dict[str, Any]  # as listed once it has ended (``Dataset.session_object`` renders it live)
    has_video: bool
    has_screen_share: bool
    n_users: int
    trouble: float = 0.0  # added to every join's trouble (a session-wide incident)
    duration_mismatch: bool = False  # `duration` disagrees with end - start by more than 60 s
    # (empty, long form) of the `duration` string, to render the running duration of a live session.
    duration_format: tuple[bool, bool] = (False, True)
    scenario: _Scenario | None = None
    quality: _QualityScript | None = None


@dataclass
class _Detail:
    """Rendered users of one session (QoS list and users list) plus the rows a loader must produce.

    Always the whole session, as served once it has ended; ``Dataset._view`` cuts a live view out
    of it, so nothing cached depends on the clock.
    """

    users: list[dict[str, Any]]
    members: list[dict[str, Any]] = field(default_factory=list)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    unparseable: int = 0
    joins: list[_Join] = field(default_factory=list)
    user_ids: list[str] = field(default_factory=list)  # distinct users in the order drawn


@dataclass
class _Join:
    """One join rendered for both user lists, with its warehouse rows."""

    qos_user: dict[str, Any]
    member: dict[str, Any]
    row: dict[str, Any]
    qos_rows: list[dict[str, Any]]
    sys_rows: list[dict[str, Any]]
    join: datetime
    leave: datetime
    # media -> (poor samples, samples) after the first k samples, k = 0..len(samples)
    cumulative: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


def _finish_join(user: dict[str, Any], extra: dict[str, Any], row: dict[str, Any],
                 poor: dict[str, list[int]], qos_rows: list[dict[str, Any]], sys_rows: list[dict[str, Any]],
                 join: datetime, leave: datetime, cumulative: dict[str, list[tuple[int, int]]]) -> _Join:
    """A rendered join (its QoS user with ``user_qos`` set) as both user lists serve it, with the
    grades from its poor counts on the users-list member and the warehouse row."""
    member = {k: v for k, v in user.items() if k != "user_qos"}
    member["participant_uuid"] = extra["participant_uuid"]
    for media, column in _MEDIA_GRADE.items():
        member[column] = grade(*poor[media])
    member["audio_call"] = [dict(call) for call in extra["audio_call"]]
    row["participant_uuid"] = extra["participant_uuid"]
    for column in _MEDIA_GRADE.values():
        row[column] = _text(member[column])
    return _Join(user, member, row, qos_rows, sys_rows, join, leave, cumulative)


#: What the live scenario sessions do (``Dataset.live_scenarios``); beyond the third, all "ending".
SCENARIO_KINDS = ("churn", "degrading", "ending")
_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class _QualityRole:
    """One user of a scripted quality session: what goes wrong for them, and the verdict expected.

    Minutes count from the session's start: a join made in the session's first minute takes its
    k-th sample (k = 1, 2, ...) in minute k, a few seconds past it.
    """

    role: str
    send_bad: range = range(0)  # minutes whose send-side samples (audio_input, video_input) are bad
    receive_bad: range = range(0)  # minutes whose receive-side samples (audio_output, video_output) are bad
    cpu_starved: bool = False  # every system sample: Zoom 97 %, system 99 %, pressure "critical"
    weak_wifi: bool = False  # on Wifi with an average RSSI of -82 dBm in every system sample
    # (join, leave) offsets from the session's start in seconds, one per join; () = the whole session.
    spans: tuple[tuple[int, int], ...] = ()
    # Per join: (cause, role that cause_user_id names or None, audio issues, video issues).
    expect: tuple[tuple[str, str | None, str, str], ...] = (("none", None, "", ""),)


@dataclass(frozen=True)
class _QualityScript:
    """The script of one past quality session (``Dataset.quality_scenarios``)."""

    kind: str
    name: str
    description: str
    roles: tuple[_QualityRole, ...]


#: The scripted past sessions of ``Dataset.quality_scenarios``, in the order (and hour) they are placed.
QUALITY_KINDS = ("broken_uplink", "bad_downlink", "cpu_starved", "weak_wifi", "session_outage", "reconnect")
#: Samples (one a minute) of a join that lasts the whole scripted session.
QUALITY_MINUTES = 20
_ALL = range(1, QUALITY_MINUTES + 1)
_NET = "high_latency,high_jitter,high_loss"
_GOOD = _QualityRole("participant")
_QUALITY_SCRIPTS: dict[str, tuple[str, str, tuple[_QualityRole, ...]]] = {
    "broken_uplink": (
        "Scripted: broken uplink",
        "the sender's send side (audio_input, video_input) is bad in every minute, and so is every other "
        "user's receive side (audio_output, video_output): the sender's cause is own_uplink, everyone "
        "else's remote_sender naming the sender",
        (_QualityRole("host_listener", receive_bad=_ALL, expect=(("remote_sender", "sender", _NET, _NET),)),
         _QualityRole("sender", send_bad=_ALL, expect=(("own_uplink", None, _NET, _NET),)),
         _QualityRole("listener", receive_bad=_ALL, expect=(("remote_sender", "sender", _NET, _NET),)),
         _QualityRole("listener", receive_bad=_ALL, expect=(("remote_sender", "sender", _NET, _NET),))),
    ),
    "bad_downlink": (
        "Scripted: bad downlink",
        "only the victim's receive side is bad, in every minute: the victim's cause is own_downlink, "
        "everyone else's none",
        (_GOOD, _QualityRole("victim", receive_bad=_ALL, expect=(("own_downlink", None, _NET, _NET),)),
         _GOOD, _GOOD),
    ),
    "cpu_starved": (
        "Scripted: CPU starved",
        "the victim's CPU is saturated (Zoom 97 %, system 99 %, pressure critical) and its send side is "
        "bad in every minute (video at 5 fps, 320*180): cause device_cpu; the others' receive side "
        "stays good (none)",
        (_GOOD, _QualityRole("victim", send_bad=_ALL, cpu_starved=True, expect=((
            "device_cpu", None, f"{_NET},cpu_pressure",
            f"{_NET},low_frame_rate,low_resolution,cpu_pressure"),)),
         _GOOD),
    ),
    "weak_wifi": (
        "Scripted: weak Wi-Fi",
        "the victim is on Wifi at -82 dBm (min -88, max -76) with its send and receive sides bad in "
        "every minute: cause weak_wifi; the others stay good (none)",
        (_GOOD, _GOOD, _QualityRole("victim", send_bad=_ALL, receive_bad=_ALL, weak_wifi=True,
                                    expect=(("weak_wifi", None, f"{_NET},weak_wifi", f"{_NET},weak_wifi"),))),
    ),
    "session_outage": (
        "Scripted: session outage",
        "every user's receive side is bad in minutes 6 to 15 of the 20, send sides good: everyone's "
        "cause is session_wide",
        tuple(_QualityRole("participant", receive_bad=range(6, 16),
                           expect=(("session_wide", None, _NET, _NET),)) for _ in range(4)),
    ),
    "reconnect": (
        "Scripted: reconnect",
        "all quality good; the reconnector leaves at minute 8 and rejoins 40 s later: its first join "
        "has the issue reconnected (cause none), its second none",
        (_GOOD, _GOOD, _QualityRole("reconnector", spans=((17, 8 * 60 + 20), (9 * 60, 20 * 60 + 50)),
                                    expect=(("none", None, "reconnected", "reconnected"),
                                            ("none", None, "", "")))),
    ),
}


class Dataset:
    """The simulated account's sessions over the last `history_days` days up to `now`.

    ``now`` is the dataset's clock: frozen at the construction time unless ``clock_speed`` > 0,
    then ``start + wall-clock elapsed × clock_speed`` (plus what ``advance``/``set_now`` added).
    Sessions are placed by the seed and the ``anchor`` (the live scenarios and the two long-running
    live sessions sit just before it, the ``quality_scenarios`` sessions, when on, on the UTC day
    before its day; default: the construction ``now``), never by the clock: the
    clock only decides what is visible. So every session, user and sample is the same whenever it
    is asked for, and a session that has ended is served exactly as by a frozen dataset whose
    ``now`` is later (with the same anchor).
    """

    def __init__(self, seed: int, now: datetime, sessions_per_day: int = 12,
                 history_days: int = 183, detail_cache_size: int = 256, *, clock_speed: float = 0.0,
                 anchor: datetime | None = None, live_scenarios: int = 3,
                 quality_scenarios: bool = False, unit_faults: bool = False,
                 duration_faults: bool = False, ending_every_seconds: float = 240.0) -> None:
        if clock_speed < 0 or not math.isfinite(clock_speed):
            raise ValueError("clock_speed must be a finite number >= 0")
        if live_scenarios < 0:
            raise ValueError("live_scenarios must be >= 0")
        if not 0 < ending_every_seconds < float("inf"):
            raise ValueError("ending_every_seconds must be a finite number > 0")
        self.ending_every = timedelta(seconds=ending_every_seconds)
        self.seed = seed
        self._start = _utc_second(now)
        self.anchor = _utc_second(anchor) if anchor is not None else self._start
        self.clock_speed = float(clock_speed)
        self.sessions_per_day = sessions_per_day
        self.history_days = history_days
        self.n_live_scenarios = live_scenarios
        self.with_quality_scenarios = bool(quality_scenarios)
        self.unit_faults = bool(unit_faults)
        self.duration_faults = bool(duration_faults)
        self._clock_lock = threading.Lock()
        self._wall_start = monotonic()
        self._offset = 0.0  # simulated seconds added by advance() / set_now()
        self._lock = threading.RLock()
        self._days: dict[date, list[_Session]] = {}
        self._index: dict[str, _Session] = {}
        self._scenarios: list[_Session] | None = None
        self._quality: list[_Session] | None = None
        self._details: OrderedDict[str, _Detail] = OrderedDict()
        self._detail_cache_size = detail_cache_size

    # -------------------------------------------------------------------- clock
    @property
    def now(self) -> datetime:
        """The dataset's current time (aware UTC, whole seconds)."""
        with self._clock_lock:
            seconds = self._offset + (monotonic() - self._wall_start) * self.clock_speed
        return self._start + timedelta(seconds=math.floor(seconds))

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward by ``seconds`` simulated seconds (on top of any clock speed);
        returns the new ``now``. Lets a test play minutes of a live session without sleeping."""
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError("advance() takes a finite number of seconds >= 0")
        with self._clock_lock:
            self._offset += seconds
        return self.now

    def set_now(self, when: datetime) -> datetime:
        """Set the clock to ``when`` (it keeps running from there at ``clock_speed``); returns it.

        Going back is allowed (nothing cached depends on the clock), but a client then sees
        sessions become live again: tests that share a dataset should only move forward.
        """
        target = _utc_second(when)
        with self._clock_lock:
            elapsed = (monotonic() - self._wall_start) * self.clock_speed
            self._offset = (target - self._start).total_seconds() - elapsed
        return target

    def _at(self, at: datetime | None) -> datetime:
        return self.now if at is None else _utc_second(at)

    @property
    def first_day(self) -> date:
        """The oldest UTC day covered at ``now`` (``history_days`` before it)."""
        return (self.now - timedelta(days=self.history_days)).date()

    @property
    def last_day(self) -> date:
        """Today (UTC) at ``now``."""
        return self.now.date()

    def _day_range(self, t: datetime) -> tuple[date, date]:
        return (t - timedelta(days=self.history_days)).date(), t.date()

    # ----------------------------------------------------------------- sessions
    def days(self, at: datetime | None = None) -> list[date]:
        """Every UTC day the dataset covers, oldest first."""
        first, last = self._day_range(self._at(at))
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def _day(self, day: date) -> list[_Session]:
        """Every session that starts on ``day``, whatever the clock says (generated once, cached)."""
        with self._lock:
            if day not in self._days:
                sessions = self._generate_day(day)
                self._days[day] = sessions
                for s in sessions:
                    self._index[s.id] = s
            return self._days[day]

    def _sessions(self, day: date, at: datetime | None = None) -> list[_Session]:
        """The sessions of ``day`` that have started by ``at`` (none outside the covered days)."""
        t = self._at(at)
        first, last = self._day_range(t)
        if not first <= day <= last:
            return []
        return [s for s in self._day(day) if s.start <= t]

    def _generate_day(self, day: date) -> list[_Session]:
        rng = random.Random(f"zoom-sim:{self.seed}:day:{day.isoformat()}")
        spd = self.sessions_per_day
        count = rng.randint(max(0, spd - spd // 2), spd + spd // 2) if spd > 0 else 0
        midnight = datetime.combine(day, time(0), tzinfo=UTC)
        plans: list[tuple[datetime, int]] = []
        for _ in range(count):
            start = midnight + timedelta(seconds=rng.randrange(86400))
            minutes = min(240.0, max(1.0, rng.lognormvariate(3.4, 0.7)))
            plans.append((start, int(minutes * 60) + rng.randrange(60)))
        # Day-boundary cases, decided deterministically per day.
        edge = rng.random()
        if count and edge < 0.15:
            plans[0] = (midnight, plans[0][1])  # starts exactly at 00:00:00
        elif count and edge < 0.30:  # ends exactly at next midnight
            dur = 600 + rng.randrange(3000)
            plans[0] = (midnight + timedelta(days=1, seconds=-dur), dur)
        elif count and edge < 0.45:  # ends at 23:59:59
            dur = 300 + rng.randrange(1800)
            plans[0] = (midnight + timedelta(days=1, seconds=-1 - dur), dur)
        elif count and edge < 0.60:  # crosses midnight
            plans[0] = (midnight + timedelta(hours=23, minutes=50), 1200 + rng.randrange(1800))
        # Ids the published encoding rule treats specially: leading "/", "//" inside, leading "+".
        special_slash = rng.random() < 0.3
        special_double = rng.random() < 0.3
        special_plus = rng.random() < 0.3
        # Two long sessions live at the anchor that the random plan may not produce.
        live_rng = random.Random(f"zoom-sim:{self.seed}:live:{self.anchor.isoformat()}")
        for minutes_ago, total in ((7, 3600), (95, 7200)):
            start = self.anchor - timedelta(minutes=minutes_ago)
            dur = total + live_rng.randrange(600)
            if start.date() == day:
                plans.append((start, dur))
        # Every plan is generated, also those starting after the clock: the clock only decides
        # what is visible, so the RNG stream (and every session of the day) never depends on it.
        sessions: list[_Session] = []
        for i, (start, dur) in enumerate(plans):
            sid = base64.b64encode(rng.randbytes(rng.randint(16, 24))).decode("ascii")
            if i == 1 and special_slash:
                sid = "/" + sid[1:]
            if i == 2 and special_double:
                sid = sid[:5] + "//" + sid[7:]
            if i == 3 and special_plus:
                sid = "+" + sid[1:]
            sessions.append(self._make_session(rng, sid, day, start, dur))
        sessions += [s for s in self._scenario_sessions() if s.day == day]
        sessions += [s for s in self._quality_sessions() if s.day == day]
        sessions.sort(key=lambda s: (s.start, s.id))
        return sessions

    def _make_session(self, rng: random.Random, sid: str, day: date, start: datetime, dur: int) -> _Session:
        end = start + timedelta(seconds=dur)
        has_video = rng.random() < 0.8
        has_share = rng.random() < 0.35
        n_users = rng.randint(25, 40) if rng.random() < 0.03 else rng.randint(1, 12)
        incident = rng.random() < _INCIDENT_RATE
        # Every draw happens whether or not the session is live, so past data never depends on `now`.
        empty_duration = rng.random() < 0.01
        long_form = rng.random() < 0.6
        # Drawn either way, so the switch changes these `duration` strings and nothing else.
        mismatch = not empty_duration and rng.random() < DURATION_MISMATCH_RATE and self.duration_faults
        tripled, extra_minutes = rng.random() < 0.5, rng.randint(2, 45)
        if mismatch:  # like Zoom's own example: "30:00" for a ten-minute session
            shown = dur * 3 if tripled else dur + 60 * extra_minutes
        else:
            shown = dur
        dur_text = "" if empty_duration else _render_duration(shown, long_form or shown < 60)
        key_roll = rng.random()
        grades = ((("poor", "bad"), (60, 40)) if incident else (("good", "fair", "poor"), (82, 15, 3)))
        obj: dict[str, Any] = {
            "id": sid,
            "session_name": f"{rng.choice(_WORDS)} {rng.randint(1, 999)}",
            "start_time": iso(start),
            "end_time": iso(end),
            "duration": dur_text,
            "user_count": n_users,
            "has_voip": rng.random() < 0.85,
            "has_video": has_video,
            "has_screen_share": has_share,
            "has_recording": rng.random() < 0.1,
            "has_pstn": rng.random() < 0.08,
            "has_session_summary": rng.random() < 0.05,
            "session_key": "" if key_roll < 0.2 else f"key-{rng.randrange(16**8):08x}",
            "audio_quality": rng.choices(*grades)[0],
            "video_quality": rng.choices(*grades)[0] if has_video else "",
            "screen_share_quality": rng.choices(*grades)[0] if has_share else "",
        }
        return _Session(sid, day, start, end, obj, has_video, has_share, n_users,
                        trouble=_INCIDENT_TROUBLE if incident else 0.0, duration_mismatch=mismatch,
                        duration_format=(empty_duration, long_form))

    # ---------------------------------------------------------- live scenarios
    def _scenario_sessions(self) -> list[_Session]:
        with self._lock:
            if self._scenarios is None:
                self._scenarios = [self._make_scenario(i) for i in range(self.n_live_scenarios)]
            return self._scenarios

    def _make_scenario(self, i: int) -> _Session:
        """Scenario ``i``, placed around the anchor A (from its own RNG: the days' data is untouched).

        churn: started ~6 min before A, ~45-50 min long; one user leaves at A+4 min, one joins at
        A+3 min (and leaves at A+25 min), one leaves at A+2 min and rejoins at A+6 min, one joins
        at A+8 min. degrading: started ~10 min before A, ~50-55 min long; from A+5 min one user's
        audio and video samples are bad until the end. ending (k = 0, 1, ...): started ~25 min
        before A, ends between A+3min+kE and A+4min+kE (E: ``ending_every_seconds``, 4 min by
        default), so N of them end over N×E.
        """
        a = self.anchor
        rng = random.Random(f"zoom-sim:{self.seed}:scenario:{a.isoformat()}:{i}")
        kind = SCENARIO_KINDS[min(i, len(SCENARIO_KINDS) - 1)]
        jitter = timedelta(seconds=rng.randrange(60))
        sec = lambda n: timedelta(seconds=n)  # noqa: E731
        degrades_at: datetime | None = None
        if kind == "churn":
            start = a - 6 * _MINUTE - jitter
            end = start + 45 * _MINUTE + sec(rng.randrange(300))
            users: tuple[tuple[str, tuple[tuple[datetime, datetime], ...]], ...] = (
                ("host", ((start + sec(5), end),)),
                ("attendee", ((start + sec(40), end - sec(30)),)),
                ("early_leaver", ((start + sec(60), a + 4 * _MINUTE),)),
                ("late_joiner", ((a + 3 * _MINUTE, a + 25 * _MINUTE),)),
                ("rejoiner", ((start + sec(90), a + 2 * _MINUTE), (a + 6 * _MINUTE, end))),
                ("late_stayer", ((a + 8 * _MINUTE, end),)),
            )
            description = ("users join and leave mid-session: early_leaver leaves at A+4min, late_joiner "
                           "joins at A+3min and leaves at A+25min, rejoiner leaves at A+2min and rejoins "
                           "at A+6min, late_stayer joins at A+8min (A = anchor)")
        elif kind == "degrading":
            start = a - 10 * _MINUTE - jitter
            end = start + 50 * _MINUTE + sec(rng.randrange(300))
            degrades_at = a + 5 * _MINUTE
            users = (
                ("host", ((start + sec(5), end),)),
                ("attendee", ((start + sec(30), end),)),
                ("victim", ((start + sec(45), end),)),
                ("attendee", ((start + 2 * _MINUTE, end - sec(60)),)),
            )
            description = ("quality degrades: from A+5min the victim's audio and video samples are poor "
                           "(latency/jitter/loss above POOR_LIMITS) until the session ends")
        else:
            k = i - (len(SCENARIO_KINDS) - 1)
            start = a - (25 + 3 * k) * _MINUTE - jitter
            end = a + 3 * _MINUTE + k * self.ending_every + sec(rng.randrange(60))
            users = (
                ("host", ((start + sec(5), end),)),
                ("attendee", ((start + _MINUTE, end - sec(20)),)),
                ("attendee", ((start + 2 * _MINUTE, start + 10 * _MINUTE),)),
            )
            ends_at = 180 + k * self.ending_every.total_seconds()
            description = f"ends at A+{ends_at:g}s (+<60 s), between two polls a few minutes apart"
        sid = base64.b64encode(rng.randbytes(18)).decode("ascii")
        dur = int((end - start).total_seconds())
        quality = "poor" if kind == "degrading" else "good"
        obj: dict[str, Any] = {
            "id": sid,
            "session_name": f"{rng.choice(_WORDS)} {rng.randint(1, 999)}",
            "start_time": iso(start),
            "end_time": iso(end),
            "duration": _render_duration(dur, True),
            "user_count": len(users),
            "has_voip": True,
            "has_video": True,
            "has_screen_share": False,
            "has_recording": False,
            "has_pstn": False,
            "has_session_summary": False,
            "session_key": f"key-{rng.randrange(16**8):08x}",
            "audio_quality": quality,
            "video_quality": quality,
            "screen_share_quality": "",
        }
        scenario = _Scenario(kind, description, users, degrades_at)
        return _Session(sid, start.date(), start, end, obj, True, False, len(users), scenario=scenario)

    def live_scenarios(self) -> list[dict[str, Any]]:
        """The scripted live sessions around the anchor, for tests and demos.

        One dict per scenario: ``id``, ``kind`` ("churn", "degrading", "ending"), ``description``,
        ``start``, ``end`` (aware datetimes), ``degrades_at`` (None unless "degrading") and
        ``users``: ``[{"user_id", "role", "spans": [(join, leave), ...]}]`` in the order drawn.
        Independent of the clock (a scenario that has ended is still listed here).
        """
        out: list[dict[str, Any]] = []
        for s in self._scenario_sessions():
            assert s.scenario is not None
            self._day(s.day)  # index it with its day
            ids = self._detail(s).user_ids
            out.append({
                "id": s.id, "kind": s.scenario.kind, "description": s.scenario.description,
                "start": s.start, "end": s.end, "degrades_at": s.scenario.degrades_at,
                "users": [{"user_id": uid, "role": role, "spans": list(spans)}
                          for uid, (role, spans) in zip(ids, s.scenario.users, strict=True)],
            })
        return out

    # ------------------------------------------------------- quality scenarios
    @property
    def quality_day(self) -> date:
        """The UTC day of the scripted quality sessions: the day before the anchor's."""
        return self.anchor.date() - timedelta(days=1)

    def _quality_sessions(self) -> list[_Session]:
        with self._lock:
            if self._quality is None:
                self._quality = ([self._make_quality_session(i) for i in range(len(QUALITY_KINDS))]
                                 if self.with_quality_scenarios else [])
            return self._quality

    def _make_quality_session(self, i: int) -> _Session:
        """Scripted past session ``i`` (QUALITY_KINDS), from its own RNG (the days' data is untouched):
        on ``quality_day`` from (9 + i):00:00 UTC for 21 minutes; joins in its first minute, 20
        samples each (one a minute) unless the script says otherwise."""
        kind = QUALITY_KINDS[i]
        name, description, roles = _QUALITY_SCRIPTS[kind]
        day = self.quality_day
        rng = random.Random(f"zoom-sim:{self.seed}:quality:{day.isoformat()}:{kind}")
        start = datetime.combine(day, time(9 + i), tzinfo=UTC)
        end = start + (QUALITY_MINUTES + 1) * _MINUTE
        sid = base64.b64encode(rng.randbytes(18)).decode("ascii")
        quality = "good" if kind == "reconnect" else "poor"
        obj: dict[str, Any] = {
            "id": sid,
            "session_name": name,
            "start_time": iso(start),
            "end_time": iso(end),
            "duration": _render_duration(int((end - start).total_seconds()), True),
            "user_count": len(roles),
            "has_voip": True,
            "has_video": True,
            "has_screen_share": False,
            "has_recording": False,
            "has_pstn": False,
            "has_session_summary": False,
            "session_key": f"key-{rng.randrange(16**8):08x}",
            "audio_quality": quality,
            "video_quality": quality,
            "screen_share_quality": "",
        }
        script = _QualityScript(kind, name, description, roles)
        return _Session(sid, day, start, end, obj, True, False, len(roles), quality=script)

    def quality_scenarios(self) -> list[dict[str, Any]]:
        """The scripted past sessions whose call-quality causes are known ([] unless the dataset was
        built with ``quality_scenarios=True``), for end-to-end tests of the warehouse's scoring.

        One dict per session, in QUALITY_KINDS order: ``id``, ``kind``, ``description``, ``start``,
        ``end`` (aware datetimes), ``users`` (``[{"user_id", "role"}]`` in the order drawn) and
        ``expected``: the ``join_quality`` rows the warehouse contract (v3) gives with the default
        thresholds, one per join and media type (``audio``, ``video``), ordered by join time, user id
        and media type: ``{"user_id", "join_time", "media_type", "cause", "cause_user_id", "issues"}``
        (``issues`` comma-separated in the contract's order, ``""`` when none). Independent of the clock.
        """
        out: list[dict[str, Any]] = []
        for s in self._quality_sessions():
            assert s.quality is not None
            self._day(s.day)  # index it with its day
            detail = self._detail(s)
            ids = detail.user_ids
            by_role = {role.role: uid for uid, role in zip(ids, s.quality.roles, strict=True)}
            expected: list[dict[str, Any]] = []
            for uid, role in zip(ids, s.quality.roles, strict=True):
                joins = sorted(j.join for j in detail.joins if j.row["user_id"] == uid)
                for join, (cause, named, audio, video) in zip(joins, role.expect, strict=True):
                    for media, issues in (("audio", audio), ("video", video)):
                        expected.append({
                            "user_id": uid, "join_time": join, "media_type": media, "cause": cause,
                            "cause_user_id": by_role[named] if named is not None else None,
                            "issues": issues,
                        })
            expected.sort(key=lambda r: (r["join_time"], r["user_id"], r["media_type"]))
            out.append({
                "id": s.id, "kind": s.quality.kind, "description": s.quality.description,
                "start": s.start, "end": s.end,
                "users": [{"user_id": uid, "role": role.role} for uid, role in zip(ids, s.quality.roles,
                                                                                    strict=True)],
                "expected": expected,
            })
        return out

    # ------------------------------------------------------------ what is seen
    def session_object(self, session: _Session, at: datetime | None = None) -> dict[str, Any]:
        """The session as the list endpoint serves it at ``at`` (default ``now``): once ended, its
        fixed object; while live, ``end_time`` null and ``duration`` the time it has run."""
        t = self._at(at)
        obj = dict(session.obj)
        if session.end > t:
            empty, long_form = session.duration_format
            shown = max(0, int((t - session.start).total_seconds()))
            obj["end_time"] = None
            obj["duration"] = "" if empty else _render_duration(shown, long_form or shown < 60)
        return obj

    def sessions_for_day(self, day: date, at: datetime | None = None) -> list[dict[str, Any]]:
        """Sessions that started on `day` (UTC) by ``at`` as the list endpoint serves them, past and live."""
        t = self._at(at)
        return [self.session_object(s, t) for s in self._sessions(day, t)]

    def find_session(self, session_id: str, at: datetime | None = None) -> _Session | None:
        """Look a session up by id (None unless it has started by ``at`` on a covered day),
        generating every covered day once if it is not cached yet."""
        t = self._at(at)
        first, last = self._day_range(t)
        with self._lock:
            found = self._index.get(session_id)
            if found is None:
                d = first
                while d <= last:
                    self._day(d)
                    d += timedelta(days=1)
                found = self._index.get(session_id)
        if found is None or not first <= found.day <= last or found.start > t:
            return None
        return found

    def is_live(self, session: _Session, at: datetime | None = None) -> bool:
        """Running at ``at`` (default ``now``): started and not yet ended."""
        t = self._at(at)
        return session.start <= t < session.end

    def past_sessions(self, from_day: date, to_day: date, at: datetime | None = None) -> list[_Session]:
        """Sessions that started in [from_day, to_day] and ended by ``at`` (default ``now``)."""
        t = self._at(at)
        out: list[_Session] = []
        d = from_day
        while d <= to_day:
            out.extend(s for s in self._sessions(d, t) if s.end <= t)
            d += timedelta(days=1)
        return out

    def ended_between(self, since: datetime, until: datetime) -> list[_Session]:
        """Sessions that ended in (since, until], by end time: what Zoom notifies as ``session.ended``."""
        out = [s for s in self._sessions_around(since, until) if since < s.end <= until]
        return sorted(out, key=lambda s: (s.end, s.id))

    def alerts_between(self, since: datetime, until: datetime) -> list[tuple[datetime, _Session, list[str]]]:
        """Zoom's ``session.alert``s raised in (since, until]: a degrading scenario when it degrades
        (audio and video), a session-wide incident halfway through (audio)."""
        out: list[tuple[datetime, _Session, list[str]]] = []
        for s in self._sessions_around(since, until):
            if s.scenario is not None and s.scenario.degrades_at is not None:
                when = s.scenario.degrades_at
                issues = ["Unstable audio quality", "Unstable video quality"]
            elif s.trouble > 0:
                when, issues = s.start + (s.end - s.start) / 2, ["Unstable audio quality"]
            else:
                continue
            when = _utc_second(when)
            if since < when <= until and when < s.end:
                out.append((when, s, issues))
        return sorted(out, key=lambda a: (a[0], a[1].id))

    def _sessions_around(self, since: datetime, until: datetime) -> Iterator[_Session]:
        """Every session that started from the day before ``since`` to ``until``'s day (sessions last
        at most a few hours), within the covered days: where events in (since, until] can come from."""
        first, _ = self._day_range(until)
        day = max(first, (since - timedelta(days=1)).date())
        while day <= until.date():
            yield from self._day(day)
            day += timedelta(days=1)

    def live_sessions(self, from_day: date | None = None, to_day: date | None = None,
                      at: datetime | None = None) -> list[_Session]:
        """Sessions running at ``at`` (default ``now``; they started at most a few hours ago),
        only those that started in [from_day, to_day] when given."""
        t = self._at(at)
        out: list[_Session] = []
        for back in range(2, -1, -1):
            day = t.date() - timedelta(days=back)
            if (from_day is None or day >= from_day) and (to_day is None or day <= to_day):
                out.extend(s for s in self._sessions(day, t) if self.is_live(s, t))
        return out

    def daily_counts(self, from_date: date, to_date: date, at: datetime | None = None
                     ) -> dict[date, dict[str, int]]:
        """What Zoom's daily usage report says for each covered day in [from_date, to_date].

        ``sessions``: past sessions that started that UTC day; ``users``: the sum of their
        ``user_count`` (distinct users per session, a rejoin counted once); ``session_minutes``:
        the sum of their ``end - start``, each floored to whole minutes. Days outside the
        dataset's history (or after today) are left out. Cheap: no users are generated.
        """
        t = self._at(at)
        first, last = self._day_range(t)
        out: dict[date, dict[str, int]] = {}
        d, last = max(from_date, first), min(to_date, last)
        while d <= last:
            past = [s for s in self._sessions(d, t) if s.end <= t]
            out[d] = {
                "sessions": len(past),
                "users": sum(s.n_users for s in past),
                "session_minutes": sum(int((s.end - s.start).total_seconds()) // 60 for s in past),
            }
            d += timedelta(days=1)
        return out

    # -------------------------------------------------------------------- users
    def _detail(self, session: _Session) -> _Detail:
        with self._lock:
            cached = self._details.get(session.id)
            if cached is not None:
                self._details.move_to_end(session.id)
                return cached
            if session.scenario is not None:
                detail = self._generate_scenario_users(session)
            elif session.quality is not None:
                detail = self._generate_quality_users(session)
            else:
                detail = self._generate_users(session)
            self._details[session.id] = detail
            while len(self._details) > self._detail_cache_size:
                self._details.popitem(last=False)
            return detail

    def _view(self, session: _Session, t: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(QoS list entries, users list entries) at ``t``: the whole session once it has ended;
        while live, the joins made by ``t``, their samples taken by ``t``, ``leave_time`` only
        for those who have left (null in the QoS list, absent from the users list) and grades
        from the samples seen so far. Built fresh for a live session: the cache is never cut."""
        detail = self._detail(session)
        if t >= session.end:
            return detail.users, detail.members
        users: list[dict[str, Any]] = []
        members: list[dict[str, Any]] = []
        for j in detail.joins:
            if j.join > t:
                continue
            samples = j.qos_user["user_qos"]
            n = min(len(samples), int((t - j.join).total_seconds()) // 60)
            user = dict(j.qos_user)
            user["user_qos"] = samples[:n]
            member = dict(j.member)
            if j.leave > t:
                user["leave_time"] = None
                del member["leave_time"]  # the definition: only once the user has left
            for media, column in _MEDIA_GRADE.items():
                member[column] = grade(*j.cumulative[media][n])
            users.append(user)
            members.append(member)
        return users, members

    def users_for_session(self, session_id: str, at: datetime | None = None) -> list[dict[str, Any]]:
        """The user entries (one per join) as the QoS endpoint serves them at ``at``; [] if unknown."""
        t = self._at(at)
        session = self.find_session(session_id, t)
        return [] if session is None else self._view(session, t)[0]

    def participants_for_session(self, session_id: str, at: datetime | None = None) -> list[dict[str, Any]]:
        """The entries of ``GET /videosdk/sessions/{id}/users``: the same joins in the same order as
        the QoS list, identity fields plus ``participant_uuid``, grades and ``audio_call``."""
        t = self._at(at)
        session = self.find_session(session_id, t)
        return [] if session is None else self._view(session, t)[1]

    def _draw_user(self, rng: random.Random, s: _Session, u: int
                   ) -> tuple[dict[str, Any], dict[str, Any], int, dict[str, bool]]:
        """One user's identity, extras, condition and profile (the draws, in their fixed order)."""
        uid = base64.urlsafe_b64encode(rng.randbytes(16)).decode("ascii").rstrip("=")
        device = rng.choices(_DEVICES, _DEVICE_WEIGHTS)[0]
        client = rng.choice(_CLIENTS[device])
        os_name, versions = _OS[device]
        browser = rng.choice(_BROWSERS) if client == "Web SDK" else ("", "")
        network = rng.choice(_NETWORKS[device])
        location, home_dc = rng.choices(_LOCATIONS, _LOCATION_WEIGHTS)[0]
        data_center = home_dc if rng.random() < 0.85 else rng.choice(_DATA_CENTERS)
        ident: dict[str, Any] = {
            "id": uid,
            "name": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
            "user_key": "" if rng.random() < 0.2 else f"uk-{rng.randrange(10**6):06d}",
            "is_original_host": u == 0,
            "device": device,
            "client": client,
            "os": os_name,
            "os_version": rng.choice(versions),
            "browser_name": browser[0],
            "browser_version": browser[1],
            "network_type": network,
            "ip_address": f"{rng.choice((10, 172, 192, 203))}.{rng.randrange(256)}."
                          f"{rng.randrange(256)}.{rng.randrange(1, 255)}",
            "location": location,
            "microphone": rng.choice(_MICS),
            "speaker": rng.choice(_SPEAKERS),
            "camera": "" if device in ("Phone", "H.323/SIP") else rng.choice(_CAMERAS),
            "data_center": data_center,
            "connection_type": rng.choice(("UDP", "TCP", "SSL", "P2P")),
        }
        if rng.random() < 0.05:
            ident["future_field"] = f"opaque-{rng.randrange(10**4)}"
        extra: dict[str, Any] = {
            "participant_uuid": str(uuid.UUID(bytes=rng.randbytes(16))).upper(),
            "audio_call": [{"call_number": str(rng.randrange(1000, 10**6)),
                            "call_type": rng.choices(("call-in", "call-out"), (85, 15))[0],
                            "zoom_number": rng.choice(_ZOOM_NUMBERS)}] if device == "Phone" else [],
        }
        trouble = (s.trouble + _NETWORK_TROUBLE.get(network, 0.0) + _DC_TROUBLE.get(data_center, 0.0)
                   + _DEVICE_TROUBLE.get(device, 0.0))
        roll = rng.random()
        condition = 2 if roll < trouble * _BAD_SHARE else 1 if roll < trouble else 0
        profile = {
            "video": s.has_video and device != "Phone" and rng.random() < 0.75,
            "share": s.has_screen_share and rng.random() < 0.5,
            "cpu": device not in ("Phone", "H.323/SIP", "") and rng.random() < 0.95,
            "wifi": network == "Wifi",
            "pressure": rng.random() < 0.3,
            "empty": rng.random() < 0.05,
        }
        return ident, extra, condition, profile

    def _generate_users(self, s: _Session) -> _Detail:
        rng = random.Random(f"zoom-sim:{self.seed}:users:{s.id}")
        counter = _Counter(unit_faults=self.unit_faults)
        span = max(1, int((s.end - s.start).total_seconds()))
        joins: list[_Join] = []
        for u in range(s.n_users):
            ident, extra, condition, profile = self._draw_user(rng, s, u)
            join = s.start + timedelta(seconds=rng.randrange(max(1, span * 3 // 10)))
            remaining = max(1, int((s.end - join).total_seconds()))
            leave = join + timedelta(seconds=max(1, int(remaining * rng.uniform(0.3, 1.0))))
            spans = [(join, leave)]
            if rng.random() < 0.15 and (s.end - leave).total_seconds() > 180:
                rejoin = leave + timedelta(seconds=rng.randint(10, 120))
                left = max(1, int((s.end - rejoin).total_seconds()))
                spans.append((rejoin, rejoin + timedelta(seconds=max(1, int(left * rng.uniform(0.5, 1.0))))))
            for j_start, j_end in spans:
                joins.append(self._render_join(rng, s, ident, extra, profile, condition, j_start, j_end,
                                               counter))
        return self._assemble(joins, counter)

    def _generate_scenario_users(self, s: _Session) -> _Detail:
        """The scripted users of a scenario session: good connections on video-capable clients,
        samples every minute of every join (no cap), the "victim" bad after ``degrades_at``."""
        assert s.scenario is not None
        rng = random.Random(f"zoom-sim:{self.seed}:users:{s.id}")
        counter = _Counter(unit_faults=self.unit_faults)
        joins: list[_Join] = []
        user_ids: list[str] = []
        for u, (role, spans) in enumerate(s.scenario.users):
            while True:  # redraw until the client can send video (deterministic per seed)
                ident, extra, _, profile = self._draw_user(rng, s, u)
                if ident["device"] not in ("Phone", "H.323/SIP", ""):
                    break
            user_ids.append(ident["id"])
            profile.update(video=True, share=False, empty=False)
            degrades_at = s.scenario.degrades_at if role == "victim" else None
            for j_start, j_end in spans:
                joins.append(self._render_join(rng, s, ident, extra, profile, 0, j_start, j_end, counter,
                                               cap=None, degrades_at=degrades_at))
        detail = self._assemble(joins, counter)
        detail.user_ids = user_ids
        return detail

    def _generate_quality_users(self, s: _Session) -> _Detail:
        """The users of a scripted quality session: Windows/Mac clients with audio and video, each
        join one sample a minute with exactly the blocks audio_input, audio_output, video_input,
        video_output and a system sample; every value present and clean (no odd values, no spikes)."""
        assert s.quality is not None
        rng = random.Random(f"zoom-sim:{self.seed}:users:{s.id}")
        joins: list[_Join] = []
        user_ids: list[str] = []
        for u, role in enumerate(s.quality.roles):
            while True:  # redraw until a desktop client (deterministic per seed)
                ident, extra, _, _ = self._draw_user(rng, s, u)
                if ident["device"] in ("Windows", "Mac"):
                    break
            ident.pop("future_field", None)
            if role.weak_wifi:
                ident["network_type"] = "Wifi"
            elif ident["network_type"] not in ("Wired", "Wifi"):
                ident["network_type"] = "Wired"
            user_ids.append(ident["id"])
            first = 5 + 6 * u  # seconds into the session's first minute
            spans = role.spans or ((first, first + QUALITY_MINUTES * 60 + 10),)
            for j_start, j_end in spans:
                joins.append(self._render_quality_join(rng, s, ident, extra, role,
                                                       s.start + timedelta(seconds=j_start),
                                                       s.start + timedelta(seconds=j_end)))
        detail = self._assemble(joins, _Counter())
        detail.user_ids = user_ids
        return detail

    def _render_quality_join(self, rng: random.Random, s: _Session, ident: dict[str, Any],
                             extra: dict[str, Any], role: _QualityRole, join: datetime,
                             leave: datetime) -> _Join:
        """One scripted join: a sample a minute after joining (``join + k min``, k = 1..), each with
        the four media blocks (bad where the role's minutes say) and a system sample."""
        user = dict(ident)
        user["join_time"] = iso(join)
        user["leave_time"] = iso(leave)
        key = {"session_id": s.id, "user_id": ident["id"], "join_time": join}
        row: dict[str, Any] = dict(key)
        row["leave_time"] = leave
        row["user_name"] = _text(ident["name"])
        for col in _IDENTITY_COLUMNS:
            row[col] = _text(ident[col])
        row["is_original_host"] = ident["is_original_host"]
        samples: list[dict[str, Any]] = []
        qos_rows: list[dict[str, Any]] = []
        sys_rows: list[dict[str, Any]] = []
        poor = {media: [0, 0] for media in _MEDIA_GRADE}
        cumulative: dict[str, list[tuple[int, int]]] = {media: [(0, 0)] for media in _MEDIA_GRADE}
        wifi = ident["network_type"] == "Wifi"
        for k in range(int((leave - join).total_seconds()) // 60):
            at = join + timedelta(minutes=k + 1)
            minute = int((at - s.start).total_seconds()) // 60
            sample: dict[str, Any] = {"date_time": iso(at)}
            base = {**key, "sampled_at": at}
            for name, media in (("audio_input", "audio"), ("audio_output", "audio"),
                                ("video_input", "video"), ("video_output", "video")):
                send = name.endswith("_input")
                bad = minute in (role.send_bad if send else role.receive_bad)
                starved = role.cpu_starved and send and media == "video"
                block, qrow, is_bad = self._render_quality_block(rng, media, bad, starved)
                sample[name] = block
                qos_rows.append({**base, "stream": name, **qrow})
                poor[media][0] += is_bad
                poor[media][1] += 1
            sys_row: dict[str, Any] = {c: None for c in TABLE_COLUMNS["user_system_qos"][4:]}
            if role.cpu_starved:
                zmin, zavg, zmax, smax, pressure = 60, 85, 97, 99, "critical"
            else:
                zmin = rng.randint(4, 8)
                zavg = zmin + rng.randint(8, 14)
                zmax, smax, pressure = rng.randint(28, 32), rng.randint(43, 47), "nominal"
            cpu: dict[str, Any] = {}
            for field_name, col, v in (("zoom_min_cpu_usage", "zoom_min_cpu_pct", zmin),
                                       ("zoom_avg_cpu_usage", "zoom_avg_cpu_pct", zavg),
                                       ("zoom_max_cpu_usage", "zoom_max_cpu_pct", zmax),
                                       ("system_max_cpu_usage", "system_max_cpu_pct", smax)):
                cpu[field_name] = f"{v}%"
                sys_row[col] = float(v)
            sample["cpu_usage"] = cpu
            if wifi:
                ravg = -82 if role.weak_wifi else -50
                rmax, rmin = (-76, -88) if role.weak_wifi else (-45, -55)
                sample["wifi_rssi"] = {"max_rssi": rmax, "avg_rssi": ravg, "min_rssi": rmin,
                                       "rssi_unit": "dBm"}
                sys_row.update(wifi_max_rssi=float(rmax), wifi_avg_rssi=float(ravg),
                               wifi_min_rssi=float(rmin), wifi_rssi_unit="dBm")
            sample["cpu_pressure_level"] = pressure
            sys_row["cpu_pressure_level"] = pressure
            sys_rows.append({**base, **sys_row})
            samples.append(sample)
            for media, counts in poor.items():
                cumulative[media].append((counts[0], counts[1]))
        user["user_qos"] = samples
        return _finish_join(user, extra, row, poor, qos_rows, sys_rows, join, leave, cumulative)

    @staticmethod
    def _render_quality_block(rng: random.Random, media: str, bad: bool, starved: bool
                              ) -> tuple[dict[str, Any], dict[str, Any], bool]:
        """One clean stream block of a scripted session: good (latency ~40 ms, jitter ~4 ms, loss
        ~0.1 %) or bad (~320 ms, ~70 ms, ~8 %); video 1280*720 at 25-30 fps, 320*180 at 5 fps when
        ``starved``. Returns (block as served, row values, poor by POOR_LIMITS)."""
        latency = rng.randint(300, 340) if bad else rng.randint(35, 45)
        jitter = rng.randint(60, 80) if bad else rng.randint(3, 5)
        avg_loss = rng.choice((7.5, 8.0, 8.5)) if bad else rng.choice((0.1, 0.1, 0.2))
        max_loss = round(avg_loss + rng.choice((0.2, 0.4, 0.6)) * (10 if bad else 1), 1)
        bitrate = rng.randint(40, 64) if media == "audio" else rng.randint(800, 1400) // (3 if bad else 1)
        block: dict[str, Any] = {
            "bitrate": f"{bitrate} kbps", "latency": f"{latency} ms", "jitter": f"{jitter} ms",
            "avg_loss": f"{avg_loss:g}%", "max_loss": f"{max_loss:g}%",
        }
        qrow: dict[str, Any] = {
            "bitrate_kbps": float(bitrate), "latency_ms": float(latency), "jitter_ms": float(jitter),
            "avg_loss_pct": avg_loss, "max_loss_pct": max_loss,
            "resolution_width": None, "resolution_height": None, "frame_rate_fps": None,
        }
        if media == "video":
            (w, h), fps = ((320, 180), 5) if starved else ((1280, 720), rng.randint(25, 30))
            block["resolution"] = f"{w}*{h}"
            block["frame_rate"] = f"{fps} fps"
            qrow.update(resolution_width=w, resolution_height=h, frame_rate_fps=float(fps))
        return block, qrow, is_poor(latency, jitter, avg_loss)

    @staticmethod
    def _assemble(joins: list[_Join], counter: _Counter) -> _Detail:
        joins.sort(key=lambda j: (j.qos_user["join_time"], j.qos_user["id"]))
        detail = _Detail(users=[j.qos_user for j in joins], members=[j.member for j in joins],
                         unparseable=counter.unparseable, joins=joins)
        detail.rows = {
            "session_users": [j.row for j in joins],
            "user_qos": [r for j in joins for r in j.qos_rows],
            "user_system_qos": [r for j in joins for r in j.sys_rows],
        }
        return detail

    def _render_join(self, rng: random.Random, s: _Session, ident: dict[str, Any], extra: dict[str, Any],
                     profile: dict[str, bool], condition: int, join: datetime, leave: datetime,
                     counter: _Counter, cap: int | None = 30, degrades_at: datetime | None = None) -> _Join:
        """The whole join, as served once the session has ended (``_view`` cuts live views from it)."""
        user = dict(ident)
        user["join_time"] = iso(join)
        user["leave_time"] = iso(leave)
        key = {"session_id": s.id, "user_id": ident["id"], "join_time": join}
        row: dict[str, Any] = dict(key)
        row["leave_time"] = leave
        row["user_name"] = _text(ident["name"])
        for col in _IDENTITY_COLUMNS:
            row[col] = _text(ident[col])
        row["is_original_host"] = ident["is_original_host"]
        samples: list[dict[str, Any]] = []
        qos_rows: list[dict[str, Any]] = []
        sys_rows: list[dict[str, Any]] = []
        poor = {media: [0, 0] for media in _MEDIA_GRADE}  # media -> [poor samples, samples]
        cumulative: dict[str, list[tuple[int, int]]] = {media: [(0, 0)] for media in _MEDIA_GRADE}
        n_samples = 0 if profile["empty"] else int((leave - join).total_seconds()) // 60
        if cap is not None:
            n_samples = min(cap, n_samples)
        resolution = rng.choice(_RESOLUTIONS)
        for k in range(n_samples):
            at = join + timedelta(minutes=k + 1)
            sample: dict[str, Any] = {"date_time": iso(at)}
            base = {**key, "sampled_at": at}
            level = min(2, condition + 1) if rng.random() < _SPIKE_RATE else condition
            if degrades_at is not None and at > degrades_at:
                level = 2
            blocks: list[tuple[str, str]] = [(b, "audio") for b in AUDIO_BLOCKS]
            if profile["video"]:
                blocks += [(b, "video") for b in VIDEO_BLOCKS]
            if profile["share"]:
                blocks += [(b, "share") for b in SHARE_BLOCKS]
            if rng.random() < 0.02:
                blocks.append((NEW_BLOCK, "audio"))
            for name, media in blocks:
                if rng.random() < 0.02:
                    continue  # an occasionally missing block
                block, qrow, bad = self._render_block(rng, media, resolution, level, counter)
                sample[name] = block
                qos_rows.append({**base, "stream": name, **qrow})
                if name != NEW_BLOCK:
                    poor[media][0] += bad
                    poor[media][1] += 1
            sys_row: dict[str, Any] = {c: None for c in TABLE_COLUMNS["user_system_qos"][4:]}
            has_sys = False
            if profile["cpu"] and rng.random() < 0.97:
                has_sys = True
                zmin = rng.randint(1, 12)
                zavg = zmin + rng.randint(0, 15)
                zmax = zavg + rng.randint(0, 20)
                smax = min(100, zmax + rng.randint(5, 50))
                cpu: dict[str, Any] = {}
                for field_name, col, v in (("zoom_min_cpu_usage", "zoom_min_cpu_pct", zmin),
                                           ("zoom_avg_cpu_usage", "zoom_avg_cpu_pct", zavg),
                                           ("zoom_max_cpu_usage", "zoom_max_cpu_pct", zmax),
                                           ("system_max_cpu_usage", "system_max_cpu_pct", smax)):
                    rendered, expected = _render_metric(rng, "pct", v, counter)
                    _put(cpu, field_name, rendered)
                    sys_row[col] = expected
                sample["cpu_usage"] = cpu
            if profile["wifi"] and rng.random() < 0.95:
                has_sys = True
                rmax = -rng.randint(30, 55) - 12 * level  # a worse link, a weaker signal
                ravg = rmax - rng.randint(0, 10)
                rmin = ravg - rng.randint(0, 15)
                wifi: dict[str, Any] = {}
                for field_name, col, v in (("max_rssi", "wifi_max_rssi", rmax),
                                           ("avg_rssi", "wifi_avg_rssi", ravg),
                                           ("min_rssi", "wifi_min_rssi", rmin)):
                    if rng.random() < 0.01:
                        continue
                    wifi[field_name] = v
                    sys_row[col] = float(v)
                wifi["rssi_unit"] = "dBm"
                sys_row["wifi_rssi_unit"] = "dBm"
                sample["wifi_rssi"] = wifi
            if profile["pressure"] and rng.random() < 0.9:
                has_sys = True
                pressure = "" if rng.random() < 0.03 else rng.choices(_PRESSURE, (80, 12, 6, 2))[0]
                sample["cpu_pressure_level"] = pressure
                sys_row["cpu_pressure_level"] = _text(pressure)
            if has_sys:
                sys_rows.append({**base, **sys_row})
            samples.append(sample)
            for media, counts in poor.items():
                cumulative[media].append((counts[0], counts[1]))
        user["user_qos"] = samples
        return _finish_join(user, extra, row, poor, qos_rows, sys_rows, join, leave, cumulative)

    def _render_block(self, rng: random.Random, media: str, resolution: tuple[int, int], level: int,
                      counter: _Counter) -> tuple[dict[str, Any], dict[str, Any], bool]:
        """One stream block: numbers drawn for the join's condition, then rendered; also whether the
        numbers are poor by Zoom's guidance (decided on the true numbers, not on what renders)."""
        block: dict[str, Any] = {}
        qrow: dict[str, Any] = {}
        lat_median, jit_median, loss_median = _CONDITIONS[level]
        if media == "audio":
            bitrate: float = rng.randint(300, 999) / 1000 if rng.random() < 0.03 else rng.randint(16, 90)
        elif media == "video":
            bitrate = min(4000, round(_lognormal(rng, 900 / (1 + level), 0.6)))
        else:
            bitrate = min(3000, round(_lognormal(rng, 500 / (1 + level), 0.6)))
        latency = min(5000, max(1, round(_lognormal(rng, lat_median, 0.45))))
        jitter = min(1000, round(_lognormal(rng, jit_median, 0.6)))
        avg_loss = min(100.0, round(_lognormal(rng, loss_median, 0.9), 1))
        max_loss = min(100.0, round(avg_loss + _lognormal(rng, avg_loss + 0.5, 0.5), 1))
        for fname, col, kind, v in (("bitrate", "bitrate_kbps", "kbps", bitrate),
                                    ("latency", "latency_ms", "ms", latency),
                                    ("jitter", "jitter_ms", "ms", jitter),
                                    ("avg_loss", "avg_loss_pct", "pct", avg_loss),
                                    ("max_loss", "max_loss_pct", "pct", max_loss)):
            rendered, expected = _render_metric(rng, kind, v, counter)
            _put(block, fname, rendered)
            qrow[col] = expected
        qrow["resolution_width"] = qrow["resolution_height"] = qrow["frame_rate_fps"] = None
        if media != "audio":
            w, h = resolution
            r = rng.random()
            if r < 0.01:
                block["resolution"] = ""
            elif r < 0.015:
                block["resolution"] = "-"
            elif r >= 0.02:
                block["resolution"] = f"{w}*{h}"
                qrow["resolution_width"], qrow["resolution_height"] = w, h
            rendered, expected = _render_metric(rng, "fps", max(1, rng.randint(5, 30) - 8 * level), counter)
            _put(block, "frame_rate", rendered)
            qrow["frame_rate_fps"] = expected
        return block, qrow, is_poor(latency, jitter, avg_loss)

    # -------------------------------------------------------------------- truth
    def expected_rows(self, from_date: date, to_date: date, with_grades: bool = False,
                      at: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
        """Rows a correct loader stores for past sessions that started in [from_date, to_date]
        (ended by ``at``, default ``now``; a live session's rows are those it will have once ended).

        Keys are the warehouse table names; row keys are exactly the contract's columns
        (without loaded_at). ``duration_seconds`` is always ``end - start`` (the ``duration``
        string is only a cross-check). The ``session_users`` columns that only the users
        endpoint provides (``GRADE_COLUMNS``) are None unless ``with_grades`` (a loader that
        also reads ``GET .../users``). Floats should be compared with pytest.approx.
        """
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLE_COLUMNS}
        for s in self.past_sessions(from_date, to_date, at):
            o = s.obj
            out["sessions"].append({
                "session_id": s.id,
                "session_name": _text(o["session_name"]),
                "session_key": _text(o["session_key"]),
                "start_time": s.start,
                "end_time": s.end,
                "duration_seconds": int((s.end - s.start).total_seconds()),
                "user_count": o["user_count"],
                **{k: o[k] for k in _FLAGS},
                **{k: _text(o[k]) for k in ("audio_quality", "video_quality", "screen_share_quality")},
                "qos_status": "loaded",
            })
            detail = self._detail(s)
            for table in ("user_qos", "user_system_qos"):
                out[table].extend(dict(r) for r in detail.rows[table])
            for r in detail.rows["session_users"]:
                row = dict(r)
                if not with_grades:
                    row.update(dict.fromkeys(GRADE_COLUMNS))
                out["session_users"].append(row)
        return out

    def unparseable_count(self, from_date: date, to_date: date, at: datetime | None = None) -> int:
        """How many values in the window a loader cannot take as given: metric values in an unknown
        unit (``unit_faults``), plus session ``duration`` strings that disagree with ``end - start``
        by over 60 s (``duration_faults``). Both switches off (the default): 0."""
        return sum(self._detail(s).unparseable + s.duration_mismatch
                   for s in self.past_sessions(from_date, to_date, at))
