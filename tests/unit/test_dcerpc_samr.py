"""samr (MS-SAMR): conversations Samba's rpcclient had with the emulator (its requests
recorded as hex) answered byte for byte, and each call's access, handle and bad-input rules."""

from __future__ import annotations

import random
import uuid

import pytest
from impacket.dcerpc.v5 import lsat, ndr, samr
from impacket.dcerpc.v5.dtypes import MAXIMUM_ALLOWED, ULONG

from protocols.dcerpc import accounts
from protocols.dcerpc.pipes import NCA_S_OP_RNG_ERROR, RPC_X_BAD_STUB_DATA
from protocols.dcerpc.samr import SamrCloseHandle
from protocols.dcerpc.samr_info import (
    STATUS_ACCESS_DENIED,
    STATUS_INSUFFICIENT_RESOURCES,
    STATUS_INVALID_HANDLE,
    STATUS_INVALID_INFO_CLASS,
    STATUS_MORE_ENTRIES,
    STATUS_NO_SUCH_DOMAIN,
    STATUS_NO_SUCH_USER,
    STATUS_NONE_MAPPED,
    STATUS_SOME_NOT_MAPPED,
    SamrQueryInformationDomainResponse,
    filetime,
)

from .dcerpc_helpers import (
    ADMIN,
    ALICE,
    ANONYMOUS,
    NOW,
    Client,
    FakeView,
    fault_status,
    reassemble,
)

SID = "S-1-5-21-1111111111-2222222222-3333333333"

# Recorded from `rpcclient -c 'queryuser 1000'` (Samba 4) against the emulator: the request
# stubs in order, and the handles it was given (server, domain, user).
SERVER = bytes.fromhex("b47f5ecb91074fe393e5319813b531d4")
DOMAIN = bytes.fromhex("a0655258b5eb4b768248bdcb01c88432")
USER = bytes.fromhex("9779439ef9f34117bccb0dc5c41c423f")
QUERYUSER_CONVERSATION = [
    (64, "000002000c000000000000000c0000005c005c003100320037002e0030002e0030002e003100000000"
         "00000201000000010000000200000000000000"),  # SamrConnect5 \\127.0.0.1
    (6, "00000000" + SERVER.hex() + "00000000ffff0000"),  # SamrEnumerateDomainsInSamServer
    (5, "00000000" + SERVER.hex() + "100010000000020008000000000000000800000045004d0055004c0041"
        "0054004f005200"),  # SamrLookupDomainInSamServer "EMULATOR"
    (7, "00000000" + SERVER.hex() + "0000000204000000010400000000000515000000c7353a428e6b7484"
        "55a1aec6"),  # SamrOpenDomain MAXIMUM_ALLOWED, the machine SID
    (34, "00000000" + DOMAIN.hex() + "00000002e8030000"),  # SamrOpenUser 1000
    (36, "00000000" + USER.hex() + "1500"),  # SamrQueryInformationUser UserAllInformation
    (1, "00000000" + USER.hex()),  # SamrCloseHandle x3
    (1, "00000000" + DOMAIN.hex()),
    (1, "00000000" + SERVER.hex()),
]
# From `rpcclient -c enumdomusers` (after the same connect/lookup/open) and
# `rpcclient -c 'querydominfo; getdompwinfo'`.
ENUMDOMUSERS = "00000000" + DOMAIN.hex() + "0000000010000000ffff0000"
QUERYDOMINFO_2 = "00000000" + DOMAIN.hex() + "0200"
GETDOMPWINFO = "000002000000000000000000"

# What the emulator answers (FakeView; impacket's referent ids seeded): regression vectors,
# each parsed back below with impacket's response class.
ENUMERATE_DOMAINS_HEX = (
    "0200000080350000020000001bf70000020000000000000010001000fc020000000000000e000e00"
    "7685000008000000000000000800000045004d0055004c00410054004f0052000700000000000000"
    "070000004200750069006c00740069006e00bfbf0200000000000000")
LOOKUP_DOMAIN_HEX = (
    "8035000004000000010400000000000515000000c7353a428e6b748455a1aec600000000")
QUERY_USER_ALL_HEX = (
    "1bf700001500bdbd008458aab17adc0100000000000000000000000000000000ffffffffffffff7f"
    "0000000000000000ffffffffffffff7f0a000a008035000000000000fc0200000000000076850000"
    "000000006abc00000000000043090000000000007428000000000000bce900000000000081fc0000"
    "000000002c3d0000000000005304000000000000000000000000000000000000000000000dce0000"
    "0000000000000000e80300000102000010020000ffff0f0000000000000000000000030000000000"
    "0001000005000000000000000500000061006c00690063006500abab000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000")
ENUMERATE_USERS_HEX = (
    "0400000080350000040000001bf7000004000000f40100001a001a00fc020000f50100000a000a00"
    "76850000e80300000a000a006abc0000e90300000a000a00430900000d000000000000000d000000"
    "410064006d0069006e006900730074007200610074006f007200abab050000000000000005000000"
    "47007500650073007400abab05000000000000000500000061006c00690063006500abab05000000"
    "0000000005000000610064006d0069006e00bfbf0400000000000000")
QUERY_DOMAIN_GENERAL_HEX = (
    "1bf700000200bdbd0000000000000080000000008035000010001000fc0200000000000076850000"
    "01000000000000000100000003000000010000000400000001000000000000000000000000000000"
    "0000000008000000000000000800000045004d0055004c00410054004f0052000000000000000000"
    "0000000000000000")
ANSWERS = {
    64: "0100000001000000030000000000000000000000" + SERVER.hex() + "00000000",
    7: "00000000" + DOMAIN.hex() + "00000000",
    34: "00000000" + USER.hex() + "00000000",
    1: "00" * 24,
}


@pytest.fixture
def fixed(monkeypatch):
    monkeypatch.setattr(ndr, "random", random.Random(15))
    guids = iter([SERVER, DOMAIN, USER, *(bytes([n]) * 16 for n in range(1, 50))])
    monkeypatch.setattr(accounts.uuid, "uuid4", lambda: uuid.UUID(bytes=next(guids)))


def client(caller=ALICE, view=None, pipe="samr"):
    return Client(pipe, samr.MSRPC_UUID_SAMR, view or FakeView(machine_sid=SID), caller)


def stub(c, opnum, data):
    ndr.random.seed(15)
    return reassemble(c.raw(None, opnum=opnum, stub=bytes.fromhex(data)))


def test_rpcclient_queryuser_conversation_byte_for_byte(fixed):
    c = client()
    answers = [stub(c, opnum, data) for opnum, data in QUERYUSER_CONVERSATION]
    connect, domains, lookup, _open_domain, _open_user, user, *closes = answers
    assert connect.hex() == ANSWERS[64] and _open_domain.hex() == ANSWERS[7]
    assert _open_user.hex() == ANSWERS[34] and [x.hex() for x in closes] == [ANSWERS[1]] * 3
    assert domains.hex() == ENUMERATE_DOMAINS_HEX
    assert lookup.hex() == LOOKUP_DOMAIN_HEX
    assert user.hex() == QUERY_USER_ALL_HEX
    # ... and what they mean, read with impacket's response classes.
    parsed = samr.SamrEnumerateDomainsInSamServerResponse(domains)
    assert [d["Name"] for d in parsed["Buffer"]["Buffer"]] == ["EMULATOR", "Builtin"]
    assert samr.SamrLookupDomainInSamServerResponse(lookup)["DomainId"].formatCanonical() == SID
    info = samr.SamrQueryInformationUserResponse(user)["Buffer"]["All"]
    assert (info["UserName"], info["UserId"], info["PrimaryGroupId"]) == ("alice", 1000, 513)
    assert info["LogonCount"] == 3 and info["UserAccountControl"] == 0x210
    last = info["LastLogon"]["HighPart"] << 32 | info["LastLogon"]["LowPart"]
    assert last == filetime(NOW - 60)
    assert info["AccountExpires"]["HighPart"] == 0x7FFFFFFF


def test_rpcclient_enumdomusers_querydominfo_getdompwinfo(fixed):
    c = client()
    for opnum, data in QUERYUSER_CONVERSATION[:4]:
        stub(c, opnum, data)
    users = stub(c, 13, ENUMDOMUSERS)
    assert users.hex() == ENUMERATE_USERS_HEX
    parsed = samr.SamrEnumerateUsersInDomainResponse(users)
    assert [(u["RelativeId"], u["Name"]) for u in parsed["Buffer"]["Buffer"]] == [
        (500, "Administrator"), (501, "Guest"), (1000, "alice"), (1001, "admin")]
    assert parsed["CountReturned"] == 4 and parsed["ErrorCode"] == 0
    general = stub(c, 8, QUERYDOMINFO_2)
    assert general.hex() == QUERY_DOMAIN_GENERAL_HEX
    info = samr.SamrQueryInformationDomainResponse(general)["Buffer"]["General"]
    assert (info["DomainName"], info["UserCount"], info["GroupCount"], info["AliasCount"]) == (
        "EMULATOR", 4, 1, 0)
    assert info["UasCompatibilityRequired"] == 1
    pwinfo = stub(c, 56, GETDOMPWINFO)
    assert pwinfo.hex() == "0000bfbf0000000000000000"  # MinPasswordLength 0, properties 0
    parsed = samr.SamrGetDomainPasswordInformationResponse(pwinfo)
    assert parsed["PasswordInformation"]["PasswordProperties"] == 0


def test_the_zero_padded_domain_information_is_what_impacket_encodes_otherwise():
    """Both directions for the response class samr declares itself: the bytes impacket's
    class encodes but for the three padding bytes after UasCompatibilityRequired (zeros,
    where impacket writes 0xBF), and impacket's class reads them back."""
    encoded = []
    for response_class in (SamrQueryInformationDomainResponse,
                           samr.SamrQueryInformationDomainResponse):
        ndr.random.seed(1)  # referent ids are drawn as the classes are built
        response = response_class()
        response["Buffer"]["tag"] = 2
        general = response["Buffer"]["General"]
        for key in ("ForceLogoff", "DomainModifiedCount"):
            general[key]["LowPart"], general[key]["HighPart"] = 0, 0
        for key in ("OemInformation", "DomainName", "ReplicaSourceNodeName"):
            general[key] = "X"
        general["DomainServerState"], general["DomainServerRole"] = 1, 3
        general["UasCompatibilityRequired"] = 1
        general["UserCount"], general["GroupCount"], general["AliasCount"] = 4, 1, 0
        response["ErrorCode"] = 0
        encoded.append(bytes(response.getData()))
    ours, theirs = encoded
    differ = [i for i in range(len(ours)) if ours[i] != theirs[i]]
    assert len(ours) == len(theirs) and len(differ) == 3
    assert ours[differ[0] - 1:differ[-1] + 1] == b"\x01\0\0\0"
    assert theirs[differ[0] - 1:differ[-1] + 1] == b"\x01\xbf\xbf\xbf"
    parsed = samr.SamrQueryInformationDomainResponse(ours)["Buffer"]["General"]
    assert (parsed["UasCompatibilityRequired"], parsed["UserCount"]) == (1, 4)


# -- calls as impacket's helpers make them -----------------------------------------------------


def ulong(value):
    """As samr.hSamrLookupIdsInDomain adds each RID."""
    item = ULONG()
    item["Data"] = value
    return item


def connect(c, access=MAXIMUM_ALLOWED):
    call = samr.SamrConnect()
    call["ServerName"] = "\0\0\0\0"
    call["DesiredAccess"] = access
    return c.call(call, samr.SamrConnectResponse)


def open_domain(c, sid=SID, access=MAXIMUM_ALLOWED, caller_server=None):
    server = caller_server or connect(c)["ServerHandle"]
    call = samr.SamrOpenDomain()
    call["ServerHandle"] = server
    call["DesiredAccess"] = access
    call["DomainId"].fromCanonical(sid)
    return c.call(call, samr.SamrOpenDomainResponse)


def enumerate_users(c, domain, context=0):
    call = samr.SamrEnumerateUsersInDomain()
    call["DomainHandle"] = domain
    call["EnumerationContext"] = context
    call["UserAccountControl"] = 0
    call["PreferedMaximumLength"] = 0xFFFFFFFF
    return c.call(call, samr.SamrEnumerateUsersInDomainResponse)


def open_user(c, domain, rid, access=MAXIMUM_ALLOWED):
    call = samr.SamrOpenUser()
    call["DomainHandle"], call["DesiredAccess"], call["UserId"] = domain, access, rid
    return c.call(call, samr.SamrOpenUserResponse)


def query_user(c, user, level):
    call = samr.SamrQueryInformationUser2()
    call["UserHandle"], call["UserInformationClass"] = user, level
    return c.call(call, samr.SamrQueryInformationUser2Response)


def query_domain(c, domain, level):
    call = samr.SamrQueryInformationDomain2()
    call["DomainHandle"], call["DomainInformationClass"] = domain, level
    return c.call(call, samr.SamrQueryInformationDomain2Response)


def display(c, domain, level=1, index=0, count=100):
    call = samr.SamrQueryDisplayInformation3()
    call["DomainHandle"], call["DisplayInformationClass"] = domain, level
    call["Index"], call["EntryCount"], call["PreferredMaximumLength"] = index, count, 0xFFFF
    return c.call(call, samr.SamrQueryDisplayInformation3Response)


def test_samrdump_flow_with_impacket_helpers_classes():
    c = client()
    domain = open_domain(c)["DomainHandle"]
    users = enumerate_users(c, domain)
    assert [u["Name"] for u in users["Buffer"]["Buffer"]] == [
        "Administrator", "Guest", "alice", "admin"]
    again = enumerate_users(c, domain, users["EnumerationContext"])  # resumed past the end
    assert again["CountReturned"] == 0 and again["ErrorCode"] == 0
    user = open_user(c, domain, 500)["UserHandle"]
    info = query_user(c, user, 21)["Buffer"]["All"]
    assert info["UserName"] == "Administrator"
    assert info["UserAccountControl"] & 0x1  # disabled (FakeView's: a Vista+ edition)
    for level, arm, key in ((1, "General", "UserName"), (3, "Logon", "UserName"),
                            (5, "Account", "UserName"), (7, "AccountName", "UserName"),
                            (16, "Control", "UserAccountControl")):
        r = query_user(c, user, level)
        assert r["ErrorCode"] == 0 and r["Buffer"][arm][key] in ("Administrator", 0x211)
    for level in (0, 2, 19, 23, 99):
        r = query_user(c, user, level)
        assert r["ErrorCode"] == STATUS_INVALID_INFO_CLASS
        assert r.fields["Buffer"].fields["ReferentID"] == 0
    assert open_user(c, domain, 1999)["ErrorCode"] == STATUS_NO_SUCH_USER


def test_domain_information_every_class():
    c = client(view=FakeView(machine_sid=SID, lockout=(10, 10)))
    domain = open_domain(c)["DomainHandle"]
    lockout = query_domain(c, domain, 12)["Buffer"]["Lockout"]
    assert lockout["LockoutThreshold"] == 10
    assert lockout["LockoutDuration"] == -10 * 60 * 10_000_000
    password = query_domain(c, domain, 1)["Buffer"]["Password"]
    assert password["MinPasswordLength"] == 0
    age = password["MaxPasswordAge"]["HighPart"] << 32 | password["MaxPasswordAge"]["LowPart"]
    assert age == -42 * 86400 * 10_000_000  # HighPart is signed
    for level in (2, 3, 4, 5, 6, 7, 8, 9, 11, 13):
        assert query_domain(c, domain, level)["ErrorCode"] == 0, level
    assert query_domain(c, domain, 10)["ErrorCode"] == STATUS_INVALID_INFO_CLASS
    assert query_domain(c, domain, 0xFFFF)["ErrorCode"] == STATUS_INVALID_INFO_CLASS


def test_builtin_domain_aliases_and_membership():
    c = client()
    server = connect(c)["ServerHandle"]
    builtin = open_domain(c, "S-1-5-32", caller_server=server)["DomainHandle"]
    assert enumerate_users(c, builtin)["CountReturned"] == 0
    call = samr.SamrEnumerateAliasesInDomain()
    call["DomainHandle"], call["EnumerationContext"] = builtin, 0
    call["PreferedMaximumLength"] = 0xFFFFFFFF
    r = c.call(call, samr.SamrEnumerateAliasesInDomainResponse)
    assert [(a["RelativeId"], a["Name"]) for a in r["Buffer"]["Buffer"]] == [
        (544, "Administrators"), (545, "Users"), (546, "Guests"), (555, "Remote Desktop Users")]
    call = samr.SamrGetAliasMembership()
    call["DomainHandle"] = builtin
    for rid in (1001, 1000):
        info = samr.PSAMPR_SID_INFORMATION()
        info["SidPointer"].fromCanonical(f"{SID}-{rid}")
        call["SidArray"]["Sids"].append(info)
    call["SidArray"]["Count"] = 2
    r = c.call(call, samr.SamrGetAliasMembershipResponse)
    assert sorted(e["Data"] for e in r["Membership"]["Element"]) == [544, 545]
    call = samr.SamrOpenAlias()
    call["DomainHandle"], call["DesiredAccess"], call["AliasId"] = builtin, MAXIMUM_ALLOWED, 544
    alias = c.call(call, samr.SamrOpenAliasResponse)["AliasHandle"]
    call = samr.SamrGetMembersInAlias()
    call["AliasHandle"] = alias
    r = c.call(call, samr.SamrGetMembersInAliasResponse)
    assert [s["SidPointer"].formatCanonical() for s in r["Members"]["Sids"]] == [
        f"{SID}-500", f"{SID}-1001"]


def test_lookups_in_the_account_domain():
    c = client()
    domain = open_domain(c)["DomainHandle"]
    call = samr.SamrLookupNamesInDomain()
    call["DomainHandle"], call["Count"] = domain, 3
    for name in ("ALICE", "None", "nobody"):
        string = samr.RPC_UNICODE_STRING()
        string["Data"] = name
        call["Names"].append(string)
    r = c.call(call, samr.SamrLookupNamesInDomainResponse)
    assert [e["Data"] for e in r["RelativeIds"]["Element"]] == [1000, 513, 0]
    assert [e["Data"] for e in r["Use"]["Element"]] == [1, 2, 8]
    assert r["ErrorCode"] == STATUS_SOME_NOT_MAPPED
    call = samr.SamrLookupIdsInDomain()
    call["DomainHandle"], call["Count"] = domain, 2
    call["RelativeIds"].append(ulong(1001))
    call["RelativeIds"].append(ulong(1234))
    r = c.call(call, samr.SamrLookupIdsInDomainResponse)
    assert [n["Data"] for n in r["Names"]["Element"]] == ["admin", ""]
    assert r["ErrorCode"] == STATUS_SOME_NOT_MAPPED
    call["RelativeIds"] = [ulong(4444)]
    call["Count"] = 1
    assert c.call(call, samr.SamrLookupIdsInDomainResponse)["ErrorCode"] == STATUS_NONE_MAPPED
    call["RelativeIds"] = [ulong(rid) for rid in range(1001)]
    call["Count"] = 1001  # past MS-SAMR's 1000
    r = c.call(call, samr.SamrLookupIdsInDomainResponse)
    assert r["ErrorCode"] == STATUS_INSUFFICIENT_RESOURCES


def test_display_information_pages():
    c = client()
    domain = open_domain(c)["DomainHandle"]
    first = display(c, domain, count=3)
    assert first["ErrorCode"] == STATUS_MORE_ENTRIES and first["TotalReturned"] == 3
    rows = first["Buffer"]["UserInformation"]["Buffer"]
    assert [(r["Index"], r["Rid"], r["AccountName"]) for r in rows] == [
        (1, 500, "Administrator"), (2, 501, "Guest"), (3, 1000, "alice")]
    rest = display(c, domain, index=3)
    assert rest["ErrorCode"] == 0 and rest["TotalReturned"] == 1
    groups = display(c, domain, level=3)
    assert groups["Buffer"]["GroupInformation"]["Buffer"][0]["AccountName"] == "None"
    assert display(c, domain, level=4)["ErrorCode"] == STATUS_INVALID_INFO_CLASS


# -- who may ------------------------------------------------------------------------------------


def test_restrict_anonymous_sam_refuses_enumeration_to_null_sessions():
    restricted = client(ANONYMOUS, FakeView(machine_sid=SID, restrict_anonymous_sam=True))
    domain = open_domain(restricted)
    assert domain["ErrorCode"] == 0  # MAXIMUM_ALLOWED: what there is, without listing
    assert enumerate_users(restricted, domain["DomainHandle"])["ErrorCode"] == \
        STATUS_ACCESS_DENIED
    assert display(restricted, domain["DomainHandle"])["ErrorCode"] == STATUS_ACCESS_DENIED
    asked = open_domain(restricted, access=samr.DOMAIN_LIST_ACCOUNTS)
    assert asked["ErrorCode"] == STATUS_ACCESS_DENIED
    assert asked["DomainHandle"] == b"\0" * 20
    open_ = client(ANONYMOUS, FakeView(machine_sid=SID, restrict_anonymous_sam=False))
    domain = open_domain(open_)["DomainHandle"]
    assert enumerate_users(open_, domain)["CountReturned"] == 4


def test_rights_beyond_a_users_are_refused():
    c = client(ALICE)
    assert connect(c, samr.SAM_SERVER_CREATE_DOMAIN)["ErrorCode"] == STATUS_ACCESS_DENIED
    assert connect(client(ADMIN), samr.SAM_SERVER_CREATE_DOMAIN)["ErrorCode"] == 0
    domain = open_domain(c)["DomainHandle"]
    assert open_user(c, domain, 1000, samr.USER_WRITE_ACCOUNT)["ErrorCode"] == \
        STATUS_ACCESS_DENIED
    only_lookup = open_domain(c, access=samr.DOMAIN_LOOKUP)["DomainHandle"]
    assert enumerate_users(c, only_lookup)["ErrorCode"] == STATUS_ACCESS_DENIED
    assert query_domain(c, only_lookup, 2)["ErrorCode"] == STATUS_ACCESS_DENIED


# -- handles and bad input -----------------------------------------------------------------------


def test_bogus_wrong_kind_and_closed_handles_are_invalid_handle():
    c = client()
    bogus = b"\0\0\0\0" + b"\x42" * 16
    assert enumerate_users(c, bogus)["ErrorCode"] == STATUS_INVALID_HANDLE
    server = connect(c)["ServerHandle"]
    assert enumerate_users(c, server)["ErrorCode"] == STATUS_INVALID_HANDLE  # not a domain
    domain = open_domain(c, caller_server=server)["DomainHandle"]
    close = SamrCloseHandle()
    close["SamHandle"] = domain
    assert c.call(close, samr.SamrCloseHandleResponse)["ErrorCode"] == 0
    assert c.call(close, samr.SamrCloseHandleResponse)["ErrorCode"] == STATUS_INVALID_HANDLE
    assert enumerate_users(c, domain)["ErrorCode"] == STATUS_INVALID_HANDLE
    # impacket's own SamrCloseHandle sends four more bytes: read as surplus, still served.
    theirs = samr.SamrCloseHandle()
    theirs["SamHandle"], theirs["DesiredAccess"] = server, 0
    assert c.call(theirs, samr.SamrCloseHandleResponse)["ErrorCode"] == 0


def test_handles_go_with_the_pipe():
    c = client()
    open_domain(c)
    (service,) = [s for s in c.endpoint.association.services if s.name == "samr"]
    assert len(service.handles) == 2
    c.endpoint.close()
    assert len(service.handles) == 0


def test_unknown_domain_and_bad_stubs():
    c = client()
    assert open_domain(c, "S-1-5-21-9-9-9")["ErrorCode"] == STATUS_NO_SUCH_DOMAIN
    call = samr.SamrLookupDomainInSamServer()
    call["ServerHandle"], call["Name"] = connect(c)["ServerHandle"], "ELSEWHERE"
    r = c.call(call, samr.SamrLookupDomainInSamServerResponse)
    assert r["ErrorCode"] == STATUS_NO_SUCH_DOMAIN
    domain = open_domain(c)["DomainHandle"]
    data = samr.SamrEnumerateUsersInDomain()
    data["DomainHandle"], data["EnumerationContext"] = domain, 0
    data["UserAccountControl"], data["PreferedMaximumLength"] = 0, 1
    assert c.fault(None, opnum=13, stub=data.getData()[:-3]) == RPC_X_BAD_STUB_DATA
    lying = samr.SamrLookupIdsInDomain()
    lying["DomainHandle"], lying["Count"] = domain, 7
    lying["RelativeIds"].append(ulong(500))
    assert c.fault(lying) == RPC_X_BAD_STUB_DATA
    assert c.fault(None, opnum=12, stub=b"") == NCA_S_OP_RNG_ERROR  # SamrCreateUserInDomain
    assert enumerate_users(c, domain)["ErrorCode"] == 0  # still serving


def test_connect5_revision():
    c = client()
    call = samr.SamrConnect5()
    call["ServerName"] = "\\\\EMULATOR\0"
    call["DesiredAccess"] = MAXIMUM_ALLOWED
    call["InVersion"] = 1
    call["InRevisionInfo"]["tag"] = 1
    call["InRevisionInfo"]["V1"]["Revision"] = 3
    r = c.call(call, samr.SamrConnect5Response)
    assert r["ErrorCode"] == 0 and r["OutRevisionInfo"]["V1"]["Revision"] == 3
    call["InVersion"] = 2  # switch_is(InVersion): no such arm
    assert c.fault(call) == RPC_X_BAD_STUB_DATA


def test_lsarpc_and_samr_share_the_pipe():
    c = Client("lsarpc", samr.MSRPC_UUID_SAMR, FakeView(machine_sid=SID), ALICE)
    assert connect(c)["ErrorCode"] == 0


def test_every_truncation_and_a_lying_count_of_recorded_requests_is_answered_cleanly(fixed):
    """No prefix of a real client's request, nor one claiming 2^31 elements, costs more
    than a fault (rpc_x_bad_stub_data) or a status: never nca_s_fault_unspec (a bug)."""
    from .test_dcerpc_lsarpc import (
        RPCCLIENT_LOOKUP_NAMES,
        RPCCLIENT_LOOKUP_SIDS,
        RPCCLIENT_OPEN_POLICY,
    )

    samr_client = client()
    for opnum, data in QUERYUSER_CONVERSATION[:6]:
        stub(samr_client, opnum, data)  # handles exist, so deeper code paths run
    lsa_client = Client("lsarpc", lsat.MSRPC_UUID_LSAT, FakeView(machine_sid=SID), ALICE)
    requests = [(samr_client, opnum, bytes.fromhex(data))
                for opnum, data in (*QUERYUSER_CONVERSATION, (13, ENUMDOMUSERS))]
    requests += [(lsa_client, 6, RPCCLIENT_OPEN_POLICY), (lsa_client, 14, RPCCLIENT_LOOKUP_NAMES),
                 (lsa_client, 15, RPCCLIENT_LOOKUP_SIDS)]
    for c, opnum, data in requests:
        for cut in range(len(data)):
            for pdu in c.raw(None, opnum=opnum, stub=data[:cut]):
                assert pdu[2] == 2 or fault_status(pdu) == RPC_X_BAD_STUB_DATA, (opnum, cut)
    # LsarLookupNames' Names array: conformant-varying max count at offset 32 of the stub.
    lying = bytearray(RPCCLIENT_LOOKUP_NAMES)
    lying[32:36] = (0x7FFFFFFF).to_bytes(4, "little")
    (pdu,) = lsa_client.raw(None, opnum=14, stub=bytes(lying))
    assert pdu[2] == 2 or fault_status(pdu) == RPC_X_BAD_STUB_DATA
    assert not [line for line in samr_client.logs + lsa_client.logs if "failed" in line]
