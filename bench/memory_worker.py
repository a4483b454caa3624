"""One subprocess: extract one session with the real operator, load it into PostgreSQL, report peak RSS.

Run by ``bench/run.py`` once per session size, so each reading is a fresh process's high-water
mark. Everything is imported before the work starts, so import cost is the same in both runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import PG_URL, airflow_env, peak_rss_mib, zoom_conn_json  # noqa: E402

airflow_env()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--session-json", required=True)
    p.add_argument("--schema", required=True)
    args = p.parse_args()
    os.environ["AIRFLOW_CONN_ZOOM_VIDEOSDK"] = zoom_conn_json(args.base_url)

    from zoom_qos.operators import ZoomSessionQosOperator
    from zoom_qos.pipeline.load import load_batches
    from zoom_qos.pipeline.staging import write_jsonl
    from zoom_qos.warehouse.store import Warehouse

    session = json.loads(Path(args.session_json).read_text())
    work = Path(tempfile.mkdtemp(prefix="zoomqos-bench-mem-"))
    sessions_uri = (work / "sessions" / "batch-00000.jsonl").as_uri()
    write_jsonl(sessions_uri, [session])
    batch = {
        "index": 0,
        "sessions_uri": sessions_uri,
        "qos_uri": (work / "qos" / "batch-00000").as_uri(),
        "sessions": 1,
    }
    warehouse = Warehouse(PG_URL, schema=args.schema)
    warehouse.ensure_schema()
    baseline = peak_rss_mib()
    t0 = time.monotonic()
    extracted = ZoomSessionQosOperator(task_id="extract_qos", batch=batch).execute(context={})
    t1 = time.monotonic()
    after_extract = peak_rss_mib()
    loaded = load_batches([batch], warehouse=warehouse)
    t2 = time.monotonic()
    warehouse.dispose()
    print(
        json.dumps(
            {
                "users": extracted["users"],
                "requests": extracted["requests"],
                "qos_rows": loaded["qos_rows"],
                "system_rows": loaded["system_rows"],
                "extract_seconds": round(t1 - t0, 2),
                "load_seconds": round(t2 - t1, 2),
                "rss_before_work_mib": baseline["vmhwm_mib"],
                "peak_after_extract_mib": after_extract["vmhwm_mib"],
                **peak_rss_mib(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
