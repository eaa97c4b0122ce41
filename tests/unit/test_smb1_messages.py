"""The SMB1 codec against impacket's structures, both directions."""

import struct

import pytest
from impacket import smb as i

from protocols.smb1 import files, negotiate, sessions, trans
from protocols.smb1.messages import (
    HEADER, Header, andx, dos_error, join_chain, read_block, split_chain,
)


def test_header_both_ways():
    pkt = i.NewSMBPacket()
    pkt["Command"], pkt["Flags1"], pkt["Flags2"] = 0x73, 0x18, 0xC807
    pkt["Tid"], pkt["Pid"], pkt["Uid"], pkt["Mid"], pkt["PIDHigh"] = 7, 8, 0x800, 9, 3
    pkt["ErrorClass"], pkt["_reserved"], pkt["ErrorCode"] = 0x16, 0, 0xC000
    raw = pkt.getData()
    h = Header.parse(raw)
    assert (h.command, h.status, h.flags, h.flags2, h.tid, h.pid, h.uid, h.mid, h.pid_high) == (
        0x73, 0xC0000016, 0x18, 0xC807, 7, 8, 0x800, 9, 3)
    back = i.NewSMBPacket(data=h.pack())
    assert (back["Command"], back["ErrorClass"], back["ErrorCode"], back["Uid"], back["Mid"],
            back["Tid"], back["Flags2"]) == (0x73, 0x16, 0xC000, 0x800, 9, 7, 0xC807)
    assert HEADER.size == 32


def test_status_forms():
    h = Header(0x73, flags2=i.SMB.FLAGS2_NT_STATUS)
    h.set_status(0xC00000D0)
    assert h.status == 0xC00000D0
    dos = Header(0x73)
    dos.set_status(0xC00000D0)
    pkt = i.NewSMBPacket(data=dos.pack())
    assert (pkt["ErrorClass"], pkt["_reserved"], pkt["ErrorCode"]) == (1, 0, 71)
    assert dos_error(0x005B0002) == (2, 0x5B)  # an SMB error already in NT form
    assert dos_error(0xC0000001) == (2, 1)  # STATUS_UNSUCCESSFUL is not mistaken for one


def _chain_packet():
    pkt = i.NewSMBPacket()
    setup = i.SMBCommand(i.SMB.SMB_COM_SESSION_SETUP_ANDX)
    setup["Parameters"] = i.SMBSessionSetupAndX_Parameters()
    for k in ("MaxBuffer", "MaxMpxCount", "VCNumber", "SessionKey", "AnsiPwdLength",
              "UnicodePwdLength", "Capabilities"):
        setup["Parameters"][k] = 0
    setup["Data"] = b"abc"
    tree = i.SMBCommand(i.SMB.SMB_COM_TREE_CONNECT_ANDX)
    tree["Parameters"] = i.SMBTreeConnectAndX_Parameters()
    tree["Parameters"]["PasswordLength"] = 1
    tree["Data"] = b"\0\\\\X\\IPC$\0?????\0"
    pkt.addCommand(setup)
    pkt.addCommand(tree)
    return pkt.getData()


def test_split_chain_reads_impacket_andx():
    blocks = split_chain(_chain_packet(), i.SMB.SMB_COM_SESSION_SETUP_ANDX)
    assert [b.command for b in blocks] == [0x73, 0x75]
    assert blocks[0].data == b"abc" and blocks[1].data.startswith(b"\0\\\\X\\IPC$")


def test_join_chain_is_read_by_impacket():
    reply = join_chain(Header(0x73), [(0x73, andx(struct.pack("<H", 1)), b"OS\0"),
                                      (0x75, andx(struct.pack("<H", 1)), b"IPC\0")])
    pkt = i.NewSMBPacket(data=reply)
    first = i.SMBCommand(pkt["Data"][0])
    link = i.SMBAndXCommand_Parameters(first["Parameters"])
    assert link["AndXCommand"] == 0x75
    second = i.SMBCommand(reply[link["AndXOffset"]:])
    assert second["Data"] == b"IPC\0"
    assert i.SMBAndXCommand_Parameters(second["Parameters"])["AndXCommand"] == 0xFF


@pytest.mark.parametrize("mutate", ["backwards", "outside", "wordcount", "bytecount"])
def test_chain_lies_raise(mutate):
    raw = bytearray(_chain_packet())
    if mutate == "backwards":
        struct.pack_into("<H", raw, 35, 32)
    elif mutate == "outside":
        struct.pack_into("<H", raw, 35, len(raw) + 10)
    elif mutate == "wordcount":
        raw[32] = 200
    else:
        struct.pack_into("<H", raw, 33 + 26, 0xFFFF)
    with pytest.raises(ValueError):
        split_chain(bytes(raw), 0x73)


def test_chain_length_is_bounded():
    # Twelve LOGOFF_ANDX links that each point forward: refused past MAX_CHAIN.
    message = bytearray(b"\xffSMB" + bytes(28))
    for _ in range(12):
        nxt = len(message) + 7
        message += bytes([2]) + struct.pack("<BBH", 0x74, 0, nxt) + b"\0\0"
    message += bytes([2]) + struct.pack("<BBH", 0xFF, 0, 0) + b"\0\0"
    with pytest.raises(ValueError):
        split_chain(bytes(message), 0x74)
    assert read_block(bytes(message), 0x74, 32).words[:1] == b"\x74"


def test_negotiate_words_both_ways():
    words = negotiate.NEGOTIATE_WORDS.pack(5, 3, 10, 1, 4356, 65536, 0, 0x8000E3FD,
                                           0x01D0000000000000, -120, 0)
    params = i.SMBExtended_Security_Parameters(words)
    assert (params["DialectIndex"], params["MaxMpxCount"], params["MaxBufferSize"],
            params["Capabilities"], params["ServerTimeZone"], params["HighDateTime"]) == (
        5, 10, 4356, 0x8000E3FD, 0xFF88, 0x01D00000)
    theirs = i.SMBNTLMDialect_Parameters()
    for k, v in dict(DialectIndex=0, SecurityMode=3, MaxMpxCount=50, MaxNumberVcs=1,
                     MaxBufferSize=16644, MaxRawSize=65536, SessionKey=0,
                     Capabilities=0x0001F3FD, LowDateTime=1, HighDateTime=2,
                     ServerTimeZone=0, ChallengeLength=8).items():
        theirs[k] = v
    assert negotiate.NEGOTIATE_WORDS.unpack(theirs.getData()) == (
        0, 3, 50, 1, 16644, 65536, 0, 0x0001F3FD, 2 << 32 | 1, 0, 8)


def test_session_setup_words_match_impacket():
    ext = i.SMBSessionSetupAndX_Extended_Parameters()
    for k, v in dict(MaxBufferSize=4356, MaxMpxCount=10, VcNumber=1, SessionKey=7,
                     SecurityBlobLength=99, Capabilities=0x800000D4).items():
        ext[k] = v
    assert sessions.SETUP_EXTENDED.unpack(ext.getData()) == (4356, 10, 1, 7, 99, 0, 0x800000D4)
    plain = i.SMBSessionSetupAndX_Parameters()
    for k, v in dict(MaxBuffer=4356, MaxMpxCount=10, VCNumber=0, SessionKey=0,
                     AnsiPwdLength=24, UnicodePwdLength=24, Capabilities=0xD4).items():
        plain[k] = v
    assert sessions.SETUP_PLAIN.unpack(plain.getData()) == (4356, 10, 0, 0, 24, 24, 0, 0xD4)


def test_file_words_match_impacket():
    create = i.SMBNtCreateAndX_Parameters()
    create["FileNameLength"], create["CreateFlags"], create["AccessMask"] = 14, 0x16, 0x12019F
    create["CreateOptions"], create["Disposition"] = 0x40, 3
    assert files.NT_CREATE.unpack(create.getData()) == (
        0, 14, 0x16, 0, 0x12019F, 0, 0, 3, 3, 0x40, 2, 3)
    response = i.SMBNtCreateAndXResponse_Parameters(
        andx(files.NT_CREATE_RESPONSE.pack(0, 0x4001, 1, 1, 2, 3, 4, 0x20, 4096, 10, 2, 0x05FF,
                                           0)))
    assert (response["Fid"], response["CreateAction"], response["LastChangeTime"],
            response["FileAttributes"], response["EndOfFile"], response["FileType"],
            response["IPCState"], response["IsDirectory"]) == (
        0x4001, 1, 4, 0x20, 10, 2, 0x05FF, 0)
    read = i.SMBReadAndX_Parameters2()
    read["Fid"], read["Offset"], read["MaxCount"] = 0x4001, 100, 4096
    assert files.READ_ANDX.unpack(read.getData()) == (0x4001, 100, 4096, 4096, 0xFFFFFFFF,
                                                      4096)
    words = files.ReadWords(70000, 0xFFFF).complete(59)
    parsed = i.SMBReadAndXResponse_Parameters(words)
    assert (parsed["DataCount"], parsed["DataOffset"], parsed["DataCount_Hi"] & 0xFFFF) == (
        70000 & 0xFFFF, 60, 1)
    write = i.SMBWriteAndX_Parameters()
    write["Fid"], write["Offset"], write["DataLength"], write["DataOffset"] = 3, 5, 9, 64
    write["WriteMode"], write["Remaining"] = 8, 9
    fid, offset, _timeout, *rest = files.WRITE_ANDX.unpack(write.getData()[:24])
    assert (fid, offset, *rest) == (3, 5, 8, 9, 0, 9, 64)


def test_transaction_words_match_impacket():
    t = i.SMBTransaction2_Parameters()
    for k, v in dict(TotalParameterCount=12, TotalDataCount=0, MaxParameterCount=10,
                     MaxDataCount=4096, ParameterCount=12, ParameterOffset=68, DataCount=0,
                     DataOffset=80, Setup=b"\x01\x00").items():
        t[k] = v
    fields = trans.TRANS_REQUEST.unpack_from(t.getData())
    assert fields[:4] == (12, 0, 10, 4096) and fields[9:14] == (12, 68, 0, 80, 1)
    reply = trans.responses(Header(0x32, flags2=i.SMB.FLAGS2_NT_STATUS), 1, 2, 0,
                            b"P" * 10, b"D" * 100, 4356)
    (message,) = reply
    cmd = i.SMBCommand(i.NewSMBPacket(data=message)["Data"][0])
    params = i.SMBTransaction2Response_Parameters(cmd["Parameters"])
    assert message[params["ParameterOffset"]:][:10] == b"P" * 10
    assert message[params["DataOffset"]:][:params["DataCount"]] == b"D" * 100


def test_large_transaction_responses_are_split_within_max_buffer():
    data = bytes(range(256)) * 40
    parts = trans.responses(Header(0x25), 1, 2, 0, b"", data, 1024)
    assert len(parts) > 1 and all(len(p) <= 1024 for p in parts)
    joined = b""
    for p in parts:
        cmd = i.SMBCommand(i.NewSMBPacket(data=p)["Data"][0])
        params = i.SMBTransaction2Response_Parameters(cmd["Parameters"])
        assert params["DataDisplacement"] == len(joined)
        joined += p[params["DataOffset"]:][:params["DataCount"]]
    assert joined == data
