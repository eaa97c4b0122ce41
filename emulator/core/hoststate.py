"""What a host keeps across restarts beside its RDP certificate: the seed of its SMB
ServerGuid.

Windows generates ServerGuid once (MS-SMB2 3.3.3) and a host shows the same one day
after day (runZero's rumble-smb2-sessions README shows one GUID on two days); so the
emulator derives it from a random seed kept in the state directory and the computer
name: the same host (same name) keeps its GUID, two names get two GUIDs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

SEED_FILE = "smb-server-guid.seed"


def state_directory() -> Path:
    """``$XDG_STATE_HOME/smbrdp-emulator`` (``~/.local/state/...``): the RDP certificate's."""
    from protocols.rdp.tls import default_directory

    return default_directory()


def _seed(folder: Path) -> bytes:
    path = folder / SEED_FILE
    try:
        seed = path.read_bytes()
        if len(seed) == 32:
            return seed
    except OSError:
        pass
    seed = os.urandom(32)
    tmp = folder / f".{SEED_FILE}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(seed)
        os.replace(tmp, path)
    except OSError:
        pass  # nowhere to keep it (a read-only home): this run's GUID only
    return seed


def server_guid(computer_name: str, folder: Path | None = None) -> bytes:
    """16 bytes, stable for one computer name on one machine; a version-4-shaped GUID."""
    digest = hmac.new(_seed(folder or state_directory()), computer_name.upper().encode(),
                      hashlib.sha256).digest()
    guid = bytearray(digest[:16])
    guid[7] = (guid[7] & 0x0F) | 0x40  # Data3's high nibble (little-endian field): version 4
    guid[8] = (guid[8] & 0x3F) | 0x80  # the variant bits
    return bytes(guid)
