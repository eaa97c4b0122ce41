"""Records what a real client sends to the emulator under Standard RDP Security, with a
fixed server key and server random, as tests/unit/data/rdpsec_<client>.json: the replay
test (tests/unit/test_rdp_security.py) feeds those bytes to a fresh core with the same key
and random. Regenerate (needs Xvfb on $DISPLAY):

    PYTHONPATH=$PWD python3 tests/unit/data/record_rdpsec_vector.py xfreerdp /sec:rdp
    PYTHONPATH=$PWD python3 tests/unit/data/record_rdpsec_vector.py rdesktop
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from twisted.internet import reactor

from emulator.core.editions import get_edition
from emulator.core.engine import SessionEngine
from emulator.core.events import EventLog
from protocols.rdp.connection import RDPServerConfig
from protocols.rdp.proprietary_cert import ServerKey
from protocols.rdp.security import StandardSecurityConfig
from protocols.rdp.twisted import RDPFactory, RDPProtocol

HERE = Path(__file__).parent
USER, PASSWORD = "alice", "Passw0rd!"
SERVER_RANDOM = bytes(range(0x40, 0x60))


def fixed_key() -> ServerKey:
    data = json.loads((HERE / "rdpsec_server_key.json").read_text())
    return ServerKey(int(data["n"], 16), int(data["e"], 16), int(data["d"], 16))


def main() -> None:
    client = sys.argv[1]
    key_file = HERE / "rdpsec_server_key.json"
    if not key_file.exists():
        key = ServerKey.generate()
        key_file.write_text(json.dumps({"n": f"{key.modulus:x}", "e": f"{key.public_exponent:x}",
                                        "d": f"{key.private_exponent:x}"}, indent=1) + "\n")
    edition = get_edition("xp-pro")
    engine = SessionEngine(edition, reactor, EventLog(reactor.seconds))
    config = RDPServerConfig(
        gate=engine, lookup_password={USER: PASSWORD}.get, clock=reactor,
        refusal_text=edition.rdp_refusal_text, security_layers=("rdp",),
        answers_negotiation=False, refusal_display_seconds=1,
        standard_security=StandardSecurityConfig(key=fixed_key(),
                                                 random=lambda n: SERVER_RANDOM[:n]))
    received: list[str] = []
    original = RDPProtocol.dataReceived

    def record(self: RDPProtocol, data: bytes) -> None:
        received.append(data.hex())
        original(self, data)

    RDPProtocol.dataReceived = record  # type: ignore[method-assign]
    port = reactor.listenTCP(0, RDPFactory(config, None), interface="127.0.0.1")
    target = f"127.0.0.1:{port.getHost().port}"
    if client == "xfreerdp":
        cmd = ["xfreerdp", f"/v:{target}", f"/u:{USER}", f"/p:{PASSWORD}", "/cert:ignore",
               "/size:800x600", *sys.argv[2:]]
    else:
        cmd = ["rdesktop", "-u", USER, "-p", PASSWORD, "-g", "800x600", *sys.argv[2:], target]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reactor.callLater(4, proc.terminate)
    reactor.callLater(5, reactor.stop)
    reactor.run()
    proc.wait(10)
    out = HERE / f"rdpsec_{client}.json"
    out.write_text(json.dumps({"client": " ".join(cmd[:1] + sys.argv[2:]),
                               "server_random": SERVER_RANDOM.hex(), "user": USER,
                               "password": PASSWORD, "received": received}, indent=1) + "\n")
    print(f"{out}: {len(received)} chunks")


if __name__ == "__main__":
    main()
