"""Samba's smbclient (4.17) against the emulator."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .conftest import EDITIONS, SMBCLIENT_PROTOCOL, run_smbclient

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

ALL_DIALECTS = sorted(SMBCLIENT_PROTOCOL)
SMB3_DIALECTS = [d for d in ALL_DIALECTS if d >= 0x0300]


def _ids(dialects: list[int]) -> list[str]:
    return [SMBCLIENT_PROTOCOL[d] for d in dialects]


def _payload(tmp: Path) -> bytes:
    data = os.urandom(1024 * 1024 + 4099)  # more than one read/write credit, odd size
    (tmp / "src.bin").write_bytes(data)
    return data


def _ok(proc, what: str) -> str:
    out = proc.stdout
    assert proc.returncode == 0, f"{what}: smbclient exited {proc.returncode}:\n{out}"
    assert "NT_STATUS_" not in out, f"{what}: smbclient reported an error:\n{out}"
    return out


def _file_round_trip(emu, conf: Path, local: Path, *args: str, protocol: int | None) -> None:
    data = _payload(local)
    share = emu.share_dir
    (share / "existing.txt").write_text("hello from the share\n")

    out = _ok(
        run_smbclient(
            emu,
            conf,
            *args,
            protocol=protocol,
            cwd=local,
            commands="ls; put src.bin a.bin; get a.bin back.bin; mkdir d; rename a.bin b.bin; ls",
        ),
        "put/get/mkdir/rename",
    )
    assert "existing.txt" in out
    assert re.search(r"^\s+b\.bin\s", out, re.M), out
    assert (local / "back.bin").read_bytes() == data, "downloaded copy differs"
    assert (share / "b.bin").read_bytes() == data, "uploaded copy differs on the server"
    assert not (share / "a.bin").exists()
    assert (share / "d").is_dir()

    _ok(
        run_smbclient(
            emu, conf, *args, protocol=protocol, cwd=local, commands="rm b.bin; rmdir d; ls"
        ),
        "rm/rmdir",
    )
    assert sorted(p.name for p in share.iterdir()) == ["existing.txt"]


@pytest.mark.parametrize("dialect", ALL_DIALECTS, ids=_ids(ALL_DIALECTS))
def test_file_operations_each_dialect(emulator, smbclient_conf, tmp_path, dialect):
    emu = emulator("win10")
    _file_round_trip(emu, smbclient_conf, tmp_path, protocol=dialect)


@pytest.mark.parametrize("dialect", ALL_DIALECTS, ids=_ids(ALL_DIALECTS))
def test_signing_required(emulator, smbclient_conf, tmp_path, dialect):
    emu = emulator("win10")
    _file_round_trip(
        emu,
        smbclient_conf,
        tmp_path,
        "--option=client signing=required",
        "--client-protection=sign",
        protocol=dialect,
    )


@pytest.mark.parametrize("dialect", SMB3_DIALECTS, ids=_ids(SMB3_DIALECTS))
def test_encryption_required(emulator, smbclient_conf, tmp_path, dialect):
    emu = emulator("win10")
    _file_round_trip(
        emu,
        smbclient_conf,
        tmp_path,
        "--option=client smb encrypt=required",
        "--client-protection=encrypt",
        protocol=dialect,
    )


@pytest.mark.parametrize("cipher", ["AES-128-CCM", "AES-128-GCM", "AES-256-CCM", "AES-256-GCM"])
def test_each_smb311_cipher(emulator, smbclient_conf, tmp_path, cipher):
    # With one algorithm allowed, smbclient fails unless the server negotiated exactly it.
    emu = emulator("win11")
    _file_round_trip(
        emu,
        smbclient_conf,
        tmp_path,
        "--client-protection=encrypt",
        f"--option=client smb3 encryption algorithms={cipher}",
        protocol=0x0311,
    )


@pytest.mark.parametrize("edition", ["xp-home", "xp-pro", "win7", "win10", "server-2022"])
def test_edition_caps_dialect(emulator, smbclient_conf, edition):
    emu = emulator(edition, args=EDITIONS[edition].smb2_args)
    cap = EDITIONS[edition].max_dialect
    # Unpinned (smbclient offers 2.0.2 .. 3.1.1): connects at the edition's cap.
    _ok(run_smbclient(emu, smbclient_conf, "-m", "SMB3_11", commands="ls"), "unpinned")
    # Pinned to the cap: works.
    _ok(run_smbclient(emu, smbclient_conf, protocol=cap, commands="ls"), "at the cap")
    # Pinned above the cap: negotiation fails, no session is set up.
    for dialect in (d for d in ALL_DIALECTS if d > cap):
        proc = run_smbclient(emu, smbclient_conf, protocol=dialect, commands="ls")
        assert proc.returncode != 0, f"{edition} accepted {SMBCLIENT_PROTOCOL[dialect]}"
        assert "negotiat" in proc.stdout.lower(), proc.stdout
    admitted = emu.wait_events(2, protocol="smb", outcome="admitted")
    assert len(admitted) == 2, emu.events()


def test_wrong_password(emulator, smbclient_conf):
    emu = emulator("win10")
    proc = run_smbclient(emu, smbclient_conf, password="not-the-password", commands="ls")
    assert proc.returncode != 0
    assert "NT_STATUS_LOGON_FAILURE" in proc.stdout, proc.stdout


def test_unknown_user(emulator, smbclient_conf):
    emu = emulator("win10")
    proc = run_smbclient(emu, smbclient_conf, user="mallory", password="x", commands="ls")
    assert proc.returncode != 0
    assert "NT_STATUS_LOGON_FAILURE" in proc.stdout, proc.stdout


def test_event_log_records_admission(emulator, smbclient_conf):
    emu = emulator("win10")
    _ok(run_smbclient(emu, smbclient_conf, commands="ls"), "ls")
    events = emu.wait_events(1, protocol="smb", outcome="admitted", user="alice")
    assert events, emu.events()
    ev = events[0]
    for key in ("time", "protocol", "address", "workstation", "user", "outcome", "status"):
        assert key in ev, f"event lacks {key!r}: {ev}"
    assert ev["address"].startswith("127.0.0.1"), ev


def test_anonymous_ipc(emulator, smbclient_conf):
    """A null session to IPC$ is admitted (and logged), as on a default Windows."""
    emu = emulator("win10")
    proc = run_smbclient(emu, smbclient_conf, share="IPC$", user=None, commands="exit")
    assert proc.returncode == 0, proc.stdout
    assert "NT_STATUS_" not in proc.stdout, proc.stdout
    admitted = emu.wait_events(1, protocol="smb", outcome="admitted")
    assert admitted, emu.events()
    assert admitted[0].get("user") in ("", None), admitted[0]


# -- issue 14: EncryptData cannot be stripped -------------------------------------------------
def test_encrypt_data_refuses_smb2_10_and_serves_an_encrypting_client(
        emulator, smbclient_conf, tmp_path):
    emu = emulator("win10", args=["--encrypt-data"])
    proc = run_smbclient(emu, smbclient_conf, protocol=0x0210, commands="ls")
    assert proc.returncode != 0 and "NT_STATUS_ACCESS_DENIED" in proc.stdout, proc.stdout
    assert not emu.events(protocol="smb", outcome="admitted")
    _file_round_trip(emu, smbclient_conf, tmp_path, protocol=0x0311)


def test_an_encrypt_data_share_refuses_smb2_10_at_tree_connect(emulator, smbclient_conf,
                                                               tmp_path):
    emu = emulator("win10", args=["--encrypt-share", "docs"])
    proc = run_smbclient(emu, smbclient_conf, protocol=0x0210, commands="ls")
    assert proc.returncode != 0 and "NT_STATUS_ACCESS_DENIED" in proc.stdout, proc.stdout
    assert emu.wait_events(1, protocol="smb", outcome="admitted")  # the session was fine
    # smbclient's defaults follow SMB2_SHAREFLAG_ENCRYPT_DATA and encrypt on that tree.
    _file_round_trip(emu, smbclient_conf, tmp_path, protocol=0x0311)
