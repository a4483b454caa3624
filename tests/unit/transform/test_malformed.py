"""Explicit malformed Zoom payloads: each ends in a counted skip, a NULL, or a clear error.

Never half a session: a skipped session writes nothing, a failing load leaves the previous
version of the session exactly as it was (docs/warehouse.md: one transaction per session).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.builders import SESSION_ID, T0, qos_sample, stream_metrics, zoom_session, zoom_user
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.transform.rows import session_row, unique_users, user_rows
from zoom_qos.warehouse import schema
from zoom_qos.warehouse.plan import SessionInput
from zoom_qos.warehouse.store import Warehouse

SID = SESSION_ID
JOIN = "2025-03-01T10:00:00Z"
WRONG_TYPES: tuple[Any, ...] = ([1, 2], {"a": 1}, True, 3.5, 7)
TEXT_FIELDS = ("name", "user_key", "device", "client", "os", "os_version", "browser_name",
               "browser_version", "network_type", "ip_address", "location", "microphone", "speaker",
               "camera", "data_center", "connection_type")
METRICS = ("bitrate", "latency", "jitter", "avg_loss", "max_loss", "frame_rate", "resolution")


def session(**over: Any) -> dict[str, Any]:
    """A minimal listed session: the six core fields only, 09:59 to 11:00."""
    return zoom_session(SID, name="demo", start=T0 - timedelta(minutes=1), length=timedelta(minutes=61),
                        details=False, **over)


def sample(minute: int = 1, **blocks: Any) -> dict[str, Any]:
    """A sample ``minute`` minutes after 10:00: fine audio in, video out, CPU; ``blocks`` replace or add."""
    video = stream_metrics("1.2 Mbps", latency="0.2 s", max_loss="8%", resolution="1280*720",
                           frame_rate="12 fps")
    cpu = {"zoom_min_cpu_usage": "1%", "zoom_avg_cpu_usage": "8%", "zoom_max_cpu_usage": "12%",
           "system_max_cpu_usage": "40%"}
    mine = {"audio_input": stream_metrics(), "video_output": video, "cpu_usage": cpu}
    return qos_sample(T0 + timedelta(minutes=minute), **(mine | blocks))


def user(uid: str = "u1", join: Any = JOIN, **over: Any) -> dict[str, Any]:
    return zoom_user(uid, join=join, samples=[sample(1), sample(2)], **({"name": "Ada"} | over))


@pytest.fixture
def wh(tmp_path) -> Iterator[Warehouse]:
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    warehouse.ensure_schema()
    yield warehouse
    warehouse.dispose()


def contents(wh: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every data table, as stored (``loaded_at`` included)."""
    with wh.engine.connect() as conn:
        return {
            table.name: sorted(
                (tuple(row) for row in conn.execute(sa.text(f"SELECT * FROM {table.name}"))), key=repr)
            for table in schema.TABLES
        }


def only_rows(wh: Warehouse, table: sa.Table) -> list[dict[str, Any]]:
    with wh.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.select(table))]


EMPTY = {t.name: 0 for t in schema.TABLES}


# --------------------------------------------------------------------------- users
@pytest.mark.parametrize("bad", [None, "user", 42, [JOIN], True])
def test_user_that_is_not_an_object_is_counted_and_skipped(wh: Warehouse, bad: Any) -> None:
    issues = ParseIssues()
    result = wh.load_sessions([SessionInput(session(), [bad, user()])], issues)
    assert (result.sessions_loaded, result.users) == (1, 1)
    assert issues.counts == {"user": 1}
    assert issues.examples["user"] == str(bad)[:100]


@pytest.mark.parametrize("missing", ["id", "join_time"])
def test_user_missing_its_key_is_counted_and_skipped(wh: Warehouse, missing: str) -> None:
    bad = user("u2")
    del bad[missing]
    issues = ParseIssues()
    result = wh.load_sessions([SessionInput(session(), [bad, user()])], issues)
    assert result.users == 1
    assert issues.counts == {missing: 1}
    assert issues.examples == {missing: "None"}
    assert wh.count_rows()["user_qos"] == 4  # only u1's 2 samples x 2 streams


def test_user_with_no_fields_but_the_key_loads_as_nulls(wh: Warehouse) -> None:
    issues = ParseIssues()
    result = wh.load_sessions([SessionInput(session(), [{"id": "u1", "join_time": JOIN}])], issues)
    assert (result.users, result.qos_rows, result.system_rows) == (1, 0, 0)
    assert not issues
    [row] = only_rows(wh, schema.session_users)
    assert row["user_name"] is None and row["leave_time"] is None and row["is_original_host"] is None


@pytest.mark.parametrize("bad", [*WRONG_TYPES, "", "-"])
def test_wrong_type_id_is_counted_and_skipped(bad: Any) -> None:
    issues = ParseIssues()
    # An int id is a valid key (kept as its text); everything else is not.
    rows = user_rows(SID, user(bad), issues)
    if bad == 7:
        assert rows is not None and rows.session_user["user_id"] == "7"
        assert not issues
    else:
        assert rows is None
        assert issues.counts == {"id": 1}


@pytest.mark.parametrize("bad", [*WRONG_TYPES, "yesterday", "2026-13-45T99:00:00Z", "2025-02-30T10:00:00Z",
                                 "", None])
def test_invalid_join_time_is_counted_and_skipped(wh: Warehouse, bad: Any) -> None:
    issues = ParseIssues()
    result = wh.load_sessions([SessionInput(session(), [user("u2", bad), user()])], issues)
    assert result.users == 1
    assert issues.counts == {"join_time": 1}
    assert issues.examples["join_time"] == str(bad)[:100]
    assert [r["user_id"] for r in only_rows(wh, schema.session_users)] == ["u1"]


@pytest.mark.parametrize("bad", [*WRONG_TYPES, "yesterday", "2026-13-45T99:00:00Z"])
def test_invalid_leave_time_is_null_and_counted(bad: Any) -> None:
    issues = ParseIssues()
    rows = user_rows(SID, user(leave_time=bad), issues)
    assert rows is not None and rows.session_user["leave_time"] is None
    assert issues.counts == {"leave_time": 1}


@pytest.mark.parametrize("name", TEXT_FIELDS)
@pytest.mark.parametrize("bad", WRONG_TYPES)
def test_wrong_type_text_fields_load_as_text(wh: Warehouse, name: str, bad: Any) -> None:
    issues = ParseIssues()
    result = wh.load_sessions([SessionInput(session(), [user(**{name: bad})])], issues)
    assert result.users == 1
    column = "user_name" if name == "name" else name
    [row] = only_rows(wh, schema.session_users)
    assert isinstance(row[column], str) and row[column]
    assert not issues


@pytest.mark.parametrize("bad", [[1], {"a": 1}, 3.5, 7, "maybe"])
def test_wrong_type_is_original_host_is_null_and_counted(bad: Any) -> None:
    issues = ParseIssues()
    rows = user_rows(SID, user(is_original_host=bad), issues)
    assert rows is not None and rows.session_user["is_original_host"] is None
    assert issues.counts == {"is_original_host": 1}


@pytest.mark.parametrize("bad", [{"date_time": JOIN}, "[]", 3, True, 2.5])
def test_user_qos_not_a_list_is_counted_and_user_kept(wh: Warehouse, bad: Any) -> None:
    issues = ParseIssues()
    result = wh.load_sessions([SessionInput(session(), [user(user_qos=bad)])], issues)
    assert (result.users, result.qos_rows, result.system_rows) == (1, 0, 0)
    assert issues.counts == {"user_qos": 1}
    assert issues.examples["user_qos"] == str(bad)


def test_user_qos_null_means_no_samples_and_is_not_an_error() -> None:
    issues = ParseIssues()
    rows = user_rows(SID, user(user_qos=None), issues)
    assert rows is not None and rows.qos == [] and not issues


# --------------------------------------------------------------------------- samples
@pytest.mark.parametrize("bad", ["2025-03-01T10:03:00Z", None, 5, ["x"]])
def test_sample_that_is_not_an_object_is_counted_and_others_kept(wh: Warehouse, bad: Any) -> None:
    issues = ParseIssues()
    result = wh.load_sessions([SessionInput(session(), [user(user_qos=[sample(1), bad, sample(2)])])], issues)
    assert (result.qos_rows, result.system_rows) == (4, 2)
    assert issues.counts == {"user_qos_sample": 1}
    assert issues.examples["user_qos_sample"] == str(bad)


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-45T99:00:00Z", "", None, 1740823200, [], {}])
def test_sample_with_invalid_date_time_is_counted_and_skipped(bad: Any) -> None:
    issues = ParseIssues()
    rows = user_rows(SID, user(user_qos=[sample(1), sample(2, date_time=bad)]), issues)
    assert rows is not None and len(rows.qos) == 2 and len(rows.system) == 1
    assert issues.counts == {"date_time": 1}


def test_sample_without_date_time_is_counted_and_skipped() -> None:
    bad = sample(2)
    del bad["date_time"]
    issues = ParseIssues()
    rows = user_rows(SID, user(user_qos=[bad]), issues)
    assert rows is not None and rows.qos == [] and rows.system == []
    assert issues.counts == {"date_time": 1}


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("bad", [*WRONG_TYPES, "5 furlongs", "fast"])
def test_wrong_metric_values_are_null_and_counted_per_field(metric: str, bad: Any) -> None:
    block = {**sample()["video_output"], metric: bad}
    issues = ParseIssues()
    rows = user_rows(SID, user(user_qos=[sample(1, video_output=block)]), issues)
    assert rows is not None
    [video] = [r for r in rows.qos if r["stream"] == "video_output"]
    if metric == "resolution":
        assert (video["resolution_width"], video["resolution_height"]) == (None, None)
    else:
        column = {"bitrate": "bitrate_kbps", "latency": "latency_ms", "jitter": "jitter_ms",
                  "avg_loss": "avg_loss_pct", "max_loss": "max_loss_pct", "frame_rate": "frame_rate_fps"}
        if bad == 7 or bad == 3.5:  # JSON numbers are taken as they are
            assert video[column[metric]] == float(bad)
            assert not issues
            return
        assert video[column[metric]] is None
    assert issues.counts == {metric: 1}
    assert issues.examples[metric] == str(bad)


@pytest.mark.parametrize("block", ["cpu_usage", "wifi_rssi"])
@pytest.mark.parametrize("bad", [[1], "high", 3, True])
def test_system_block_of_wrong_type_is_counted_and_row_kept(block: str, bad: Any) -> None:
    issues = ParseIssues()
    rows = user_rows(SID, user(user_qos=[sample(1, **{block: bad})]), issues)
    assert rows is not None and len(rows.system) == 1
    assert issues.counts == {block: 1}


def test_block_of_wrong_type_is_not_a_stream() -> None:
    issues = ParseIssues()
    rows = user_rows(SID, user(user_qos=[sample(1, audio_input="23 kbps", video_output=[1, 2])]), issues)
    assert rows is not None and rows.qos == []
    assert len(rows.system) == 1


def test_new_block_name_loads_as_a_new_stream(wh: Warehouse) -> None:
    new = {"bitrate": "900 bps", "latency": "6 ms"}
    wh.load_sessions(
        [SessionInput(session(), [user(user_qos=[sample(1, audio_device_from_space=new)])])], ParseIssues()
    )
    streams = {r["stream"]: r for r in only_rows(wh, schema.user_qos)}
    assert set(streams) == {"audio_input", "video_output", "audio_device_from_space"}
    assert streams["audio_device_from_space"]["bitrate_kbps"] == pytest.approx(0.9)
    assert streams["video_output"]["bitrate_kbps"] == pytest.approx(1200)
    assert streams["video_output"]["latency_ms"] == pytest.approx(200)


# --------------------------------------------------------------------------- enormous values
def test_one_megabyte_name_loads_whole(wh: Warehouse) -> None:
    name = "N" * 1_000_000
    issues = ParseIssues()
    result = wh.load_sessions([SessionInput(session(), [user(name=name)])], issues)
    assert result.users == 1 and not issues
    [row] = only_rows(wh, schema.session_users)
    assert row["user_name"] == name


def test_one_megabyte_metric_and_date_are_counted_with_a_short_example(wh: Warehouse) -> None:
    huge = "9" * 1_000_000
    samples = [sample(1, audio_input={"bitrate": huge + " kbps"}), sample(2, date_time=huge)]
    issues = ParseIssues()
    result = wh.load_sessions([SessionInput(session(), [user(user_qos=samples), user("u2", huge)])], issues)
    assert (result.users, result.qos_rows) == (1, 2)
    assert issues.counts == {"bitrate": 1, "date_time": 1, "join_time": 1}
    assert all(len(example) <= 100 for example in issues.examples.values())
    [audio] = [r for r in only_rows(wh, schema.user_qos) if r["stream"] == "audio_input"]
    assert audio["bitrate_kbps"] is None


# --------------------------------------------------------------------------- duplicates
def test_same_join_on_two_pages_is_one_row_and_the_first_wins(wh: Warehouse) -> None:
    page1 = [user("u1", name="first"), user("u2")]
    page2 = [user("u1", "2025-03-01T10:00:00+00:00", name="second"), user("u3")]
    issues = ParseIssues()
    result = wh.load_sessions([SessionInput(session(), page1 + page2)], issues)
    assert result.users == 3 and not issues
    rows = {r["user_id"]: r for r in only_rows(wh, schema.session_users)}
    assert set(rows) == {"u1", "u2", "u3"} and rows["u1"]["user_name"] == "first"  # the loader streams
    assert wh.count_rows()["user_qos"] == 3 * 4


def test_rejoin_is_a_second_row() -> None:
    users = [user("u1"), user("u1", "2025-03-01T10:20:00Z")]
    assert len(list(unique_users(users))) == 2


def test_duplicate_sample_time_last_block_wins() -> None:
    first = sample(1, audio_input={"bitrate": "10 kbps"})
    second = sample(1, audio_input={"bitrate": "20 kbps"})
    rows = user_rows(SID, user(user_qos=[first, second]), ParseIssues())
    assert rows is not None
    [audio] = [r for r in rows.qos if r["stream"] == "audio_input"]
    assert audio["bitrate_kbps"] == 20.0
    assert len(rows.system) == 1


# --------------------------------------------------------------------------- sessions
@pytest.mark.parametrize("bad", ["yesterday", "2026-13-45T99:00:00Z", "", None, 1740823200, [], {}])
def test_session_with_invalid_start_time_is_skipped_and_nothing_written(wh: Warehouse, bad: Any) -> None:
    issues = ParseIssues()
    result = wh.load_sessions([SessionInput(session(start_time=bad), [user()])], issues)
    assert not result.sessions_loaded and (result.users, result.qos_rows, result.system_rows) == (0, 0, 0)
    assert issues.counts == {"start_time": 1}
    assert issues.examples["start_time"] == str(bad)
    assert wh.count_rows() == EMPTY


def test_session_with_invalid_start_time_leaves_its_previous_version(wh: Warehouse) -> None:
    wh.load_sessions([SessionInput(session(), [user()])], ParseIssues())
    before = contents(wh)
    issues = ParseIssues()
    assert not wh.load_sessions(
        [SessionInput(session(start_time="yesterday"), [user("u9")])], issues
    ).sessions_loaded
    assert contents(wh) == before
    assert issues.counts == {"start_time": 1}


@pytest.mark.parametrize("bad_id", [None, "", [SID], {"id": SID}, True, 1.5])
def test_session_without_usable_id_is_skipped(wh: Warehouse, bad_id: Any) -> None:
    issues = ParseIssues()
    assert not wh.load_sessions([SessionInput(session(id=bad_id), [user()])], issues).sessions_loaded
    assert issues.counts == {"session_id": 1}
    assert wh.count_rows() == EMPTY


@pytest.mark.parametrize("bad", [None, "session", [1], 3])
def test_session_that_is_not_an_object_is_skipped(wh: Warehouse, bad: Any) -> None:
    issues = ParseIssues()
    assert not wh.load_sessions([SessionInput(bad, [user()])], issues).sessions_loaded
    assert issues.counts == {"session": 1}
    assert wh.count_rows() == EMPTY


@pytest.mark.parametrize(
    ("name", "bad"),
    [("end_time", "yesterday"), ("end_time", [1]), ("duration", "1h"), ("duration", -5),
     ("user_count", "many"), ("user_count", -1), ("user_count", 2**40), ("has_video", "perhaps"),
     ("has_voip", [True])],
)
def test_odd_session_fields_are_null_and_counted(wh: Warehouse, name: str, bad: Any) -> None:
    issues = ParseIssues()
    result = wh.load_sessions([SessionInput(session(**{name: bad}), [user()])], issues)
    assert result.sessions_loaded
    assert issues.counts == {name: 1}
    [row] = only_rows(wh, schema.sessions)
    column = {"duration": "duration_seconds"}.get(name, name)
    if name == "duration":  # falls back to end_time - start_time
        assert row[column] == 3660
    else:
        assert row[column] is None


def test_wrong_type_session_text_fields_load_as_text() -> None:
    issues = ParseIssues()
    row = session_row(session(session_name=["a"], video_quality={"q": 1}, session_key=5), issues)
    assert row is not None and not issues
    assert row["session_name"] == '["a"]' and row["session_key"] == "5"


def test_users_that_are_not_a_list_is_a_clear_error_and_writes_nothing(wh: Warehouse) -> None:
    with pytest.raises(TypeError):
        wh.load_sessions([SessionInput(session(), None)], ParseIssues())  # type: ignore[arg-type]
    assert wh.count_rows() == EMPTY


# --------------------------------------------------------------------------- atomicity
class Boom(RuntimeError):
    pass


def _fail_on_insert_into(wh: Warehouse, table: str) -> Any:
    """Make the engine raise on the first INSERT into ``table`` (mid-transaction)."""

    def before_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()} "):
            raise Boom(f"injected failure writing {table}")

    sa.event.listen(wh.engine, "before_cursor_execute", before_execute)
    return before_execute


@pytest.mark.parametrize("table", ["session_users", "raw_session_users", "user_qos", "user_system_qos"])
def test_failure_mid_load_leaves_the_previous_version(wh: Warehouse, table: str) -> None:
    first_issues = ParseIssues()
    wh.load_sessions(
        [SessionInput(session(), [user("u1", leave_time="yesterday"), user("u2")])], first_issues
    )
    before = contents(wh)
    assert before["user_qos"] and before["user_system_qos"]

    hook = _fail_on_insert_into(wh, table)
    issues = ParseIssues()
    newer = session(session_name="renamed", user_count=9)
    with pytest.raises(Boom):
        wh.load_sessions(
            [SessionInput(newer, [user("u3", user_qos=[sample(5)], leave_time="never")])], issues
        )
    sa.event.remove(wh.engine, "before_cursor_execute", hook)

    assert contents(wh) == before  # sessions row, children and loaded_at all untouched
    assert not issues  # parse problems are only counted once a load commits

    # The same load succeeds once the fault is gone, and replaces the session entirely.
    assert wh.load_sessions(
        [SessionInput(newer, [user("u3", user_qos=[sample(5)])])], ParseIssues()
    ).sessions_loaded
    assert [r["user_id"] for r in only_rows(wh, schema.session_users)] == ["u3"]
    assert [r["session_name"] for r in only_rows(wh, schema.sessions)] == ["renamed"]


def test_failure_on_first_load_writes_nothing(wh: Warehouse) -> None:
    hook = _fail_on_insert_into(wh, "user_qos")
    with pytest.raises(Boom):
        wh.load_sessions([SessionInput(session(), [user()])], ParseIssues())
    sa.event.remove(wh.engine, "before_cursor_execute", hook)
    assert wh.count_rows() == EMPTY


# ------------------------------------------------------------------ lone surrogates
def test_lone_surrogate_in_a_user_does_not_fail_the_load(wh: Warehouse) -> None:
    """A valid JSON escape (\\ud800) that UTF-8 cannot encode is replaced, not fatal."""
    odd = user("u2", name="bad \ud800 name",
               user_qos=[{"date_time": "garbage", "audio_input": {"avg_loss": "\ud800"}}])
    result = wh.load_sessions([SessionInput(session(), [user(), odd])], ParseIssues())
    assert result.sessions_loaded and result.users == 2
    with wh.engine.connect() as conn:
        names = set(conn.execute(sa.text("SELECT user_name FROM session_users")).scalars())
    assert "bad \ufffd name" in names


def test_lone_surrogate_survives_staging(tmp_path) -> None:
    from zoom_qos.pipeline.staging import read_jsonl, write_jsonl

    path = (tmp_path / "x.jsonl").as_uri()
    write_jsonl(path, [{"name": "a\ud800b\x00c"}])
    assert list(read_jsonl(path)) == [{"name": "a\ufffdb\x00c"}]  # NUL is valid JSON; the loader drops it
