"""bench/hostile_clients.py reads xfreerdp's debug log: the time of its
CONNECTION_STATE_ACTIVE and its ~100 ms waits by connection state (the figures
bench_hostile.py prints for the xfreerdp floor)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from hostile_clients import XfreerdpLog, connection_waits  # noqa: E402

T = "[DEBUG][com.freerdp.core.connection] - rdp_client_transition_to_state "


def test_waits_are_counted_by_the_state_the_client_waited_in() -> None:
    lines = [
        (9.0, "before the connect: ignored"),
        (10.00, T + "CONNECTION_STATE_INITIAL --> CONNECTION_STATE_NEGO"),
        (10.02, T + "CONNECTION_STATE_NEGO --> CONNECTION_STATE_NLA"),   # 20 ms: no wait
        (10.12, "CredSSP protocol support 6, peer supports 6"),         # 1 in NLA
        (10.22, T + "CONNECTION_STATE_NLA --> CONNECTION_STATE_MCS_CONNECT"),  # 1 in NLA
        (10.32, T + "CONNECTION_STATE_MCS_CONNECT --> CONNECTION_STATE_MCS_CHANNEL_JOIN"),
        (10.93, T + "CONNECTION_STATE_MCS_CHANNEL_JOIN --> CONNECTION_STATE_LICENSING"),
        (10.93, T + "CONNECTION_STATE_FINALIZATION --> CONNECTION_STATE_ACTIVE"),
        (12.00, "after ACTIVE: ignored"),
    ]
    waits = connection_waits(lines, 10.0, 10.93)
    assert waits == {"CONNECTION_STATE_NLA": 2, "CONNECTION_STATE_MCS_CONNECT": 1,
                     "CONNECTION_STATE_MCS_CHANNEL_JOIN": 6}


def test_the_log_reader_stamps_active_and_ends_with_the_child() -> None:
    read_end, write_end = os.pipe()
    log = XfreerdpLog(read_end)
    log.start()
    os.write(write_end, (T + "CONNECTION_STATE_NEGO --> CONNECTION_STATE_MCS_CONNECT\n"
                         + T + "CONNECTION_STATE_FINALIZATION --> CONNECTION_STATE_ACTIVE\n"
                         + "partial line without its end").encode())
    os.close(write_end)
    log.join(5)
    assert not log.is_alive()
    assert [line.rsplit(" ", 1)[1] for _, line in log.lines] == [
        "CONNECTION_STATE_MCS_CONNECT", "CONNECTION_STATE_ACTIVE"]
    assert log.active == log.lines[1][0]
