"""The command line as a user meets it: the ready line, defaults, config files, errors."""

import json
import shutil

import pytest
from impacket.smbconnection import SMBConnection

from tests.serverproc import ServerProcess, run

# A user namespace with no mapping drops every capability, as a non-root user has none:
# the way to run "as a non-root user" on a machine where the suite runs as root.
NON_ROOT = ["unshare", "--user"]


def test_editions_table_lists_every_edition_with_its_limits():
    out = run(["editions"]).stdout
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) >= {"xp-home", "xp-pro", "win7", "win10", "win11", "whs",
                         "server-2003", "server-2022"}
    assert rows["xp-home"].split()[-1] == "2.0.2" and " 5 " in rows["xp-home"]
    assert " 10 " in rows["xp-pro"] and rows["win7"].split()[-1] == "2.1"
    assert " 20 " in rows["win11"] and rows["win11"].split()[-1] == "3.1.1"
    assert "unlimited" in rows["server-2022"]


def test_port_zero_picks_free_ports_and_the_ready_line_names_them(tmp_path):
    events = tmp_path / "events.jsonl"
    srv = ServerProcess(["serve", "--edition", "xp-pro", "--smb-port", "0", "--netbios-port",
                         "0", "--rdp-port", "0", "--user", "alice:pw", "--share",
                         f"docs={tmp_path}", "--event-log", str(events)])
    try:
        assert srv.ready.startswith("ready ")
        assert srv.port("smb") > 0 and srv.port("netbios") > 0
        conn = SMBConnection("127.0.0.1", "127.0.0.1", sess_port=srv.port("smb"))
        conn.login("alice", "pw")
        conn.logoff()
    finally:
        assert srv.stop() == 0
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert [r["outcome"] for r in records] == ["admitted", "logoff"]
    assert records[0]["user"] == "alice" and records[0]["protocol"] == "smb"
    assert "Traceback" not in srv.stderr_text


@pytest.mark.skipif(not shutil.which("unshare"), reason="util-linux unshare missing")
def test_no_arguments_serves_the_documented_defaults_as_a_non_root_user():
    srv = ServerProcess([], prefix=NON_ROOT)
    try:
        assert srv.listeners == {"smb": "127.0.0.1:4445", "netbios": "127.0.0.1:1139",
                                 "rdp": "127.0.0.1:3389"}
        conn = SMBConnection("127.0.0.1", "127.0.0.1", sess_port=4445)
        conn.login("user", "password")
        names = [f.get_longname() for f in conn.listPath("public", "*")]
        assert names[:2] == [".", ".."]
        conn.logoff()
    finally:
        srv.stop()
    assert "no user configured: serving user:password" in srv.stderr_text
    assert "Traceback" not in srv.stderr_text


@pytest.mark.skipif(not shutil.which("unshare"), reason="util-linux unshare missing")
def test_port_445_without_root_says_why_and_exits_2():
    result = run(["serve", "--smb-port", "445", "--netbios-port", "0"], prefix=NON_ROOT)
    assert result.returncode == 2
    assert "port 445" in result.stderr and "need root" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_file_says_what_flags_say_and_flags_win(tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    (share / "hello.txt").write_text("hi")
    cfg = tmp_path / "emu.toml"
    cfg.write_text(f"""
edition = "xp-home"
smb_port = 0
netbios_port = 0
rdp_port = 0
denial_status = "STATUS_REMOTE_SESSION_LIMIT"
smb_limit = 1
[users]
carol = "secret"
[shares]
files = "{share}"
""")
    srv = ServerProcess(["serve", "--config", str(cfg), "--user", "dave:pw2"])
    try:
        first = SMBConnection("127.0.0.1", "127.0.0.1", sess_port=srv.port("smb"))
        first.login("carol", "secret")
        assert [f.get_longname() for f in first.listPath("files", "*")][2:] == ["hello.txt"]
        second = SMBConnection("127.0.0.1", "127.0.0.1", sess_port=srv.port("smb"))
        with pytest.raises(Exception) as refused:
            second.login("dave", "pw2")
        assert refused.value.getErrorCode() == 0xC0000196  # the configured denial status
        first.logoff()
        second.login("dave", "pw2")  # the flag's user joined the file's
    finally:
        srv.stop()


@pytest.mark.parametrize("args,message", [
    (["serve", "--edition", "win95"], "unknown edition"),
    (["serve", "--user", "nocolon"], "--user must look like NAME:VALUE"),
    (["serve", "--share", "x=/nonexistent/dir", "--smb-port", "0", "--netbios-port", "0"],
     "is not a directory"),
    (["serve", "--config", "/nonexistent.toml"], "cannot read config"),
])
def test_bad_arguments_exit_2_with_one_clear_line(args, message):
    result = run(args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
