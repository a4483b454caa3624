"""The report's "why calls went bad": the worst joins with cause and issues, and each day's causes,
read from join_quality and daily_causes on both back ends."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import URL

from tests.unit.warehouse.test_derived import DAY1, load, random_session
from zoom_qos.report import load_report_data, render_html
from zoom_qos.warehouse.derived_schema import quality_joins
from zoom_qos.warehouse.plan import SessionInput
from zoom_qos.warehouse.store import Warehouse


def test_worst_joins_and_causes_come_from_join_quality(warehouse_url: URL) -> None:
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_schema()
        load(wh, *(SessionInput(*random_session(f"R{i}", DAY1 + timedelta(hours=i))) for i in range(8)))
        with wh.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    quality_joins.c.cause, quality_joins.c.send_poor_share, quality_joins.c.receive_poor_share
                )
            ).all()
        poor = [r for r in rows if r.cause != "none"]
        assert poor, "the random calls have poor joins"
        data = load_report_data(wh, days=3)
        assert len(data.worst_joins) == min(20, len(poor))
        shares = [j["worst_share"] for j in data.worst_joins]
        assert shares == sorted(shares, reverse=True)
        assert shares[0] == max(max(r.send_poor_share or 0, r.receive_poor_share or 0) for r in poor)
        assert all(j["cause"] != "none" for j in data.worst_joins)
        remote = [j for j in data.worst_joins if j["cause"] == "remote_sender"]
        assert all(
            j["cause_user_id"] and j["cause_user_name"] == f"name-{j['cause_user_id']}" for j in remote
        )
        assert Counter(r.cause for r in poor) == Counter(
            {
                c: sum(x["joins"] for x in data.causes if x["cause"] == c)
                for c in {x["cause"] for x in data.causes}
            }
        )
        html = render_html(data)
        assert "Why calls went bad" in html and 'class="worst-joins"' in html
        for cause in {r.cause for r in poor}:
            assert cause.replace("_", " ") in html
        assert "main cause" in html and "audio MOS" in html
    finally:
        wh.dispose()
