"""Deterministic fake Zoom Video SDK data, plus the "truth" a correct loader must store.

Every UTC day (and every session's users) is generated from its own RNG seeded by
(seed, date) or (seed, session id). That keeps any single day cheap, stable across
processes and independent of which days were generated before. Numbers are decided
first and rendered into Zoom's unit-bearing strings second, so the expected warehouse
rows come straight from the numbers rather than from re-parsing the strings.
"""

from __future__ import annotations

import base64
import random
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

_MISSING: Any = object()  # sentinel: leave the key out of the rendered object
_NULL_TEXT = (None, "", "-", "N/A")

AUDIO_BLOCKS = ("audio_input", "audio_output", "audio_device_from_rwg", "audio_device_to_rwg")
VIDEO_BLOCKS = ("video_input", "video_output", "video_device_from_rwg", "video_device_to_rwg")
SHARE_BLOCKS = ("as_input", "as_output", "as_device_from_rwg", "as_device_to_rwg")
NEW_BLOCK = "audio_sharing_input"  # a block Zoom might add later
UNKNOWN_UNITS = ("furlongs", "parsecs", "widgets")

_WORDS = (
    "Standup", "Support", "Tutoring", "Telehealth", "Webinar", "Interview", "Review",
    "Onboarding", "Demo", "Coaching", "Sync", "Workshop", "Office hours", "Consult",
)
_FIRST = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jia",
          "Kofi", "Lena", "Mateo", "Noor", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tomoko")
_LAST = ("Silva", "Okafor", "Nguyen", "Müller", "Kowalski", "Haddad", "Ito", "Smith",
         "García", "Rossi", "Andersson", "Kim", "Dubois", "Novak")
_DEVICES = ("Windows", "Mac", "iOS", "Android", "Phone", "H.323/SIP")
_DEVICE_WEIGHTS = (30, 25, 15, 15, 8, 7)
_CLIENTS = {
    "Windows": ("Windows SDK", "Web SDK"), "Mac": ("macOS SDK", "Web SDK"),
    "iOS": ("iOS SDK",), "Android": ("Android SDK", "Web SDK"),
    "Phone": ("PSTN",), "H.323/SIP": ("H.323/SIP",),
}
_OS = {
    "Windows": ("Windows 11", ("10.0.22631", "10.0.26100")), "Mac": ("macOS", ("14.5", "15.1")),
    "iOS": ("iOS", ("17.5", "18.1")), "Android": ("Android", ("13", "14")),
    "Phone": ("", ("",)), "H.323/SIP": ("", ("",)),
}
_BROWSERS = (("Chrome", "126.0.0.0"), ("Firefox", "128.0"), ("Safari", "17.5"), ("Edge", "126.0.2592.87"))
_NETWORKS = {
    "Windows": ("Wired", "Wifi", "Others"), "Mac": ("Wifi", "Wired"),
    "iOS": ("Wifi", "Cellular"), "Android": ("Cellular", "Wifi"),
    "Phone": ("PPP", "Others"), "H.323/SIP": ("Wired",),
}
_LOCATIONS = ("San Jose (US)", "New York (US)", "London (GB)", "Berlin (DE)", "Tokyo (JP)",
              "Sydney (AU)", "São Paulo (BR)", "Mumbai (IN)")
_DATA_CENTERS = ("US (SC Top)", "US (NY)", "EU (Frankfurt)", "EU (Amsterdam)", "AP (Tokyo)", "AU (Sydney)")
_MICS = ("Built-in Microphone", "Headset Microphone (Jabra Evolve 75)", "MacBook Pro Microphone",
         "Realtek(R) Audio", "")
_SPEAKERS = ("Built-in Speakers", "Headset Earphone (Jabra Evolve 75)", "MacBook Pro Speakers", "")
_CAMERAS = ("FaceTime HD Camera", "Integrated Webcam", "Logitech BRIO", "")
_RESOLUTIONS = ((1280, 720), (640, 360), (1920, 1080), (320, 180), (960, 540))
_GRADES = ("good", "fair", "poor", "bad")
_GRADE_WEIGHTS = (70, 18, 8, 4)
_FLAGS = ("has_voip", "has_video", "has_screen_share", "has_recording", "has_pstn")
_PRESSURE = ("nominal", "fair", "serious", "critical")

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "sessions": (
        "session_id", "session_name", "session_key", "start_time", "end_time", "duration_seconds",
        "user_count", "has_voip", "has_video", "has_screen_share", "has_recording", "has_pstn",
        "audio_quality", "video_quality", "screen_share_quality",
    ),
    "session_users": (
        "session_id", "user_id", "join_time", "leave_time", "user_name", "user_key", "device",
        "client", "os", "os_version", "browser_name", "browser_version", "network_type",
        "ip_address", "location", "microphone", "speaker", "camera", "data_center",
        "connection_type", "is_original_host",
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


def iso(dt: datetime) -> str:
    """Render like Zoom: ISO-8601 UTC with a trailing Z and whole seconds."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: Any) -> Any:
    """What a correct loader stores for a rendered text value (null-ish strings -> None)."""
    return None if value is _MISSING or value in _NULL_TEXT else value


def _render_duration(seconds: int, long_form: bool) -> str:
    """Zoom's duration string: "HH:MM:SS" or minutes that may exceed 59: "62:03"."""
    if long_form:
        return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def _fmt(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass
class _Counter:
    unparseable: int = 0


def _render_metric(
    rng: random.Random, kind: str, value: float, counter: _Counter
) -> tuple[Any, float | None]:
    """Render one metric number as Zoom would, returning (rendered, value a loader must store).

    kind is the canonical unit: "kbps", "ms", "pct" or "fps". A low rate of odd values
    (empty, "-", "N/A", missing key, bare JSON number, unknown unit) exercises the loader.
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
        counter.unparseable += 1
        return f"{_fmt(value)} {rng.choice(UNKNOWN_UNITS)}", None
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


@dataclass
class _Session:
    """Internal truth for one session: times as datetimes, the rendered object, and flags."""

    id: str
    day: date
    start: datetime
    end: datetime  # true end; may be after `now` (then the session is live)
    obj: dict[str, Any]
    has_video: bool
    has_screen_share: bool
    n_users: int


@dataclass
class _Detail:
    """Rendered users of one session plus the rows a loader must produce from them."""

    users: list[dict[str, Any]]
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    unparseable: int = 0


class Dataset:
    """The simulated account's sessions over the last `history_days` days up to `now`."""

    def __init__(self, seed: int, now: datetime, sessions_per_day: int = 12,
                 history_days: int = 183, detail_cache_size: int = 256) -> None:
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        self.seed = seed
        self.now = now.astimezone(UTC).replace(microsecond=0)
        self.sessions_per_day = sessions_per_day
        self.first_day = (self.now - timedelta(days=history_days)).date()
        self.last_day = self.now.date()
        self._lock = threading.RLock()
        self._days: dict[date, list[_Session]] = {}
        self._index: dict[str, _Session] = {}
        self._all_generated = False
        self._details: OrderedDict[str, _Detail] = OrderedDict()
        self._detail_cache_size = detail_cache_size

    # ----------------------------------------------------------------- sessions
    def days(self) -> list[date]:
        """Every UTC day the dataset covers, oldest first."""
        n = (self.last_day - self.first_day).days
        return [self.first_day + timedelta(days=i) for i in range(n + 1)]

    def _sessions(self, day: date) -> list[_Session]:
        with self._lock:
            if day not in self._days:
                if not self.first_day <= day <= self.last_day:
                    self._days[day] = []
                else:
                    sessions = self._generate_day(day)
                    self._days[day] = sessions
                    for s in sessions:
                        self._index[s.id] = s
            return self._days[day]

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
        special_slash = rng.random() < 0.3
        special_double = rng.random() < 0.3
        # Sessions live at `now` that the random plan may not produce.
        if day == self.last_day or day == (self.now - timedelta(minutes=95)).date():
            live_rng = random.Random(f"zoom-sim:{self.seed}:live:{self.now.isoformat()}")
            for minutes_ago, total in ((7, 3600), (95, 7200)):
                start = self.now - timedelta(minutes=minutes_ago)
                dur = total + live_rng.randrange(600)
                if start.date() == day:
                    plans.append((start, dur))
        sessions: list[_Session] = []
        for i, (start, dur) in enumerate(plans):
            if start > self.now:
                rng.random()  # keep the stream aligned regardless of `now`
                continue
            sid = base64.b64encode(rng.randbytes(rng.randint(16, 24))).decode("ascii")
            if i == 1 and special_slash:
                sid = "/" + sid[1:]
            if i == 2 and special_double:
                sid = sid[:5] + "//" + sid[7:]
            sessions.append(self._make_session(rng, sid, day, start, dur))
        sessions.sort(key=lambda s: (s.start, s.id))
        return sessions

    def _make_session(self, rng: random.Random, sid: str, day: date, start: datetime, dur: int) -> _Session:
        end = start + timedelta(seconds=dur)
        live = end > self.now
        has_video = rng.random() < 0.8
        has_share = rng.random() < 0.35
        n_users = rng.randint(25, 40) if rng.random() < 0.03 else rng.randint(1, 12)
        shown = int((self.now - start).total_seconds()) if live else dur
        dur_text = "" if rng.random() < 0.01 else _render_duration(shown, rng.random() < 0.6 or shown < 60)
        key_roll = rng.random()
        obj: dict[str, Any] = {
            "id": sid,
            "session_name": f"{rng.choice(_WORDS)} {rng.randint(1, 999)}",
            "start_time": iso(start),
            "end_time": None if live else iso(end),
            "duration": dur_text,
            "user_count": n_users,
            "has_voip": rng.random() < 0.85,
            "has_video": has_video,
            "has_screen_share": has_share,
            "has_recording": rng.random() < 0.1,
            "has_pstn": rng.random() < 0.08,
            "has_session_summary": rng.random() < 0.05,
            "session_key": None if key_roll < 0.2 else f"key-{rng.randrange(16**8):08x}",
            "audio_quality": rng.choices(_GRADES, _GRADE_WEIGHTS)[0],
            "video_quality": rng.choices(_GRADES, _GRADE_WEIGHTS)[0] if has_video else "",
            "screen_share_quality": rng.choices(_GRADES, _GRADE_WEIGHTS)[0] if has_share else "",
        }
        return _Session(sid, day, start, end, obj, has_video, has_share, n_users)

    def sessions_for_day(self, day: date) -> list[dict[str, Any]]:
        """Sessions that started on `day` (UTC) as the list endpoint serves them, past and live."""
        return [dict(s.obj) for s in self._sessions(day)]

    def find_session(self, session_id: str) -> _Session | None:
        """Look a session up by id, generating every day once if it is not cached yet."""
        with self._lock:
            found = self._index.get(session_id)
            if found is None and not self._all_generated:
                for d in self.days():
                    self._sessions(d)
                self._all_generated = True
                found = self._index.get(session_id)
            return found

    def is_live(self, session: _Session) -> bool:
        """Running at `now`: started and not yet ended."""
        return session.start <= self.now < session.end

    def past_sessions(self, from_day: date, to_day: date) -> list[_Session]:
        """Sessions that started in [from_day, to_day] and ended by `now`."""
        out: list[_Session] = []
        d = from_day
        while d <= to_day:
            out.extend(s for s in self._sessions(d) if s.end <= self.now)
            d += timedelta(days=1)
        return out

    def live_sessions(self) -> list[_Session]:
        """Sessions running at `now` (they started at most a few hours ago)."""
        out: list[_Session] = []
        for back in range(2, -1, -1):
            out.extend(s for s in self._sessions(self.last_day - timedelta(days=back)) if self.is_live(s))
        return out

    # -------------------------------------------------------------------- users
    def _detail(self, session: _Session) -> _Detail:
        with self._lock:
            cached = self._details.get(session.id)
            if cached is not None:
                self._details.move_to_end(session.id)
                return cached
            detail = self._generate_users(session)
            self._details[session.id] = detail
            while len(self._details) > self._detail_cache_size:
                self._details.popitem(last=False)
            return detail

    def users_for_session(self, session_id: str) -> list[dict[str, Any]]:
        """The user entries (one per join) as the QoS endpoint serves them; [] if unknown."""
        session = self.find_session(session_id)
        if session is None:
            return []
        return self._detail(session).users

    def _generate_users(self, s: _Session) -> _Detail:
        rng = random.Random(f"zoom-sim:{self.seed}:users:{s.id}")
        counter = _Counter()
        span = max(1, int((s.end - s.start).total_seconds()))
        entries: list[tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]] = []
        for u in range(s.n_users):
            uid = base64.urlsafe_b64encode(rng.randbytes(16)).decode("ascii").rstrip("=")
            device = rng.choices(_DEVICES, _DEVICE_WEIGHTS)[0]
            client = rng.choice(_CLIENTS[device])
            os_name, versions = _OS[device]
            browser = rng.choice(_BROWSERS) if client == "Web SDK" else ("", "")
            network = rng.choice(_NETWORKS[device])
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
                "location": rng.choice(_LOCATIONS),
                "microphone": rng.choice(_MICS),
                "speaker": rng.choice(_SPEAKERS),
                "camera": "" if device in ("Phone", "H.323/SIP") else rng.choice(_CAMERAS),
                "data_center": rng.choice(_DATA_CENTERS),
                "connection_type": rng.choice(("UDP", "TCP", "SSL", "P2P")),
            }
            if rng.random() < 0.05:
                ident["future_field"] = f"opaque-{rng.randrange(10**4)}"
            profile = {
                "video": s.has_video and device != "Phone" and rng.random() < 0.75,
                "share": s.has_screen_share and rng.random() < 0.5,
                "cpu": device not in ("Phone", "H.323/SIP") and rng.random() < 0.95,
                "wifi": network == "Wifi",
                "pressure": rng.random() < 0.3,
                "empty": rng.random() < 0.05,
            }
            join = s.start + timedelta(seconds=rng.randrange(max(1, span * 3 // 10)))
            remaining = max(1, int((s.end - join).total_seconds()))
            leave = join + timedelta(seconds=max(1, int(remaining * rng.uniform(0.3, 1.0))))
            joins = [(join, leave)]
            if rng.random() < 0.15 and (s.end - leave).total_seconds() > 180:
                rejoin = leave + timedelta(seconds=rng.randint(10, 120))
                left = max(1, int((s.end - rejoin).total_seconds()))
                joins.append((rejoin, rejoin + timedelta(seconds=max(1, int(left * rng.uniform(0.5, 1.0))))))
            for j_start, j_end in joins:
                entries.append(self._render_join(rng, s, ident, profile, j_start, j_end, counter))
        entries.sort(key=lambda e: (e[0]["join_time"], e[0]["id"]))
        detail = _Detail(users=[e[0] for e in entries], unparseable=counter.unparseable)
        detail.rows = {
            "session_users": [e[1] for e in entries],
            "user_qos": [r for e in entries for r in e[2]],
            "user_system_qos": [r for e in entries for r in e[3]],
        }
        return detail

    def _render_join(self, rng: random.Random, s: _Session, ident: dict[str, Any], profile: dict[str, bool],
                     join: datetime, leave: datetime, counter: _Counter
                     ) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
        live_leave = leave > self.now
        user = dict(ident)
        user["join_time"] = iso(join)
        user["leave_time"] = None if live_leave else iso(leave)
        key = {"session_id": s.id, "user_id": ident["id"], "join_time": join}
        row = dict(key)
        row["leave_time"] = None if live_leave else leave
        row["user_name"] = _text(ident["name"])
        for col in TABLE_COLUMNS["session_users"][5:-1]:
            row[col] = _text(ident[col])
        row["is_original_host"] = ident["is_original_host"]
        samples: list[dict[str, Any]] = []
        qos_rows: list[dict[str, Any]] = []
        sys_rows: list[dict[str, Any]] = []
        until = min(leave, self.now)
        n_samples = 0 if profile["empty"] else min(30, int((until - join).total_seconds()) // 60)
        resolution = rng.choice(_RESOLUTIONS)
        for k in range(n_samples):
            at = join + timedelta(minutes=k + 1)
            sample: dict[str, Any] = {"date_time": iso(at)}
            base = {**key, "sampled_at": at}
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
                block, qrow = self._render_block(rng, media, resolution, counter)
                sample[name] = block
                qos_rows.append({**base, "stream": name, **qrow})
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
                rmax = -rng.randint(30, 55)
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
                level = "" if rng.random() < 0.03 else rng.choices(_PRESSURE, (80, 12, 6, 2))[0]
                sample["cpu_pressure_level"] = level
                sys_row["cpu_pressure_level"] = _text(level)
            if has_sys:
                sys_rows.append({**base, **sys_row})
            samples.append(sample)
        user["user_qos"] = samples
        return user, row, qos_rows, sys_rows

    def _render_block(self, rng: random.Random, media: str, resolution: tuple[int, int],
                      counter: _Counter) -> tuple[dict[str, Any], dict[str, Any]]:
        block: dict[str, Any] = {}
        qrow: dict[str, Any] = {}
        if media == "audio":
            bitrate: float = rng.randint(300, 999) / 1000 if rng.random() < 0.03 else rng.randint(16, 90)
        elif media == "video":
            bitrate = rng.randint(150, 2600)
        else:
            bitrate = rng.randint(80, 1600)
        latency = rng.randint(15, 300)
        jitter = rng.randint(0, 35)
        avg_loss = round(rng.uniform(0, 3), 1)
        max_loss = round(avg_loss + rng.uniform(0, 8), 1)
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
            rendered, expected = _render_metric(rng, "fps", rng.randint(5, 30), counter)
            _put(block, "frame_rate", rendered)
            qrow["frame_rate_fps"] = expected
        return block, qrow

    # -------------------------------------------------------------------- truth
    def expected_rows(self, from_date: date, to_date: date) -> dict[str, list[dict[str, Any]]]:
        """Rows a correct loader stores for past sessions that started in [from_date, to_date].

        Keys are the warehouse table names; row keys are exactly the contract's columns
        (without loaded_at). Floats should be compared with pytest.approx.
        """
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLE_COLUMNS}
        for s in self.past_sessions(from_date, to_date):
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
            })
            detail = self._detail(s)
            for table in ("session_users", "user_qos", "user_system_qos"):
                out[table].extend(dict(r) for r in detail.rows[table])
        return out

    def unparseable_count(self, from_date: date, to_date: date) -> int:
        """How many metric values in the window were rendered in an unknown unit."""
        return sum(self._detail(s).unparseable for s in self.past_sessions(from_date, to_date))
