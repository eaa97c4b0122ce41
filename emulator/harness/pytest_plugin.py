"""pytest plugin (entry point `pytest11`): emulated Windows hosts as fixtures.

    @pytest.mark.edition("xp-home")
    def test_sixth_session_is_refused(emulated_host):
        ...connect five clients to emulated_host.smb_port...

    def test_two_hosts(emulated_host_factory):
        pro = emulated_host_factory(edition="xp-pro", users={"alice": "pw"})

Each host is a child process on ephemeral ports (safe under pytest-xdist), with a
virtual clock (`host.advance(seconds)`). Teardown stops it and removes its temporary
directory; a traceback in its stderr fails the test. For pytest-twisted tests,
`host.deferred.<method>(...)` returns a Deferred instead of blocking the reactor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from emulator.core.editions import DEFAULT_EDITION
from emulator.harness.hosts import EmulatedHost

# With no @pytest.mark.edition, `emulated_host` plays this (the server's own default).
DEFAULT_FIXTURE_EDITION = DEFAULT_EDITION


class DeferredHost:
    """The host's methods run in the reactor's thread pool, returning Deferreds."""

    def __init__(self, host: EmulatedHost) -> None:
        self._host = host

    def __getattr__(self, name: str) -> Callable[..., Any]:
        from twisted.internet.threads import deferToThread

        method = getattr(self._host, name)
        return lambda *args, **kw: deferToThread(method, *args, **kw)


class PluginHost(EmulatedHost):
    @property
    def deferred(self) -> DeferredHost:
        return DeferredHost(self)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "edition(name): the Windows edition `emulated_host` plays "
        f"(default {DEFAULT_FIXTURE_EDITION}; see `smbrdp-emu editions`)")


def _close_checked(host: EmulatedHost) -> None:
    problems = host.close()
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def emulated_host_factory() -> Iterator[Callable[..., PluginHost]]:
    """Call it to get hosts: factory(edition=..., users={...}, shares={...}, **config)."""
    hosts: list[PluginHost] = []

    def factory(edition: str = DEFAULT_FIXTURE_EDITION, users: dict[str, str] | None = None,
                shares: dict[str, Any] | None = None, **config: Any) -> PluginHost:
        host = PluginHost(edition, users, shares, **config)
        hosts.append(host)
        return host

    yield factory
    for host in hosts:
        _close_checked(host)


@pytest.fixture
def emulated_host(request: pytest.FixtureRequest,
                  emulated_host_factory: Callable[..., PluginHost]) -> PluginHost:
    marker = request.node.get_closest_marker("edition")
    edition = marker.args[0] if marker else DEFAULT_FIXTURE_EDITION
    return emulated_host_factory(edition=edition)
