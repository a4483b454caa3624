"""Subprocess side of tests/integration/test_load_robustness.py (not a test module).

Deterministic test data (an "old" and a "new" version of N sessions, with different values
and user counts), and a command line that loads a range of it::

    python load_worker.py URL SCHEMA VERSION FIRST LAST [--shuffle SEED] [--repeat N]
                          [--max-rows N]

With ``ZOOM_QOS_TEST_PAUSE_AFTER_GROUPS=K`` and ``ZOOM_QOS_TEST_READY_FILE=path`` in the
environment, the worker commits K transactions, then in transaction K+1 stops *inside* the
transaction (after the sessions and users of that group were rewritten, before their samples),
writes the ids committed so far and the ids in flight to the ready file, and sleeps until it is
killed. The pause lives in a subclass defined here; production code has no test hooks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for entry in (str(ROOT / "plugins"), str(ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from zoom_qos.transform.parsing import ParseIssues  # noqa: E402
from zoom_qos.warehouse.loader import SessionLoader  # noqa: E402
from zoom_qos.warehouse.store import Warehouse  # noqa: E402

PAUSE_ENV = "ZOOM_QOS_TEST_PAUSE_AFTER_GROUPS"
READY_ENV = "ZOOM_QOS_TEST_READY_FILE"
T0 = datetime(2025, 3, 1, 8, tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def session_id(i: int) -> str:
    return f"robust/{i:03d}+=="


def make_session(i: int, version: str) -> dict[str, Any]:
    start = T0 + timedelta(minutes=10 * i)
    minutes = 30 + i % 7 + (5 if version == "new" else 0)
    return {
        "id": session_id(i),
        "session_name": f"{version} session {i}",
        "start_time": _iso(start),
        "end_time": _iso(start + timedelta(minutes=minutes)),
        "duration": f"{minutes}:00",
        "user_count": len(make_users(i, version)),
        "has_video": version == "new",
        "audio_quality": "good" if (i + len(version)) % 2 else "fair",
    }


def make_users(i: int, version: str) -> list[dict[str, Any]]:
    """``old``: 2-4 users; ``new``: 1-5 users, some joins moved (so rows are deleted too)."""
    count = 2 + i % 3 if version == "old" else 1 + (i * 7) % 5
    factor = 1 if version == "old" else 2
    users = []
    for j in range(count):
        shift = 1 if version == "new" and j % 2 else 0
        join = T0 + timedelta(minutes=10 * i + j + shift)
        samples = []
        for k in range(4 + (i + j) % 3):
            sample: dict[str, Any] = {
                "date_time": _iso(join + timedelta(minutes=k + 1)),
                "audio_input": {
                    "bitrate": f"{(i + j + k) * factor} kbps",
                    "latency": f"{10 * factor + k} ms",
                    "avg_loss": f"{k * factor / 10}%",
                },
                "cpu_usage": {"zoom_avg_cpu_usage": f"{(i * j + k) % 90}%"},
            }
            if version == "new" or k % 2:
                sample["video_input"] = {"bitrate": f"{factor}.5 Mbps", "resolution": "1280*720"}
            samples.append(sample)
        users.append(
            {
                "id": f"user-{j}",
                "name": f"{version} user {i}/{j}",
                "join_time": _iso(join),
                "leave_time": _iso(join + timedelta(minutes=20)),
                "device": "Mac" if version == "old" else "Windows",
                "user_qos": samples,
            }
        )
    return users


def items(indexes: Sequence[int], version: str) -> Iterator[tuple[Mapping[str, Any], list[dict[str, Any]]]]:
    for i in indexes:
        yield make_session(i, version), make_users(i, version)


class PausingLoader(SessionLoader):
    """Commits ``pause_after`` groups, then stops inside the next transaction until killed."""

    def __init__(self, warehouse: Warehouse, pause_after: int, ready_file: Path) -> None:
        super().__init__(warehouse.engine, warehouse.schema)
        self.pause_after = pause_after
        self.ready_file = ready_file
        self.groups_committed = 0
        self.committed: list[str] = []
        self.in_flight: list[str] = []

    def write_group(self, group: Sequence[Any]) -> None:
        self.in_flight = [p.session_id for p in group]
        super().write_group(group)
        self.committed.extend(self.in_flight)
        self.groups_committed += 1

    def _write_rows(self, writer: Any, table: Any, rows: Any) -> None:
        super()._write_rows(writer, table, rows)
        if table.name == "raw_session_users" and self.groups_committed == self.pause_after:
            tmp = self.ready_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"committed": self.committed, "in_flight": self.in_flight}))
            tmp.replace(self.ready_file)
            while True:  # inside an open transaction: sessions and users rewritten, samples not
                time.sleep(60)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("schema")
    parser.add_argument("version", choices=["old", "new"])
    parser.add_argument("first", type=int)
    parser.add_argument("last", type=int, help="inclusive")
    parser.add_argument("--shuffle", type=int, default=None, help="random seed for the order")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--max-rows", type=int, default=50_000)
    args = parser.parse_args(argv)

    warehouse = Warehouse(args.url, args.schema)
    warehouse.ensure_schema()
    pause_after = os.environ.get(PAUSE_ENV)
    loader = SessionLoader(warehouse.engine, warehouse.schema)
    if pause_after is not None:
        loader = PausingLoader(warehouse, int(pause_after), Path(os.environ[READY_ENV]))
    indexes = list(range(args.first, args.last + 1))
    rng = random.Random(args.shuffle)
    for _ in range(args.repeat):
        if args.shuffle is not None:
            rng.shuffle(indexes)
        summary = loader.load(items(indexes, args.version), ParseIssues(), args.max_rows)
        print(json.dumps({"loaded": summary.sessions_loaded, "transactions": summary.transactions}))
    warehouse.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
