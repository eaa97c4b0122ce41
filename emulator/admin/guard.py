"""Two checks the admin API makes before it believes a request: the Host it names (DNS
rebinding) and how often its client address has offered a wrong token (guessing).

Both are plain objects over strings and a `now()` function: no twisted.web, no timers.
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from emulator.config import is_loopback

# host, [v6], either with an optional :port (RFC 9110 7.2 / RFC 3986 authority)
_HOST = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[^:\[\]@/\s]+))(?::[0-9]{0,5})?\Z")


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_localhost_name(name: str) -> bool:
    return name == "localhost" or name.endswith(".localhost")


class HostCheck:
    """Which Host headers name this listener.

    A browser tricked by DNS rebinding sends the attacker's name as Host, so a name is
    accepted only when it is the listen address itself, `localhost` (or `*.localhost`) on
    a loopback or wildcard listener, or one the operator listed (`admin_hosts`). An IP
    literal cannot be rebound: it must be the listen address, any loopback address on a
    loopback listener (an `ssh -L` tunnel), or any address on a wildcard listener. The
    port is not compared: a tunnel or a port forward changes it.
    """

    def __init__(self, listen: str, extra: Iterable[str] = ()) -> None:
        text = listen.strip().strip("[]").lower().rstrip(".")
        self.listen_ip = _address(text)
        self.listen_name = text if self.listen_ip is None else None
        self.wildcard = text == "" or (self.listen_ip is not None and
                                       self.listen_ip.is_unspecified)
        self.loopback = is_loopback(listen)
        self.extra = {name.strip().lower().rstrip(".") for name in extra}

    def allows(self, header: str | None) -> bool:
        if not header:
            return False  # HTTP/1.1 requires Host (RFC 9112 3.2); HTTP/1.0 clients send it too
        match = _HOST.match(header.strip())
        if match is None:
            return False
        if match["v6"] is not None:
            ip = _address(match["v6"])
            return ip is not None and ip.version == 6 and self._allows_ip(ip)
        name = match["name"].lower().rstrip(".")
        ip = _address(name) if name[:1].isdigit() else None
        if ip is not None:
            return self._allows_ip(ip)
        if name in self.extra or name == self.listen_name:
            return True
        return _is_localhost_name(name) and (self.loopback or self.wildcard)

    def _allows_ip(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return (self.wildcard or ip == self.listen_ip
                or (self.loopback and ip.is_loopback))


@dataclass
class _Failures:
    count: int = 0
    until: float = 0.0  # refused until then
    last: float = 0.0  # the latest failure


class AuthThrottle:
    """Exponential back-off of wrong tokens, per client address.

    The first `free` failures cost nothing (a typo, a stale token); each one after blocks
    the address for `backoff` seconds, doubling up to `backoff_max`. While blocked every
    credential from that address is refused unchecked (429), so the answer says nothing
    about a guess. A success forgets the address's failures; so does `backoff_max` seconds
    of quiet after a block. At most `max_clients` addresses are remembered (the one idle
    longest is forgotten first), so many addresses cannot grow the table.
    """

    def __init__(self, now: Callable[[], float], free: int = 5, backoff: float = 1.0,
                 backoff_max: float = 60.0, max_clients: int = 4096) -> None:
        self.now = now
        self.free = free
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.max_clients = max_clients
        self._clients: OrderedDict[str, _Failures] = OrderedDict()

    def _record(self, client: str) -> _Failures | None:
        record = self._clients.get(client)
        if record is not None and self.now() >= max(record.until, record.last) + self.backoff_max:
            del self._clients[client]  # quiet long enough: forgiven
            return None
        return record

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may offer a token again (0: now)."""
        record = self._record(client)
        return max(0.0, record.until - self.now()) if record is not None else 0.0

    def failed(self, client: str) -> None:
        record = self._record(client) or _Failures()
        now = self.now()
        record.count += 1
        record.last = now
        beyond = record.count - self.free
        if beyond > 0:
            # min() first: 2 ** a large count is a big int, never a float overflow.
            record.until = now + min(self.backoff * 2 ** min(beyond - 1, 64), self.backoff_max)
        self._clients[client] = record
        self._clients.move_to_end(client)
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)

    def __len__(self) -> int:
        return len(self._clients)
