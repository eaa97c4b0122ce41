"""What every part of one RDP connection shares (the mixins in ``activation.py`` and
``ending.py`` and the surface in ``connection.py``): declarations only."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from protocols.rdp import gcc, output, pdu
from protocols.rdp.state import ConnectionStateMachine, State, TimerOwner, Timers

if TYPE_CHECKING:
    from protocols.rdp.connection import RDPServerConfig
    from protocols.rdp.ending import CloseConnection, StartTLS
    from protocols.rdp.security import StandardSecurity


class ConnectionBase:
    config: RDPServerConfig
    address: str
    log: Callable[[str], None]
    on_output: Callable[[], None] | None
    _out: output.Output
    _machine: ConnectionStateMachine
    _events: list[StartTLS | CloseConnection]
    _closing: CloseConnection | None
    _timers: Timers
    _timer_owner: TimerOwner
    client: gcc.ClientData | None
    attached: bool
    user_id: int
    _nla_credentials: tuple[str, str, str] | None
    _security: StandardSecurity | None
    # activation
    info: pdu.ClientInfo | None
    session: Any
    _session_live: bool
    user: str
    desktop: tuple[int, int]
    bpp: int
    _screen: tuple[Any, ...] | None
    reactivating: bool  # a Deactivation-Reactivation under way (faulting.py)

    @property
    def state(self) -> State:
        return self._machine.state

    @property
    def demand_sent(self) -> bool:
        return self.info is not None  # the Demand Active answers the Client Info

    @property
    def close_requested(self) -> bool:
        return self._closing is not None

    # Provided by the mixins, called across them.
    def _close(self, why: str, quiet: bool = False, mode: str = "graceful") -> None:
        raise NotImplementedError

    def _teardown(self, errinfo: int | None, dpum_reason: int,
                  logon_error: tuple[int, int] | None) -> None:
        raise NotImplementedError

    def _engine_closes(self, reason: str) -> None:
        raise NotImplementedError

    def _notify(self) -> None:
        raise NotImplementedError

    def _draw(self) -> None:
        raise NotImplementedError

    def server_capability_sets(self) -> list[bytes]:
        raise NotImplementedError

    def _struck(self, point: str) -> bool:
        raise NotImplementedError

    def _timers_after_close(self, mode: str) -> None:
        raise NotImplementedError

    def _reactivated(self) -> None:
        raise NotImplementedError

    def _reconnect_target(self, info: pdu.ClientInfo) -> Any:
        raise NotImplementedError

    def _send_reconnect_cookie(self) -> None:
        raise NotImplementedError

    # interaction.py's, and what it calls of activation.py's.
    def _interaction_ends(self) -> None:
        raise NotImplementedError

    def _touch(self) -> None:
        raise NotImplementedError

    def _show(self, text: str | None) -> None:
        raise NotImplementedError

    def _admit(self, client_name: str, target: Any = None) -> None:
        raise NotImplementedError

    def _start_session(self) -> None:
        raise NotImplementedError
