"""Service and machine faults of one host: the Server service restarted, the machine
rebooted, sessions expired, a share removed under its trees (issue 13).

Each is a function of a `emulator.server.Host`, which calls it from a method of the same
name; every timer is on the host's `OwnedClock`, so removing the host cancels a restart
that is still down. In a lab each host restarts alone: nothing here touches another host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from twisted.logger import Logger

from emulator.core.events import EMULATOR_PROVIDER, LEVEL_ERROR, LEVEL_INFORMATION

if TYPE_CHECKING:
    from emulator.server import Host

SCM_PROVIDER = "Service Control Manager"
SERVICE_STATE_EVENT_ID = 7036  # "The %1 service entered the %2 state."
EVENTLOG_PROVIDER = "EventLog"
EVENTLOG_STOPPED_EVENT_ID = 6006  # "The Event log service was stopped." (clean shutdown)
EVENTLOG_STARTED_EVENT_ID = 6005  # "The Event log service was started." (boot)
SMB_LISTENERS = ("smb", "netbios")
MAX_DOWNTIME = 3600.0
LISTEN_FAILED_EVENT_ID = 111  # the emulator's own: a port could not be taken back
log = Logger(namespace="faults")


def _service_event(host: Host, service: str, state: str) -> None:
    host.events.record(provider=SCM_PROVIDER, event_id=SERVICE_STATE_EVENT_ID,
                       level=LEVEL_INFORMATION,
                       message=f"The {service} service entered the {state} state.")


def _take_down(host: Host, names: tuple[str, ...] | None) -> dict[str, int]:
    """Stop the named listeners (None: all) and abort their live connections. Returns the
    port each listened on (the same port comes back)."""
    down = [lst for lst in host.listeners if names is None or lst.name in names]
    ports = {lst.name: lst.port.getHost().port for lst in down}
    host.listeners = [lst for lst in host.listeners if lst not in down]
    factories = [f for f in host.factories if names is None or f.name in names]
    host.factories = [f for f in host.factories if f not in factories]
    for lst in down:
        defer.maybeDeferred(lst.port.stopListening)
    for factory in factories:
        factory.drop_all()
    return ports


def restart(host: Host, downtime: float) -> dict[str, Any]:
    """The Server service restarts: every SMB connection reset (its sessions end), the SMB
    ports (445 and NetBIOS 139) refuse connections for ``downtime`` seconds, then listen
    again on the same ports with the same ServerGuid."""
    if host.restarting is not None:
        raise ValueError("the host is already down for a restart or reboot")
    _service_event(host, "Server", "stopped")
    ports = _take_down(host, SMB_LISTENERS)
    _schedule(host, downtime, _smb_back, ports)
    return {"restart": "Server", "downtime": downtime, "ports": ports}


def _schedule(host: Host, downtime: float, back: Any, ports: dict[str, int]) -> None:
    host.restarting = host.clock.callLater(downtime, back, host, ports)
    host.back_up = lambda: back(host, ports)


def come_back(host: Host) -> None:
    """End a downtime now (the host is reset for the next test)."""
    timer, back = host.restarting, host.back_up
    if timer is None or back is None:
        return
    if timer.active():
        timer.cancel()
    back()


def _smb_back(host: Host, ports: dict[str, int]) -> None:
    host.restarting = host.back_up = None
    if _listening(host, lambda: host.listen_smb(ports.get("smb"), ports.get("netbios"))):
        _service_event(host, "Server", "running")


def _listening(host: Host, listen: Any) -> bool:
    """Listen again; a port taken meanwhile is one event and one log line, not a traceback
    out of a timer (the host stays down on that port)."""
    from emulator.server import ListenError

    try:
        listen()
    except ListenError as exc:
        log.error("{host}: cannot listen again after the restart: {exc}", host=host.name,
                  exc=exc)
        host.events.record(provider=EMULATOR_PROVIDER, event_id=LISTEN_FAILED_EVENT_ID,
                           level=LEVEL_ERROR, message=f"Cannot listen again: {exc}")
        return False
    return True


def reboot(host: Host, downtime: float) -> dict[str, Any]:
    """The machine restarts: every session ended (Remote Desktop ones too), every listener
    down for ``downtime`` seconds, then back on the same ports with a new boot time
    (ServerStartTime, uptime)."""
    if host.restarting is not None:
        raise ValueError("the host is already down for a restart or reboot")
    _service_event(host, "Server", "stopped")
    for session in host.engine.sessions():
        host.engine.end(session.id, "shutdown")
    host.events.record(provider=EVENTLOG_PROVIDER, event_id=EVENTLOG_STOPPED_EVENT_ID,
                       level=LEVEL_INFORMATION, message="The Event log service was stopped.")
    ports = _take_down(host, None)
    _schedule(host, downtime, _boot, ports)
    return {"reboot": True, "downtime": downtime, "ports": ports}


def _boot(host: Host, ports: dict[str, int]) -> None:
    host.restarting = host.back_up = None
    host.started = host.clock.seconds()
    host.events.record(provider=EVENTLOG_PROVIDER, event_id=EVENTLOG_STARTED_EVENT_ID,
                       level=LEVEL_INFORMATION, message="The Event log service was started.")
    if _listening(host, lambda: host.start(ports)):
        _service_event(host, "Server", "running")


def expire_sessions(host: Host, user: str | None = None) -> list[int]:
    """Mark the host's valid SMB2 sessions (of ``user``, case-insensitively; None: all) as
    expired: their next request gets STATUS_NETWORK_SESSION_EXPIRED until the client
    re-authenticates on the same SessionId. Returns the engine's ids of those sessions."""
    smb = host.smb
    if smb is None:
        return []
    wanted = user.lower() if user else None
    expired = []
    for session, _connection in list(smb.session_ids.live.values()):
        if not session.valid or session.slot is None:
            continue
        if wanted is not None and (session.slot.user or "").lower() != wanted:
            continue
        session.expired = True
        expired.append(session.slot.id)
    return expired


def remove_share(host: Host, name: str) -> bool:
    """`net share NAME /delete`: new tree connects get STATUS_BAD_NETWORK_NAME, and trees
    already connected to it get STATUS_NETWORK_NAME_DELETED on their next request (the
    connection checks its share is still the host's)."""
    found = [n for n in host.share_dirs if n.lower() == name.lower()]
    for existing in found:
        del host.share_dirs[existing]
    return host.shares.pop(name.lower(), None) is not None or bool(found)


def check_downtime(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("downtime: a number of seconds")
    if not 0 <= value <= MAX_DOWNTIME:
        raise ValueError(f"downtime: {value} is outside 0..{MAX_DOWNTIME:g}")
    return float(value)
