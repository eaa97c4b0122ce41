"""pytest plugin (entry point `pytest11`): emulated Windows hosts as fixtures.

    @pytest.mark.edition("xp-home")
    def test_sixth_session_is_refused(emulated_host):
        ...connect five clients to emulated_host.smb_port...

    def test_two_hosts(emulated_host_factory):
        pro = emulated_host_factory(edition="xp-pro", users={"alice": "pw"})

Every host is a new host in one lab process per pytest process (so one per pytest-xdist
worker), started on first use and stopped when the run ends: adding and removing a host
is one admin call each, and every host starts empty (sessions, users, events, limits,
clock). Hosts are on ephemeral ports, with a virtual clock (`host.advance(seconds)`).
Teardown removes the host and its temporary directory; a traceback the lab wrote while
the host lived fails the test. `@pytest.mark.own_process` (or the factory's
``own_process=True``) gives a test a host in a process of its own instead. For
pytest-twisted tests, `host.deferred.<method>(...)` returns a Deferred instead of
blocking the reactor.
"""

from __future__ import annotations

import os

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from emulator.core.editions import DEFAULT_EDITION
from emulator.harness.hosts import EmulatedHost, HostMethods, LabHost, LabProcess

# With no @pytest.mark.edition, `emulated_host` plays this (the server's own default).
DEFAULT_FIXTURE_EDITION = DEFAULT_EDITION


class DeferredHost:
    """The host's methods run in the reactor's thread pool, returning Deferreds."""

    def __init__(self, host: HostMethods) -> None:
        self._host = host

    def __getattr__(self, name: str) -> Callable[..., Any]:
        from twisted.internet.threads import deferToThread

        method = getattr(self._host, name)
        return lambda *args, **kw: deferToThread(method, *args, **kw)


class PluginHost(EmulatedHost):
    """A host in a process of its own (``own_process``)."""

    @property
    def deferred(self) -> DeferredHost:
        return DeferredHost(self)


class PluginLabHost(LabHost):
    """A host in this pytest process's lab."""

    @property
    def deferred(self) -> DeferredHost:
        return DeferredHost(self)


_labs: dict[int, LabProcess] = {}  # by pid: a forked worker starts its own


def worker_lab() -> LabProcess:
    """This process's lab, started on first use (and again if it died)."""
    lab = _labs.get(os.getpid())
    if lab is None or not lab.alive():
        lab = _labs[os.getpid()] = LabProcess()
    return lab


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "edition(name): the Windows edition `emulated_host` plays "
        f"(default {DEFAULT_FIXTURE_EDITION}; see `smbrdp-emu editions`)")
    config.addinivalue_line(
        "markers", "own_process: this test's emulated hosts run in processes of their own, "
        "not in the worker's shared lab")


def pytest_unconfigure(config: pytest.Config) -> None:
    lab = _labs.pop(os.getpid(), None)
    if lab is not None:
        lab.stop()


def _close_checked(host: PluginHost | PluginLabHost) -> None:
    problems = host.close()
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def emulated_host_factory(request: pytest.FixtureRequest,
                          ) -> Iterator[Callable[..., PluginHost | PluginLabHost]]:
    """Call it to get hosts: factory(edition=..., users={...}, shares={...},
    own_process=False, **config)."""
    hosts: list[PluginHost | PluginLabHost] = []
    marked = request.node.get_closest_marker("own_process") is not None

    def factory(edition: str = DEFAULT_FIXTURE_EDITION, users: dict[str, str] | None = None,
                shares: dict[str, Any] | None = None, *, own_process: bool = False,
                **config: Any) -> PluginHost | PluginLabHost:
        host: PluginHost | PluginLabHost
        if own_process or marked:
            host = PluginHost(edition, users, shares, **config)
        else:
            host = PluginLabHost(worker_lab(), edition, users, shares, **config)
        hosts.append(host)
        return host

    yield factory
    for host in hosts:
        _close_checked(host)


@pytest.fixture
def emulated_host(request: pytest.FixtureRequest,
                  emulated_host_factory: Callable[..., PluginHost | PluginLabHost],
                  ) -> PluginHost | PluginLabHost:
    marker = request.node.get_closest_marker("edition")
    edition = marker.args[0] if marker else DEFAULT_FIXTURE_EDITION
    return emulated_host_factory(edition=edition)
