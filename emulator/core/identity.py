"""The host's machine SID: the account domain's SID that lsarpc and samr answer with.

Windows makes one at setup (S-1-5-21 and three random 32-bit sub-authorities) and keeps
it; so does the emulator, per computer name, in the state directory where the RDP
certificate is kept (``$XDG_STATE_HOME/smbrdp-emulator`` or ``~/.local/state/...``).
A configured ``machine_sid`` wins. With nowhere to write, a run keeps its own.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from protocols.dcerpc.accounts import valid_machine_sid
from protocols.rdp.tls import default_directory


def generate() -> str:
    return "S-1-5-21-" + "-".join(str(secrets.randbits(32)) for _ in range(3))


def state_file(computer: str, directory: Path | None = None) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", computer.upper()) or "_"
    return (directory or default_directory()) / f"machine-sid-{safe}.txt"


def machine_sid(computer: str, configured: str | None = None,
                directory: Path | None = None) -> str:
    """The configured SID, else the one kept for ``computer``, else a new one (kept)."""
    if configured:
        return configured
    path = state_file(computer, directory)
    try:
        kept = path.read_text(encoding="ascii").strip()
        if valid_machine_sid(kept):
            return kept
    except (OSError, UnicodeDecodeError):
        pass  # missing or unreadable: make one
    made = generate()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(made + "\n", encoding="ascii")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: this run's SID only
    return made
