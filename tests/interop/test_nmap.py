"""nmap's NSE scripts smb-protocols and smb2-security-mode against the emulator."""

from __future__ import annotations

import re
import subprocess

import pytest

from .conftest import EDITIONS, require_binary

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


# Editions whose Windows answers nmap's TerminalServerCookie probe with the RDP_NEG_RSP flags
# nmap-service-probes matches (0x1f: 10 1607 and later), or (XP, 2003) answers its
# TerminalServer probe (no RDP_NEG_REQ) with Standard RDP Security's bare Connection Confirm.
# Vista, 7 and 2008 R2 would answer that probe so too ("any version"), but do not speak RDP
# Security here.
_SV_MATCHED = ["xp-pro", "whs", "server-2003", "win10", "win11", "server-2016",
               "server-2019", "server-2022", "server-2025"]
_SV_NEEDS_RDP_SECURITY = ["vista", "win7", "server-2008r2"]
# 8.1 / 2012 R2 answer 0x0f, which nmap-service-probes matches since after nmap 7.93.
_SV_NEWER_NMAP = ["win81", "server-2012r2"]


@pytest.mark.parametrize("edition", _SV_MATCHED + [
    pytest.param(e, marks=pytest.mark.xfail(reason="needs Standard RDP Security's Connection "
                                            "Confirm for the TerminalServer probe"))
    for e in _SV_NEEDS_RDP_SECURITY] + [
    pytest.param(e, marks=pytest.mark.xfail(reason="nmap 7.93's probes match 0x1f only"))
    for e in _SV_NEWER_NMAP])
def test_nmap_sv_identifies_microsoft_terminal_services(emulator, edition):
    out = _nmap_rdp(emulator(edition), "-sV", "--version-intensity", "7")
    assert "Microsoft Terminal Service" in out, out


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
