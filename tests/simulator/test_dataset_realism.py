"""The simulated account looks like a real one, so the demo report has a story to tell, and the
truth the loader is checked against (``expected_rows``, ``unparseable_count``, ``daily_counts``)
covers the new columns and the odd values of Zoom's definition."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from include.zoom_simulator import TABLE_COLUMNS, Dataset
from include.zoom_simulator.dataset import GRADE_COLUMNS, UNKNOWN_UNITS, is_poor
from tests.simulator.simhelpers import NOW

LO, HI = date(2026, 11, 1), date(2026, 11, 14)


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return Dataset(42, NOW)


@pytest.fixture(scope="module")
def rows(ds: Dataset) -> dict[str, list[dict[str, Any]]]:
    return ds.expected_rows(LO, HI, with_grades=True)


def poor_shares(rows: dict[str, list[dict[str, Any]]], column: str) -> dict[Any, float]:
    """Share of rated stream samples that are poor, per value of a session_users column."""
    joins = {(r["session_id"], r["user_id"], r["join_time"]): r for r in rows["session_users"]}
    acc: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
    for q in rows["user_qos"]:
        if None in (q["latency_ms"], q["jitter_ms"], q["avg_loss_pct"]):
            continue
        value = joins[(q["session_id"], q["user_id"], q["join_time"])][column] if column else "all"
        acc[value][0] += is_poor(q["latency_ms"], q["jitter_ms"], q["avg_loss_pct"])
        acc[value][1] += 1
    return {k: p / n for k, (p, n) in acc.items() if n >= 500}


# ------------------------------------------------------------------ realism
def test_most_samples_are_good_and_poor_ones_cluster(rows: dict[str, list[dict[str, Any]]]) -> None:
    overall = poor_shares(rows, "")["all"]
    assert 0.02 < overall < 0.25
    network = poor_shares(rows, "network_type")
    assert network["Cellular"] > 2 * network["Wired"] and network["Wifi"] > network["Wired"]
    centers = poor_shares(rows, "data_center")
    assert max(centers.values()) > 2 * min(centers.values())  # a few data centers are worse
    devices = poor_shares(rows, "device")
    assert max(devices.values()) > 1.5 * min(devices.values())


def test_metrics_have_long_tails(rows: dict[str, list[dict[str, Any]]]) -> None:
    for column in ("latency_ms", "jitter_ms", "avg_loss_pct"):
        values = sorted(r[column] for r in rows["user_qos"] if r[column] is not None)
        median, p99 = values[len(values) // 2], values[int(len(values) * 0.99)]
        assert p99 > 4 * median, column


def test_a_minority_of_sessions_is_poor(rows: dict[str, list[dict[str, Any]]]) -> None:
    per_session = poor_shares({"session_users": rows["session_users"], "user_qos": rows["user_qos"]},
                              "session_id")
    poor = [s for s, share in per_session.items() if share > 0.3]
    assert per_session and 0 < len(poor) < 0.2 * len(per_session)


def test_identity_values_as_published(ds: Dataset, rows: dict[str, list[dict[str, Any]]]) -> None:
    members = [u for s in ds.past_sessions(LO, HI) for u in ds.participants_for_session(s.id)]
    external = [u for u in members if u["device"] == ""]
    assert external and all(u["client"] == "" for u in external)
    assert {u["data_center"] for u in members} >= {"SC", "NY", "AM", "FR", "TY", "SY"}
    assert all(re.fullmatch(r"[A-Z]{2}", u["data_center"]) for u in members)
    sessions = [s for d in ds.days() for s in ds.sessions_for_day(d)]
    assert all(isinstance(s["session_key"], str) for s in sessions)
    samples = [s for sid in ds.past_sessions(LO, LO) for u in ds.users_for_session(sid.id)
               for s in u["user_qos"] if "wifi_rssi" in s]
    assert samples and all(s["wifi_rssi"]["rssi_unit"] == "dBm" for s in samples)
    assert all(type(v) is int for s in samples for k, v in s["wifi_rssi"].items() if k.endswith("_rssi"))


# ---------------------------------------------------------------- durations
def _seconds(text: str) -> int:
    parts = [int(p) for p in text.split(":")]
    return parts[0] * 3600 + parts[1] * 60 + parts[2] if len(parts) == 3 else parts[0] * 60 + parts[1]


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _elapsed(session: dict[str, Any]) -> int:
    return int((_ts(session["end_time"]) - _ts(session["start_time"])).total_seconds())


def _past(ds: Dataset) -> list[dict[str, Any]]:
    """Every past session of the dataset's history with a ``duration``, as listed."""
    return [o for d in ds.days() for o in ds.sessions_for_day(d) if o["end_time"] and o["duration"]]


def test_by_default_every_duration_agrees_with_the_times(ds: Dataset) -> None:
    past = _past(ds)
    assert past and all(abs(_seconds(o["duration"]) - _elapsed(o)) <= 60 for o in past)
    assert ds.unparseable_count(LO, HI) == 0


def test_a_few_durations_disagree_with_the_times_when_switched_on(ds: Dataset) -> None:
    """``duration_faults`` (with ``unit_faults``, the values ``unparseable_count`` counts); only
    the ``duration`` strings differ from the default dataset's sessions."""
    ds, default = Dataset(42, NOW, unit_faults=True, duration_faults=True), ds
    past = _past(ds)
    assert [{**o, "duration": None} for o in past] == [{**o, "duration": None} for o in _past(default)]
    off = [o for o in past if abs(_seconds(o["duration"]) - _elapsed(o)) > 60]
    assert 0.01 < len(off) / len(past) < 0.06
    assert {o["duration"].count(":") for o in past} == {1, 2}  # "MM:SS" and "HH:MM:SS"
    day = next(_ts(o["start_time"]).date() for o in off)
    truth = {r["session_id"]: r for r in ds.expected_rows(day, day)["sessions"]}
    mismatched = [o for o in off if o["id"] in truth]
    assert mismatched
    for o in mismatched:  # the truth is end - start, not the string
        assert truth[o["id"]]["duration_seconds"] == _elapsed(o)
    odd = re.compile(rf" ({'|'.join(UNKNOWN_UNITS)})$")
    odd_units = sum(1 for s in ds.past_sessions(day, day) for u in ds.users_for_session(s.id)
                    for sample in u["user_qos"] for block in sample.values() if isinstance(block, dict)
                    for v in block.values() if isinstance(v, str) and odd.search(v))
    assert odd_units > 0
    assert ds.unparseable_count(day, day) == odd_units + len(mismatched)


# -------------------------------------------------------------------- truth
def test_expected_rows_new_columns(ds: Dataset, rows: dict[str, list[dict[str, Any]]]) -> None:
    for table, columns in TABLE_COLUMNS.items():
        assert rows[table] and all(set(r) == set(columns) for r in rows[table]), table
    assert {r["qos_status"] for r in rows["sessions"]} == {"loaded"}
    served = {(s.id, u["id"], u["join_time"]): u for s in ds.past_sessions(LO, HI)
              for u in ds.participants_for_session(s.id)}
    for r in rows["session_users"]:
        u = served[(r["session_id"], r["user_id"], r["join_time"].strftime("%Y-%m-%dT%H:%M:%SZ"))]
        assert r["participant_uuid"] == u["participant_uuid"]
        assert all(r[c] == (u[c] or None) for c in GRADE_COLUMNS[1:])
    plain = ds.expected_rows(LO, LO)
    assert plain["session_users"] and all(r[c] is None for r in plain["session_users"] for c in GRADE_COLUMNS)
    graded = ds.expected_rows(LO, LO, with_grades=True)
    strip = [{k: v for k, v in r.items() if k not in GRADE_COLUMNS} for r in graded["session_users"]]
    assert strip == [{k: v for k, v in r.items() if k not in GRADE_COLUMNS} for r in plain["session_users"]]


def test_new_data_is_deterministic() -> None:
    a, b, later = Dataset(9, NOW), Dataset(9, NOW), Dataset(9, NOW + timedelta(days=2))
    sid = a.past_sessions(LO, LO)[0].id
    assert a.participants_for_session(sid) == b.participants_for_session(sid)
    assert a.participants_for_session(sid) == later.participants_for_session(sid)  # not tied to `now`
    assert a.daily_counts(LO, HI) == b.daily_counts(LO, HI) == later.daily_counts(LO, HI)
    assert a.daily_counts(LO, HI) != Dataset(10, NOW).daily_counts(LO, HI)


def test_listing_and_daily_counts_generate_no_users(monkeypatch) -> None:
    """Users are the costly part of a session: a listing or a month's daily counts must not make them."""
    ds = Dataset(3, NOW)

    def generated(*_args: object) -> None:
        raise AssertionError("users were generated")

    monkeypatch.setattr(ds, "_generate_users", generated)
    monkeypatch.setattr(ds, "_generate_scenario_users", generated)
    assert ds.sessions_for_day(LO)
    assert ds.daily_counts(date(2026, 10, 1), date(2026, 10, 31))
    with pytest.raises(AssertionError, match="users were generated"):  # the patch is where users are made
        ds.users_for_session(ds.sessions_for_day(LO)[0]["id"])

