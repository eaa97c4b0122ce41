"""A lab host removed while RDP faults hold its connections (one stalled, one delayed on
the reactor's clock, each with a logon slot): the clients are dropped, and the process is
left with no more timers and descriptors than before the host was added."""

import time

from emulator.admin.client import AdminClient
from emulator.harness.rdp_client import RDPTestClient
from tests.test_lab import TOKEN, run_lab

LAB = f"""
edition = "whs"
smb_port = 0
netbios_port = 0
rdp_port = 0
admin_token = "{TOKEN}"

[[host]]
name = "keep"
address = "127.0.0.2"
"""


def test_removing_a_host_with_stalled_and_delayed_rdp_leaves_no_timer_slot_or_fd(tmp_path):
    lab = run_lab(tmp_path, LAB)
    try:
        admin = AdminClient(lab.listeners["admin"], TOKEN)
        before = admin.call("GET", "/api/lab")
        row = admin.call("POST", "/api/hosts", {
            "name": "pc2", "address": "127.0.0.4", "rdp_port": 0,
            "users": {"alice": "pw-a", "bob": "pw-b"}})
        host, port = row["listeners"]["rdp"].rsplit(":", 1)
        admin.call("POST", "/api/hosts/pc2/faults", {
            "protocol": "rdp", "command": "CONFIRM_ACTIVE", "action": "stall", "user": "alice"})
        admin.call("POST", "/api/hosts/pc2/faults", {
            "protocol": "rdp", "command": "CONFIRM_ACTIVE", "delay": 3000, "user": "bob"})
        held = []
        for user, password in (("alice", "pw-a"), ("bob", "pw-b")):
            client = RDPTestClient(host, int(port))
            assert client.negotiate()
            client.logon(user, password)  # up to the Confirm Active the fault holds
            held.append(client)
        deadline = time.monotonic() + 10
        while [f["hits"] for f in admin.call("GET", "/api/hosts/pc2/faults")] != [1, 1]:
            assert time.monotonic() < deadline, admin.call("GET", "/api/hosts/pc2/faults")
            time.sleep(0.05)
        assert admin.call("GET", "/api/hosts/pc2")["sessions"] == 2  # two slots held
        during = admin.call("GET", "/api/lab")
        assert during["delayed_calls"] > before["delayed_calls"]  # setup timers, the delay
        assert admin.call("DELETE", "/api/hosts/pc2") == {"removed": "PC2"}
        for client in held:
            report = client.read_until_closed()
            assert report.closed and not report.activated and report.errinfo == []
        deadline = time.monotonic() + 10
        while True:
            after = admin.call("GET", "/api/lab")
            if after["closing"] == 0 and after["fds"] <= before["fds"] or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert after["closing"] == 0 and after["hosts"] == 1
        assert after["delayed_calls"] <= before["delayed_calls"], (before, after)
        assert after["fds"] <= before["fds"], (before, after)
    finally:
        assert lab.stop() == []
