"""The command line as a user meets it: the ready line, defaults, config files, errors."""

import json
import shutil
import subprocess
import sys

import pytest
from impacket.smbconnection import SMBConnection

from emulator.harness.hosts import ServerProcess

# A user namespace with no mapping drops every capability, as a non-root user has none:
# the way to run "as a non-root user" on a machine where the suite runs as root.
NON_ROOT = ["unshare", "--user"]


def run(args, prefix=None):
    return subprocess.run([*(prefix or []), sys.executable, "-m", "emulator", *args],
                          capture_output=True, text=True, timeout=60)


def serve(args, tmp_path, prefix=None):
    return ServerProcess(args, stderr_path=tmp_path / "stderr.log", prefix=prefix)


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
    srv = serve(["serve", "--edition", "xp-pro", "--smb-port", "0", "--netbios-port", "0",
                 "--rdp-port", "0", "--user", "alice:pw", "--share", f"docs={tmp_path}",
                 "--event-log", str(events)], tmp_path)
    try:
        assert srv.ready_line.startswith("ready ")
        assert srv.address("smb")[1] > 0 and srv.address("netbios")[1] > 0
        conn = SMBConnection("127.0.0.1", "127.0.0.1", sess_port=srv.address("smb")[1])
        conn.login("alice", "pw")
        conn.logoff()
    finally:
        assert srv.stop() == []
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert [r["outcome"] for r in records] == ["admitted", "logoff"]
    # XP's Simple File Sharing (ForceGuest, on by default) logs network users on as Guest.
    assert records[0]["user"] == "Guest" and records[0]["protocol"] == "smb"
    assert "Traceback" not in srv.stderr()


@pytest.mark.skipif(not shutil.which("unshare"), reason="util-linux unshare missing")
def test_no_arguments_serves_the_documented_defaults_as_a_non_root_user(tmp_path):
    srv = serve([], tmp_path, prefix=NON_ROOT)
    try:
        assert srv.listeners == {"smb": "127.0.0.1:4445", "netbios": "127.0.0.1:1139",
                                 "rdp": "127.0.0.1:3389"}
        conn = SMBConnection("127.0.0.1", "127.0.0.1", sess_port=4445)
        conn.login("user", "password")
        names = [f.get_longname() for f in conn.listPath("public", "*")]
        assert names[:2] == [".", ".."]
        conn.logoff()
    finally:
        assert srv.stop() == []
    assert "no user configured: serving user:password" in srv.stderr()
    assert "warning:" not in srv.stderr()  # loopback: nothing is exposed
    assert "Traceback" not in srv.stderr()


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
    srv = serve(["serve", "--config", str(cfg), "--user", "dave:pw2"], tmp_path)
    try:
        first = SMBConnection("127.0.0.1", "127.0.0.1", sess_port=srv.address("smb")[1])
        first.login("carol", "secret")
        assert [f.get_longname() for f in first.listPath("files", "*")][2:] == ["hello.txt"]
        second = SMBConnection("127.0.0.1", "127.0.0.1", sess_port=srv.address("smb")[1])
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


# A network namespace of our own: 0.0.0.0 in it reaches no other machine (its only device
# is its own loopback), so the exposure checks can bind a wildcard address safely.
NETNS = ["unshare", "--user", "--net"]
WILDCARD = ["serve", "--host", "0.0.0.0", "--smb-port", "0", "--netbios-port", "0",
            "--rdp-port", "0"]


@pytest.mark.skipif(not shutil.which("unshare"), reason="util-linux unshare missing")
@pytest.mark.parametrize("args,message", [
    ([], "refusing to serve the built-in account user:password"),
    (["--user", "alice:pw", "--admin-port", "0"], "refusing a generated admin token"),
])
def test_defaults_on_a_non_loopback_address_are_refused_exit_2(args, message):
    result = subprocess.run([*NETNS, sys.executable, "-m", "emulator", *WILDCARD, *args],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 2 and "ready" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "--allow-insecure-exposure" in lines[0]


@pytest.mark.skipif(not shutil.which("unshare"), reason="util-linux unshare missing")
@pytest.mark.parametrize("args,exposed", [
    (["--user", "alice:pw", "--admin-port", "0", "--admin-token", "t"],
     "SMB, NetBIOS, RDP, the admin API (plain HTTP, no TLS)"),
    (["--allow-insecure-exposure", "--admin-port", "0"],
     "the built-in account user:password, a generated admin token"),
])
def test_a_non_loopback_address_serves_with_a_warning_on_stderr(tmp_path, args, exposed):
    srv = serve([*WILDCARD, *args], tmp_path, prefix=NETNS)
    try:
        assert srv.ready_line.startswith("ready smb=0.0.0.0:")
    finally:
        srv.stop()
    warnings = [line for line in srv.stderr().splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "0.0.0.0 is not a loopback address" in warnings[0]
    assert exposed in warnings[0]
