"""A lab in one reactor: hosts are values; removing one leaves no timer, slot or listener,
and touches no other host."""

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from emulator.config import ConfigError, build_config
from emulator.core.clock import OwnedClock
from emulator.lab import Lab, host_values


def make_lab():
    reactor = MemoryReactorClock()
    lab = Lab(reactor, defaults={"smb_port": 0, "netbios_port": 0, "rdp_port": 0,
                                 "nbns_port": -1})
    return reactor, lab


def add(lab, name, **keys):
    return lab.add(lab.config_for(host_values({"name": name, **keys}, f"host {name}: ",
                                              need_address=False)))


def test_removing_a_host_cancels_its_timers_and_frees_its_ports_and_no_other_hosts():
    reactor, lab = make_lab()
    one, two = add(lab, "one", edition="xp-home"), add(lab, "two", edition="xp-home")
    assert one.engine is not two.engine and one.clock is not two.clock
    assert one.events is not two.events and one.shares is not two.shares
    for host in (one, two):
        assert host.engine.request_session("smb", "127.0.0.1", connection=object()).admitted
    assert len(reactor.getDelayedCalls()) == 2  # a setup timer each
    assert len(reactor.tcpServers) == 4  # SMB and NetBIOS each; xp-home has no RDP
    lab.remove("ONE")
    assert list(lab.hosts) == ["TWO"]
    assert len(reactor.getDelayedCalls()) == 1
    assert one.clock.pending == 0 and two.clock.pending == 1
    assert two.engine.counted("smb") == 1  # the other host's slot is untouched


def test_one_host_filling_up_refuses_nothing_on_another():
    _, lab = make_lab()
    full, other = add(lab, "full", smb_limit=1), add(lab, "other", smb_limit=1)
    assert full.engine.request_session("smb", "127.0.0.1").admitted
    assert not full.engine.request_session("smb", "127.0.0.1").admitted
    assert other.engine.request_session("smb", "127.0.0.1").admitted


def test_a_name_is_one_host_and_a_bad_table_names_its_key():
    _, lab = make_lab()
    add(lab, "pc1")
    with pytest.raises(ConfigError, match="host PC1: name: already in this lab"):
        add(lab, "Pc1")
    with pytest.raises(ConfigError, match="host x: address: 10.1.2.3 is outside"):
        add(lab, "x", address="10.1.2.3")
    with pytest.raises(ConfigError, match="host x: host: a host table says address"):
        add(lab, "x", host="127.0.0.5")
    with pytest.raises(ConfigError, match="name: 'much-too-long-name' is not a NetBIOS"):
        add(lab, "much-too-long-name")
    assert list(lab.hosts) == ["PC1"]


def test_the_owned_clock_forgets_what_ran_or_was_cancelled():
    base = Clock()
    clock = OwnedClock(base)
    ran = []
    clock.callLater(1, ran.append, 1)
    for _ in range(200):
        clock.callLater(5, ran.append, 2).cancel()
    assert clock.pending == 1 and len(clock._calls) <= 200
    base.advance(1)
    assert ran == [1] and clock.pending == 0
    clock.callLater(3, ran.append, 3)
    clock.cancel_all()
    base.advance(10)
    assert ran == [1] and base.getDelayedCalls() == []


def test_lab_defaults_merge_with_a_hosts_own_users():
    _, lab = make_lab()
    lab.defaults["users"] = {"user": "password"}
    config = lab.config_for(host_values({"name": "a", "users": {"alice": "pw"}}, "",
                                        need_address=False))
    assert config.users == {"user": "password", "alice": "pw"}
    assert build_config({}, {}).users == {}


def test_each_host_numbers_its_own_rpc_association_groups():
    from protocols.dcerpc.pipes import PipeService

    _, lab = make_lab()
    one, two = add(lab, "one"), add(lab, "two")
    first, second = PipeService(None), PipeService(None)
    assert next(first.assoc_groups) == next(second.assoc_groups)  # not one shared counter
    assert one.smb_config().pipes.assoc_groups is not two.smb_config().pipes.assoc_groups


def test_lab_hosts_share_one_rdp_key_and_each_gets_a_certificate_of_its_name(tmp_path,
                                                                              monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    _reactor, lab = make_lab()
    hosts = [add(lab, f"labpc{i}", edition="win10") for i in range(3)]
    assert len(lab.certificates) == 1  # one key for the lab, not one per host
    # Nothing is signed or built for a host nobody reached over RDP.
    assert all(h.rdp_context._cert is None and h.rdp_context._context is None for h in hosts)
    certs = [h.rdp_context.certificate for h in hosts]
    assert [c.certificate.subject.rfc4514_string() for c in certs] == [
        "CN=LABPC0", "CN=LABPC1", "CN=LABPC2"]
    assert len({c.key_pem for c in certs}) == 1 and len({c.cert_pem for c in certs}) == 3
    assert hosts[0].rdp_context.getContext() is hosts[0].rdp_context.getContext()
