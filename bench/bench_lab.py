"""A lab of many hosts in one process: start-up, per-host memory, and a long add/remove loop.

Starts `smbrdp-emu lab` with --hosts hosts (mixed editions, one 127.0.x.y address each),
reports the time to its `ready lab` line, asks --check of them for their NetBIOS names
(impacket, on each host's nbns port) and for an SMB logon, measures the process's PSS
against a lab of no hosts (per idle host), then adds and removes --cycles hosts through
the admin API and reports PSS, descriptors, pending timers and hosts still closing before
and after. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from impacket import nmb
from impacket.smbconnection import SMBConnection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from emulator.harness.hosts import KeepAliveClient, ServerProcess  # noqa: E402

EDITIONS = ["xp-pro", "xp-home", "win10", "whs", "server-2003", "win7", "server-2022"]
TOKEN = "bench"


def pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return -1


def lab_file(path: Path, hosts: int) -> None:
    lines = ["smb_port = 0", "netbios_port = 0", "rdp_port = 0", "nbns_port = 0",
             f'admin_token = "{TOKEN}"', ""]
    for i in range(hosts):
        address = f"127.0.{1 + i // 250}.{1 + i % 250}"
        lines += ["[[host]]", f'name = "LAB{i:04d}"', f'address = "{address}"',
                  f'edition = "{EDITIONS[i % len(EDITIONS)]}"', ""]
    path.write_text("\n".join(lines))


def start(work: Path, hosts: int) -> tuple[ServerProcess, float]:
    lab_file(work / f"lab{hosts}.toml", hosts)
    t0 = time.perf_counter()
    srv = ServerProcess(["lab", str(work / f"lab{hosts}.toml"), "--admin-port", "0"],
                        stderr_path=work / f"stderr{hosts}.log", timeout=120)
    return srv, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--check", type=int, default=20, help="hosts asked by clients")
    parser.add_argument("--cycles", type=int, default=1000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "empty.toml").write_text(f'admin_token = "{TOKEN}"\n')
        empty = ServerProcess(["lab", str(work / "empty.toml"), "--admin-port", "0"],
                              stderr_path=work / "empty.log")
        base = pss_kb(empty.pid)
        empty.stop()
        srv, seconds = start(work, args.hosts)
        try:
            print(f"lab of {args.hosts} hosts: ready in {seconds:.2f} s (including the "
                  "interpreter's start)")
            lines = [dict(w.split("=", 1) for w in line.split()[1:]) for line in srv.host_lines]
            answered = 0
            smbclient = shutil.which("smbclient")
            for row in lines[:args.check]:
                host, port = row["nbns"].rsplit(":", 1)
                names = nmb.NetBIOS(servport=int(port)).getnodestatus("*", host)
                assert names[0]["NAME"].strip().decode() == row["host"]
                smb_host, smb_port = row["smb"].rsplit(":", 1)
                conn = SMBConnection(smb_host, smb_host, sess_port=int(smb_port), timeout=10)
                conn.login("user", "password")
                conn.logoff()
                if smbclient:  # and Samba's client lists the host's shares
                    listed = subprocess.run(
                        [smbclient, "-L", smb_host, "-p", smb_port, "-U", "user%password",
                         "--option=client min protocol=NT1"], capture_output=True, text=True,
                        timeout=60, stdin=subprocess.DEVNULL)
                    assert listed.returncode == 0 and "IPC$" in listed.stdout, (
                        row["host"], listed.stdout + listed.stderr)
                answered += 1
            print(f"{answered} of {args.check} hosts asked: node status names and an SMB "
                  "logon (impacket" + (", and smbclient -L" if smbclient else "; no smbclient "
                                       "installed") + ") answered")
            full = pss_kb(srv.pid)
            print(f"PSS: {full} kB with {args.hosts} hosts, {base} kB with none: "
                  f"{(full - base) / max(1, args.hosts):.0f} kB per idle host")
            admin = KeepAliveClient(srv.listeners["admin"], TOKEN)
            before = admin.call("GET", "/api/lab")
            pss_before = pss_kb(srv.pid)
            t0 = time.perf_counter()
            for i in range(args.cycles):
                admin.call("POST", "/api/hosts", {"name": f"CYC{i % 10000:05d}",
                                                  "edition": EDITIONS[i % len(EDITIONS)],
                                                  "smb_port": 0, "netbios_port": 0,
                                                  "rdp_port": 0, "nbns_port": 0})
                admin.call("DELETE", f"/api/hosts/CYC{i % 10000:05d}")
            elapsed = time.perf_counter() - t0
            after = admin.call("GET", "/api/lab")
            pss_after = pss_kb(srv.pid)
            print(f"{args.cycles} hosts added and removed in {elapsed:.1f} s "
                  f"({elapsed / max(1, args.cycles) * 1000:.1f} ms each)")
            for key in ("hosts", "closing", "delayed_calls", "fds"):
                print(f"  {key}: {before[key]} before, {after[key]} after")
            print(f"  PSS: {pss_before} kB before, {pss_after} kB after")
            admin.close()
        finally:
            problems = srv.stop()
        if problems:
            print("problems:", *problems, sep="\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
