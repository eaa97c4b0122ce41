"""Faults on SMB1 connections: SMB1 commands under the SMB2 names, a refused logon with its
4625, a connection fault, and a removed share under its tree."""

from __future__ import annotations

from impacket import smb as i

from emulator.core.faults import FaultTable
from protocols.smb2.fs import DiskShare
from protocols.smb2.messages import COMMAND_NAMES
from tests.unit.smb1_helpers import (
    connection, login_extended, make, negotiate, packet, parse, send, status, tree_connect,
)


def setup(tmp_path):
    (tmp_path / "f.txt").write_bytes(b"x")
    faults = FaultTable({"smb": tuple(COMMAND_NAMES.values())})
    engine, clock, config = make("xp-pro", shares={"docs": DiskShare("docs", tmp_path)},
                                 faults=faults)
    conn = connection(config)
    negotiate(conn)
    return engine, faults, config, conn


def test_a_refused_smb1_logon_logs_4625_and_holds_no_slot(tmp_path):
    engine, faults, _, conn = setup(tmp_path)
    faults.add({"protocol": "smb", "command": "SESSION_SETUP",
                "status": "STATUS_ACCOUNT_LOCKED_OUT"})
    reply, _ = login_extended(conn)
    assert status(reply) == 0xC0000234 and reply["Uid"] not in conn.sessions
    assert engine.counted("smb") == 0
    (failed,) = engine.events.query(event_id=4625)
    assert (failed["failure_status"], failed["sub_status"]) == ("0xc0000234", "0x0")


def test_tree_connect_andx_answers_under_its_smb2_name_then_a_drop(tmp_path):
    engine, faults, _, conn = setup(tmp_path)
    reply, uid = login_extended(conn)
    assert status(reply) == 0
    faults.add({"protocol": "smb", "command": "TREE_CONNECT", "status": 0xC000009A})
    (r,) = send(conn, packet(tree_connect("\\\\XPBOX\\docs"), uid=uid, mid=3))
    assert status(parse(r)) == 0xC000009A
    faults.add({"protocol": "smb", "command": "TREE_CONNECT", "action": "drop"})
    assert send(conn, packet(tree_connect("\\\\XPBOX\\docs"), uid=uid, mid=4)) == []
    assert conn.close_requested
    conn.connection_lost()
    assert engine.counted("smb") == 0


def test_removed_share_is_name_deleted_on_an_smb1_tree(tmp_path):
    engine, faults, config, conn = setup(tmp_path)
    _, uid = login_extended(conn)
    (r,) = send(conn, packet(tree_connect("\\\\XPBOX\\docs"), uid=uid, mid=3))
    tid = parse(r)["Tid"]
    del config.shares["docs"]
    cmd = i.SMBCommand(i.SMB.SMB_COM_CHECK_DIRECTORY)
    cmd["Parameters"] = b""
    cmd["Data"] = b"\x04" + "\\".encode("utf-16-le") + b"\0\0"
    (r,) = send(conn, packet(cmd, uid=uid, tid=tid, mid=4))
    assert status(parse(r)) == 0xC00000C9  # STATUS_NETWORK_NAME_DELETED
