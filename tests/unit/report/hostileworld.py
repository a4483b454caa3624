"""A warehouse whose every free text is hostile: HTML, script, template syntax and entities in the
session and user names and ids, devices, network types, data centers and the run id (shared by
``test_hostile_names`` and the browser test ``test_report_browser_hostile``).

Each field gets its own text, :func:`hostile` of the field's name, so a test can tell which field
shows where; every one carries all the attacks of :data:`ATTACKS`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.unit.report.reportworld import LAST_DAY, zoom_session, zoom_user
from zoom_qos.core.contracts import DAILY_DAG_ID
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.warehouse.live import evaluate_live_alerts
from zoom_qos.warehouse.runs import record_run
from zoom_qos.warehouse.store import Warehouse

#: What a name might try, each once in every hostile text.
ATTACKS = (
    "<script>window.__pwned=1</script>",  # an element
    '"><img src=x onerror="window.__pwned=1">',  # out of a double-quoted attribute, an event handler
    "' onmouseover='window.__pwned=1' x='",  # out of a single-quoted attribute
    "</title><script>window.__pwned=1</script>",  # out of an SVG tooltip or the page title
    "</text></svg><svg onload=window.__pwned=1>",  # out of the chart
    "</script><script>window.__pwned=1</script>",  # out of a script block (JSON in a <script>)
    "javascript:window.__pwned=1",  # a link target, should a name ever become one
    "{{7*7}} {% if 1 %}49{% endif %}",  # template syntax: must show as it is, never as 49
    "Tom &amp; Jerry &lt;b&gt;",  # entities: shown as typed, not decoded, not escaped twice
)
#: The global any of them sets if it runs.
PWNED = "__pwned"


def hostile(field: str) -> str:
    """The hostile text of one field: the field's name first (a cut label still says which), then
    every attack."""
    return f"{field}: " + " ".join(ATTACKS)


# The named world (see load_hostile).
SESSION_NAME = hostile("session name")
SESSION_ID = hostile("session id")
DEVICE = hostile("device")
NETWORK = hostile("network type")
DATA_CENTER = hostile("data center")
USER_NAME = hostile("user name")  # of a past join: in the worst joins table
LIVE_SESSION_NAME = hostile("live session name")
LIVE_SESSION_ID = hostile("live session id")
LIVE_USER_NAME = hostile("live user name")
LIVE_USER_ID = hostile("live user id")
RUN_ID = hostile("run id")
#: A media type (the warehouse only ever has audio, video and screen share: for the render tests).
MEDIA = hostile("media type")
#: dimension of the breakdowns -> its hostile value (the worst one, so the summary names it)
BREAKDOWN_VALUES = {"device": DEVICE, "network_type": NETWORK, "data_center": DATA_CENTER}


def load_hostile(wh: Warehouse, *, named: bool = True) -> None:
    """Load a hostile world into a migrated warehouse.

    ``named`` (the named world): every free text is hostile, names included:

    * the worst session of the period, id :data:`SESSION_ID`, named :data:`SESSION_NAME`, whose
      only join (user :data:`USER_NAME`) has the hostile device, network type and data center and
      only poor samples; a good session with plain names (the other bar of each breakdown);
    * a session in progress with a poor join, so an open alert: :data:`LIVE_SESSION_ID`,
      :data:`LIVE_SESSION_NAME`, user :data:`LIVE_USER_ID` named :data:`LIVE_USER_NAME`;
    * a daily run whose id is :data:`RUN_ID`.

    Not ``named`` (the nameless world): the same sessions without names, so the page shows their
    hostile ids instead; devices, network types, data centers and the run id are plain.
    """
    def text(value: str, plain: str) -> str:
        return value if named else plain

    worst = {**zoom_session(SESSION_ID, "", LAST_DAY), "session_name": SESSION_NAME if named else None}
    worst_user = zoom_user("u-worst", LAST_DAY, [300, 310, 320, 330], device=text(DEVICE, "iOS"),
                           network=text(NETWORK, "Cellular"), data_center=text(DATA_CENTER, "US (NY)"),
                           loss="3.5%")
    worst_user["name"] = USER_NAME if named else None
    good = zoom_session("s-good", "Plain session", LAST_DAY - timedelta(days=1))
    good_user = zoom_user("u-good", LAST_DAY - timedelta(days=1), [40, 50, 60, 70])
    summary = wh.load_sessions([(worst, [worst_user]), (good, [good_user])], ParseIssues())
    assert summary.sessions_loaded == 2, summary

    day = LAST_DAY + timedelta(days=1)  # live: after the loaded days, outside the daily figures
    live = {**zoom_session(LIVE_SESSION_ID, "", day), "end_time": None,
            "session_name": LIVE_SESSION_NAME if named else None}
    live_user = {**zoom_user(LIVE_USER_ID, day, [400, 410, 420, 430, 440, 450]), "leave_time": None,
                 "name": LIVE_USER_NAME if named else None}
    wh.load_live_sessions([(live, [live_user])], ParseIssues())
    raised, _ = evaluate_live_alerts(wh, window_minutes=10, poor_share=0.5, min_samples=5)
    assert [(a["session_id"], a["user_id"]) for a in raised] == [(LIVE_SESSION_ID, LIVE_USER_ID)]

    finished = datetime(day.year, day.month, day.day, 3, tzinfo=UTC)
    run: dict[str, Any] = {"run_id": text(RUN_ID, "scheduled__plain"), "dag_id": DAILY_DAG_ID,
                           "outcome": "success", "started_at": finished - timedelta(minutes=5),
                           "finished_at": finished, "sessions_loaded": 2}
    with wh.engine.begin() as conn:
        record_run(conn, run)
