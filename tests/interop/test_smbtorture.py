"""smbtorture (Samba 4.17, package samba-testsuite): its smb2.lease and smb2.oplock tests.

Samba's own test client, unmodified, requests leases and oplocks (smbclient never does) and
checks what it is granted and what breaks it gets against the answers Windows gives: the
suites were written against Windows 7 and Server 2008 R2. Each test here is one smbtorture
test against a fresh ``win10`` host; it passes when smbtorture exits 0 and reports
``success:``. The selection is the lease/oplock tests the emulator passes that run in a few
seconds each; README.md lists the ones it does not pass and why.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import require_binary

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

SELECTION = [
    # leases: grants, upgrades, breaks, acknowledgments, epochs, stat opens
    "smb2.lease.upgrade",
    "smb2.lease.upgrade2",
    "smb2.lease.upgrade3",
    "smb2.lease.statopen3",
    "smb2.lease.statopen4",
    "smb2.lease.breaking1",
    "smb2.lease.breaking2",
    "smb2.lease.v2_epoch2",
    "smb2.lease.v2_epoch3",
    # oplocks: exclusive and batch grants and breaks, Level II, stat opens, overwrites
    "smb2.oplock.exclusive4",
    "smb2.oplock.exclusive9",
    "smb2.oplock.batch6",
    "smb2.oplock.batch13",
    "smb2.oplock.statopen1",
    "smb2.oplock.levelii501",
]


def assert_smbtorture_passes(emu, smbclient_conf: Path, test: str, *options: str) -> None:
    """One smbtorture test against ``emu``'s docs share as alice; it must report success."""
    exe = require_binary("smbtorture")
    cmd = [exe, f"//{emu.host}/docs", "-p", str(emu.smb_port), "--configfile",
           str(smbclient_conf), *options, "-U", f"alice%{emu.users['alice']}", test]
    run = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=60)
    name = test.rsplit(".", 1)[-1]
    assert run.returncode == 0 and f"success: {name}" in run.stdout, (
        f"{' '.join(cmd)} exited {run.returncode}:\n{run.stdout[-4000:]}\n"
        f"--- server stderr ---\n{emu.stderr()[-2000:]}")


@pytest.mark.parametrize("test", SELECTION)
def test_smbtorture(emulator, smbclient_conf: Path, test: str) -> None:
    assert_smbtorture_passes(emulator("win10"), smbclient_conf, test)


# SMB1 oplocks on an XP host: Samba's raw.oplock tests (SMB1, two connections: one holds the
# oplock, the other's open breaks it), the ones that pass; README.md says why others fail.
SMB1_SELECTION = [
    "raw.oplock.exclusive5", "raw.oplock.exclusive9", "raw.oplock.batch3",
    "raw.oplock.batch4", "raw.oplock.batch6",
    "raw.oplock.batch7", "raw.oplock.batch8", "raw.oplock.batch9", "raw.oplock.batch13",
    "raw.oplock.batch14", "raw.oplock.batch15", "raw.oplock.batch16", "raw.oplock.batch21",
    "raw.oplock.batch22", "raw.oplock.batch23", "raw.oplock.batch24",
    "raw.oplock.level_ii_1",
]


@pytest.mark.parametrize("test", SMB1_SELECTION)
def test_smbtorture_smb1_oplocks_on_xp(emulator, smbclient_conf: Path, test: str) -> None:
    assert_smbtorture_passes(emulator("xp-pro", args=["--no-force-guest"]), smbclient_conf,
                             test, "--option=client min protocol=NT1",
                             "--option=client max protocol=NT1")
