"""nmap's NSE scripts smb-protocols and smb2-security-mode against the emulator."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import EDITIONS, require_binary, require_file

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

# Dialect spellings differ between nmap versions: "202", "2.0.2", "2:0:2",
# "2.02", "2.1", "3.11" ...  All are the hex digits of the revision.
_DIALECT = re.compile(r"\d[.:]?\d(?:[.:]?\d)?")


def _run_nmap(emu) -> str:
    exe = require_binary("nmap")
    cmd = [
        exe,
        "-n",
        "-Pn",
        "-sT",  # connect scan: works unprivileged too
        "-p",
        str(emu.smb_port),
        "--script",
        "smb-protocols,smb2-security-mode",
        "--script-args",
        f"smbport={emu.smb_port}",
        emu.host,
    ]
    proc = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=150
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _script_blocks(out: str) -> dict[str, list[str]]:
    """Host script results, name -> the lines under it (prefixes stripped)."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        head = re.match(r"^\|[_ ]([a-z0-9-]+):(.*)$", line)
        if head:
            current = blocks.setdefault(head.group(1), [])
            if head.group(2).strip():
                current.append(head.group(2).strip())
        elif current is not None and line.startswith("|"):
            current.append(line.lstrip("|_").strip())
        else:
            current = None
    return blocks


def _dialects(lines: list[str]) -> list[int]:
    found = []
    for line in lines:
        token = line.rstrip(":").strip()
        if _DIALECT.fullmatch(token):
            digits = re.sub(r"[^0-9]", "", token).ljust(3, "0")
            found.append(int(digits, 16))
    return found


@pytest.mark.parametrize("edition", ["xp-pro", "win7", "win10", "server-2022"])
def test_protocols_and_security_mode(emulator, edition):
    """Signing is enabled but not required by default (a Windows client SKU). XP speaks
    SMB1 only by default (tests/interop/test_smb1.py): here its SMB2 side, SMB1 off."""
    emu = emulator(edition, args=EDITIONS[edition].smb2_args)
    out = _run_nmap(emu)

    blocks = _script_blocks(out)
    assert "smb-protocols" in blocks and "smb2-security-mode" in blocks, out

    protocols = blocks["smb-protocols"]
    # SMBv1 ("NT LM 0.12") is not part of the contract; only SMB2+ is compared.
    assert _dialects(protocols) == list(EDITIONS[edition].dialects), out

    security = blocks["smb2-security-mode"]
    text = "\n".join(security)
    assert "Message signing enabled but not required" in text, text
    # The highest dialect is the one smb2-security-mode reports on.
    assert _dialects(security) == [EDITIONS[edition].max_dialect], text


def test_security_mode_signing_required(emulator):
    emu = emulator("server-2022", args=["--signing-required"])
    security = _script_blocks(_run_nmap(emu)).get("smb2-security-mode", [])
    assert "Message signing enabled and required" in "\n".join(security), security


# -- the RDP port: service detection and TLS, as scanners read a Windows host ----------------

def _nmap_rdp(emu, *args: str) -> str:
    exe = require_binary("nmap")
    host, port = emu.listeners["rdp"]
    proc = subprocess.run([exe, "-n", "-Pn", "-sT", "-p", str(port), *args, host],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


# `nmap -sV` as a scanner meets a Windows host: the RDP port is 3389, so nmap sends the
# probes registered for 3389 first, in file order (TerminalServerCookie, TLSSessionReq,
# TerminalServer), which a random port would not. Each host gets a network namespace of its
# own (its own loopback and 3389), read with bookworm's nmap 7.93 and with nmap 7.95's
# probe database (Debian trixie's nmap-common, fetched by scripts/install-test-deps).
_TRIXIE_PROBES = Path(__file__).resolve().parents[2] / ".nmap-trixie"
_RDP_EDITIONS = ["xp-pro", "whs", "server-2003", "vista", "win7", "server-2008r2", "win81",
                 "server-2012r2", "win10", "win11", "server-2016", "server-2019",
                 "server-2022", "server-2025"]
# nmap 7.93 matches TerminalServerCookie answers with flags 0x1f only (10 1607 and later)
# and has no softmatch for the other Connection Confirms, so TLSSessionReq comes next,
# and the hosts that answer a bare ClientHello (7 and later) become `ssl/ms-wbt-server?`,
# what metasploit PR #12183 lists for real Windows 7 (and 10 before the 0x1f line). 7.95
# matches 0x07/0x0f/0x1f and softmatches any Connection Confirm, after which the
# TerminalServer probe (no RDP_NEG_REQ) gets Negotiate's Standard RDP Security Confirm.
_SV_UNNAMED_BY_7_93 = {"vista", "win7", "server-2008r2", "win81", "server-2012r2"}

_IN_NAMESPACE = r"""
import subprocess, sys
nmap, edition, *datadirs = sys.argv[1:]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
emu = subprocess.Popen([sys.executable, "-m", "emulator", "serve", "--edition", edition,
                        "--rdp-port", "3389", "--smb-port", "0", "--netbios-port", "0"],
                       stdout=subprocess.PIPE, text=True)
try:
    ready = emu.stdout.readline()
    assert "rdp=127.0.0.1:3389" in ready, ready
    for datadir in datadirs:
        extra = ["--datadir", datadir] if datadir != "-" else []
        out = subprocess.run([nmap, *extra, "-n", "-Pn", "-sT", "-sV", "-p", "3389",
                              "127.0.0.1"], capture_output=True, text=True, timeout=120)
        print(out.stdout + out.stderr + "\n=====")
finally:
    emu.terminate()
    emu.wait(10)
"""


def _sv_on_3389(edition: str, *datadirs: str) -> list[str]:
    """The 3389/tcp line nmap -sV prints, once per probe database ("-": nmap's own)."""
    for tool in ("unshare", "ip"):
        require_binary(tool)
    proc = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--net", sys.executable, "-c",
         _IN_NAMESPACE, require_binary("nmap"), edition, *datadirs],
        capture_output=True, text=True, timeout=170, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = proc.stdout.split("\n=====")[:-1]
    assert len(runs) == len(datadirs), proc.stdout
    lines = []
    for out in runs:
        found = [line for line in out.splitlines() if line.startswith("3389/tcp")]
        assert len(found) == 1, out
        lines.append(found[0])
    return lines


@pytest.mark.parametrize("edition", _RDP_EDITIONS)
def test_nmap_sv_on_3389_reads_the_rdp_port_as_it_reads_that_windows(edition):
    require_file(_TRIXIE_PROBES / "nmap-service-probes", "nmap 7.95's probe database")
    with_7_93, with_7_95 = _sv_on_3389(edition, "-", str(_TRIXIE_PROBES))
    assert "Microsoft Terminal Service" in with_7_95, with_7_95
    if edition in _SV_UNNAMED_BY_7_93:
        assert with_7_93.split() == ["3389/tcp", "open", "ssl/ms-wbt-server?"], with_7_93
    else:
        assert "Microsoft Terminal Service" in with_7_93, with_7_93


def _tls_versions(out: str) -> dict[str, list[str]]:
    """ssl-enum-ciphers: protocol -> its suites, in the order listed (the server's)."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        head = re.match(r"^\|\s+(TLSv1\.[0-3]|SSLv3):\s*$", line)
        if head:
            current = found.setdefault(head.group(1), [])
            continue
        suite = re.match(r"^\|\s+(TLS_\w+)\s", line)
        if suite and current is not None:
            current.append(suite.group(1))
    return found


def test_ssl_enum_ciphers_on_win7_lists_tls_1_0_cbc_suites_in_schannel_order(emulator):
    out = _nmap_rdp(emulator("win7"), "--script", "ssl-enum-ciphers,ssl-cert")
    assert _tls_versions(out) == {"TLSv1.0": [
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
        "TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA"]}, out
    assert "cipher preference: server" in out, out
    assert "sha1WithRSAEncryption" in out and "commonName=EMULATOR" in out, out


def test_ssl_enum_ciphers_on_win10_lists_tls_1_0_to_1_2_in_schannel_order(emulator):
    out = _nmap_rdp(emulator("win10"), "--script", "ssl-enum-ciphers,ssl-cert")
    versions = _tls_versions(out)
    assert sorted(versions) == ["TLSv1.0", "TLSv1.1", "TLSv1.2"], out
    assert versions["TLSv1.2"] == [
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "TLS_RSA_WITH_AES_256_GCM_SHA384", "TLS_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_RSA_WITH_AES_256_CBC_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA256",
        "TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA"], out
    assert versions["TLSv1.0"] == versions["TLSv1.1"] == [
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA"], out
    assert "sha256WithRSAEncryption" in out, out
