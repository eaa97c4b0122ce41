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
