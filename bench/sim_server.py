"""The Zoom simulator in its own process, as the benchmarks need it.

Zoom is a remote service: running the simulator in the benchmark's own process would make it
compete for the GIL with the code under test and count its memory in our RSS. This launcher
adds one thing the simulator CLI lacks: an optional synthetic "big" session (``--big-users`` ×
``--big-samples``), patched into the dataset of this process only (include/ is not modified).
``--tls-cert``/``--tls-key`` serve HTTPS with a certificate the bench made (``SimProcess(tls=True)``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from include.zoom_simulator import Faults, Simulator, SimulatorConfig  # noqa: E402
from include.zoom_simulator.dataset import iso  # noqa: E402

BIG_PREFIX = "bench-big-"


def big_session_id(users: int, samples: int) -> str:
    return f"{BIG_PREFIX}{users}x{samples}"


def _template(dataset, day):
    """A real rendered session and its richest user (most streams and system fields)."""
    for back in range(0, 60):
        for session in dataset.sessions_for_day(day - timedelta(days=back)):
            if not session.get("end_time"):
                continue
            users = [u for u in dataset.users_for_session(session["id"]) if u.get("user_qos")]
            if users:
                best = max(users, key=lambda u: max(len(s) for s in u["user_qos"]))
                return session, best
    raise RuntimeError("no template session found")


def make_big_session(dataset, users: int, samples: int):
    """A past session of ``users`` joins × ``samples`` one-minute samples, built from real renderings."""
    day = dataset.now.date() - timedelta(days=3)
    session, user = _template(dataset, day)
    sample = max(user["user_qos"], key=len)
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=9)
    end = start + timedelta(minutes=samples + 5)
    obj = dict(
        session,
        id=big_session_id(users, samples),
        start_time=iso(start),
        end_time=iso(end),
        user_count=users,
        duration=f"{samples + 5} mins",
    )
    rendered = []
    for i in range(users):
        u = copy.deepcopy({k: v for k, v in user.items() if k != "user_qos"})
        u["id"] = f"bench-user-{i:06d}"
        u["join_time"] = iso(start)
        u["leave_time"] = iso(end)
        u["user_qos"] = [
            dict(sample, date_time=iso(start + timedelta(minutes=k + 1))) for k in range(samples)
        ]
        rendered.append(u)
    return obj, rendered


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--ready-file", required=True)
    p.add_argument("--api-key", default="bench-key")
    p.add_argument("--api-secret", default="bench-secret-0123456789")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--now", required=True)
    p.add_argument("--sessions-per-day", type=int, default=12)
    p.add_argument("--heavy-rate", type=float, default=40.0)
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--big-users", type=int, default=0)
    p.add_argument("--big-samples", type=int, default=60)
    p.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (with --tls-key)")
    p.add_argument("--tls-key")
    args = p.parse_args()
    cfg = SimulatorConfig(
        api_key=args.api_key,
        api_secret=args.api_secret,
        seed=args.seed,
        now=datetime.fromisoformat(args.now.replace("Z", "+00:00")),
        sessions_per_day=args.sessions_per_day,
        heavy_rate_per_second=args.heavy_rate,
        daily_limit=10**9,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )
    sim = Simulator(cfg, host="127.0.0.1", port=0)
    if args.big_users:
        obj, users = make_big_session(sim.dataset, args.big_users, args.big_samples)
        real_find, real_users = sim.dataset.find_session, sim.dataset.users_for_session
        truth = real_find(_template(sim.dataset, sim.dataset.now.date() - timedelta(days=3))[0]["id"])
        big = copy.copy(truth)
        big.id, big.obj, big.n_users = obj["id"], obj, args.big_users
        big.start = datetime.fromisoformat(obj["start_time"].replace("Z", "+00:00"))
        big.end = datetime.fromisoformat(obj["end_time"].replace("Z", "+00:00"))
        # The simulator asks as of a time (its clock): the big session is past whenever it is asked.
        sim.dataset.find_session = lambda sid, at=None: big if sid == obj["id"] else real_find(sid, at)
        sim.dataset.users_for_session = (
            lambda sid, at=None: users if sid == obj["id"] else real_users(sid, at))
        Path(f"{args.ready_file}.session.json").write_text(json.dumps(obj))
    sim.set_faults(Faults(latency_ms=args.latency_ms))
    sim.start()
    tmp = f"{args.ready_file}.tmp"
    Path(tmp).write_text(sim.base_url)
    os.replace(tmp, args.ready_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
