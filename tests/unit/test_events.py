"""The event log has Windows' shape: a maximum size, the oldest records overwritten as
needed (in memory and in the file), and a count of what was overwritten."""

from __future__ import annotations

import io
import json

import pytest
from twisted.internet.task import Clock

from emulator.core import metrics
from emulator.config import ConfigError, build_config
from emulator.core.editions import get_edition
from emulator.core.engine import SessionEngine
from emulator.core.events import DEFAULT_MAX_KB, EventLog


def refusal(log: EventLog, n: int) -> None:
    log.record(provider="Srv", event_id=2003, level="Warning",
               message="No more connections can be made to this remote computer.",
               protocol="smb", address="192.0.2.1", user=f"user{n}", outcome="denied")


def line_size(n: int) -> int:
    log = EventLog(lambda: 1.0)
    refusal(log, n)
    return log.size


def file_records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_default_is_windows_security_log_size():
    assert DEFAULT_MAX_KB == 20480
    assert EventLog(lambda: 0.0).max_bytes == 20 * 1024 * 1024


def test_a_full_log_overwrites_the_oldest_records_and_counts_them():
    cap = 16 * 1024
    log = EventLog(lambda: 1.0, max_bytes=cap)
    total = 2000  # ~300 bytes each: about forty times the cap
    for n in range(total):
        refusal(log, n)
        assert log.size <= cap
    kept = log.records
    assert log.dropped == total - len(kept) > 0
    # The newest are kept, in order; the oldest went first.
    assert [r["user"] for r in kept] == [f"user{n}" for n in range(log.dropped, total)]
    assert log.size == sum(len(json.dumps(r)) + 1 for r in kept)
    # No more was dropped than needed: less than one record's room is left.
    assert cap - log.size < line_size(total - 1)


def test_the_file_is_kept_under_the_cap_in_two_halves(tmp_path):
    cap = 16 * 1024
    path = tmp_path / "events.jsonl"
    log = EventLog.to_path(lambda: 1.0, str(path), max_bytes=cap)
    for n in range(2000):
        refusal(log, n)
        on_disk = path.stat().st_size + (path.with_name("events.jsonl.1").stat().st_size
                                         if path.with_name("events.jsonl.1").exists() else 0)
        assert on_disk <= cap
        assert path.stat().st_size <= cap // 2
    log.close()
    older = file_records(path.with_name("events.jsonl.1"))
    newer = file_records(path)
    users = [r["user"] for r in older + newer]
    # Contiguous, ending with the newest, and all of it still in memory.
    assert users == [f"user{n}" for n in range(2000 - len(users), 2000)]
    assert users[-1] == "user1999" and len(users) > 0
    assert set(users) <= {r["user"] for r in log.records}
    assert all("_t" not in r for r in older + newer)


def test_an_existing_file_counts_towards_the_cap(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("x" * 9000 + "\n")
    log = EventLog.to_path(lambda: 1.0, str(path), max_bytes=16 * 1024)
    refusal(log, 0)  # 9001 + ~300 > half: the old content becomes events.jsonl.1
    log.close()
    assert path.with_name("events.jsonl.1").read_text().startswith("xxx")
    assert [r["user"] for r in file_records(path)] == ["user0"]


def test_a_record_larger_than_the_log_is_not_kept():
    log = EventLog(lambda: 1.0, max_bytes=200)
    refusal(log, 0)  # ~300 bytes
    assert log.records == [] and log.size == 0 and log.dropped == 1


def test_query_and_clear_work_on_the_kept_records():
    clock = Clock()
    log = EventLog(clock.seconds, io.StringIO(), max_bytes=4096)
    for n in range(40):
        clock.advance(1)
        refusal(log, n)
    kept = log.query()
    assert len(kept) == 40 - log.dropped and kept == log.records
    assert log.query(since=39) == kept[-2:]
    assert log.query(event_id=4624) == [] and len(log.query(provider="Srv")) == len(kept)
    log.clear()
    assert log.records == [] and log.size == 0 and log.dropped > 0  # the count stays


def test_metrics_expose_the_dropped_count_and_the_size():
    clock = Clock()
    engine = SessionEngine(get_edition("xp-home"), clock, EventLog(clock.seconds, max_bytes=2048))
    for n in range(30):
        refusal(engine.events, n)
    text = metrics.render(engine)
    assert f"smbrdp_events_dropped_total {engine.events.dropped}\n" in text
    assert engine.events.dropped > 0
    assert f"smbrdp_event_log_bytes {engine.events.size}\n" in text
    assert "smbrdp_event_log_max_bytes 2048\n" in text


def test_the_size_is_one_config_key_with_a_floor():
    assert build_config({}, {}).event_log_max_kb == 20480
    assert build_config({"event_log_max_kb": 512}, {}).event_log_max_kb == 512
    with pytest.raises(ConfigError):
        build_config({}, {"event_log_max_kb": 10})


def test_the_flag_reaches_the_config():
    from emulator.cli import build_parser

    args = build_parser().parse_args(["serve", "--event-log-max-kb", "512"])
    assert args.event_log_max_kb == 512


def test_the_admin_events_listing_tells_how_many_were_dropped(tmp_path):
    from emulator.admin.api import AdminAPI, Call
    from emulator.config import Config
    from emulator.server import EmulatorServer

    server = EmulatorServer(Config(edition="xp-pro", virtual_clock=True, admin_token="t",
                                   event_log_max_kb=64, shares={"d": str(tmp_path)}),
                            reactor=None)
    try:
        for n in range(400):  # ~120 kB of refusals into a 64 kB log
            refusal(server.events, n)
        reply = AdminAPI(server).handle(Call("GET", "/api/events", {}, {
            "host": "127.0.0.1:8080", "authorization": "Bearer t"}))
    finally:
        server.close()
    assert reply.status == 200
    dropped = int(dict(reply.headers)["X-Events-Dropped"])
    assert dropped == server.events.dropped > 0
    assert len(json.loads(reply.body)) == 400 - dropped
