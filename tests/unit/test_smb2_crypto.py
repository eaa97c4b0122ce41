"""Tests for protocols.smb2.crypto.

Known-answer vectors are Microsoft's, published by the Open Specifications team:
- "SMB 3.1.1 Pre-authentication integrity in Windows 10" (2015-08-11)
- "Encryption in SMB 3.0: A protocol perspective" (2012-10-05)
- "SMB 3.1.1 Encryption in Windows 10" (2015-09-09)
The blogs are written from the client's side: the client's EncryptionKey is the
server's decryption key and vice versa. Everything else is cross-checked against
the client implementations installed here (impacket, smbprotocol, pycryptodomex).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from types import SimpleNamespace

import pytest
from Cryptodome.Cipher import AES
from impacket import crypto as icrypto
from impacket.smb3structs import SMB2_TRANSFORM_HEADER
from smbprotocol.connection import Connection, SMB2TransformHeader

from protocols.smb2 import crypto as c

h = bytes.fromhex
ALL_CIPHERS = [c.AES_128_CCM, c.AES_128_GCM, c.AES_256_CCM, c.AES_256_GCM]
KEY_LEN = {c.AES_128_CCM: 16, c.AES_128_GCM: 16, c.AES_256_CCM: 32, c.AES_256_GCM: 32}


# --- Microsoft: SMB 3.1.1 preauth integrity + signing key --------------------

PREAUTH_CHAIN = [
    # (message, hash value after it): NEGOTIATE req/resp, SESSION_SETUP x3
    (
        (
            "FE534D4240000100000000000000800000000000000000000100000000000000FFFE000000000000"
            "00000000000000000000000000000000000000000000000024000500000000003F000000ECD86F32"
            "6276024F9F7752B89BB33F3A70000000020000000202100200030203110300000100260000000000"
            "010020000100FA49E6578F1F3A9F4CD3E9CC14A67AA884B3D05844E0E5A118225C15887F32FF0000"
            "0200060000000000020002000100"
        ),
        (
            "DD94EFC5321BB618A2E208BA8920D2F422992526947A409B5037DE1E0FE8C7362B8C47122594CDE0"
            "CE26AA9DFC8BCDBDE0621957672623351A7540F1E54A0426"
        ),
    ),
    (
        (
            "FE534D4240000100000000000000010001000000000000000100000000000000FFFE000000000000"
            "000000000000000000000000000000000000000000000000410001001103020039CBCAF329714942"
            "BDCE5D60F09AB3FB2F000000000080000000800000008000D8DAE5ADCBAED00109094AB095AED001"
            "80004001C00100006082013C06062B0601050502A08201303082012CA01A3018060A2B0601040182"
            "3702021E060A2B06010401823702020AA282010C048201084E45474F455854530100000000000000"
            "60000000700000007C7CC0FD06D6362D02DDE1CF343BFE292900F49750B4AA97934D9C4296B26E51"
            "FD370471B235E15A50DAE15BD5489C87000000000000000060000000010000000000000000000000"
            "5C33530DEAF90D4DB2EC4AE3786EC3084E45474F4558545303000000010000004000000098000000"
            "7C7CC0FD06D6362D02DDE1CF343BFE295C33530DEAF90D4DB2EC4AE3786EC3084000000058000000"
            "3056A05430523027802530233121301F06035504031318546F6B656E205369676E696E6720507562"
            "6C6963204B65793027802530233121301F06035504031318546F6B656E205369676E696E67205075"
            "626C6963204B6579010026000000000001002000010060A3C3B95C3C7CCD51EC536648D9B3AC74C4"
            "83CA5B65385A251117BEB30712E50000020004000000000001000200"
        ),
        (
            "324BFA92A4F3A190E466EBEA08D9C110DC88BFED758D9846ECC6F541CC1D02AE3C94A79F36011E99"
            "7E13F841B91B50957AD07B19C8E2539C0B23FDAE09D2C513"
        ),
    ),
    (
        (
            "FE534D4240000100000000000100800000000000000000000200000000000000FFFE000000000000"
            "00000000000000000000000000000000000000000000000019000001010000000000000058004A00"
            "0000000000000000604806062B0601050502A03E303CA00E300C060A2B06010401823702020AA22A"
            "04284E544C4D5353500001000000978208E200000000000000000000000000000000060380250000"
            "000F"
        ),
        (
            "AC0B0F2B9986257700365E416D142A6EDC96DF03594A19E52A15F6BD0D041CD5D432F8ED42C55E33"
            "197A50C9EC00F1462B50C592211B1471A04B56088FDFD5F9"
        ),
    ),
    (
        (
            "FE534D4240000100160000C00100010001000000000000000200000000000000FFFE000000000000"
            "190000000010000000000000000000000000000000000000090000004800B300A181B03081ADA003"
            "0A0101A10C060A2B06010401823702020AA281970481944E544C4D53535000020000000C000C0038"
            "00000015828AE20D1D8BA31179D008000000000000000050005000440000000A0092270000000F53"
            "005500540033003100310002000C0053005500540033003100310001000C00530055005400330031"
            "00310004000C0053005500540033003100310003000C0053005500540033003100310007000800A1"
            "A1F5ADCBAED00100000000"
        ),
        (
            "2729E3440DFDDD839E37193F6E8F20C20CEFB3469E453A70CD980EEC06B8835740A7376008563336"
            "4C8989895ECE81BF102DEEB14D4B7D48AFA76901A7A38387"
        ),
    ),
    (
        (
            "FE534D4240000100000000000100800000000000000000000300000000000000FFFE000000000000"
            "1900000000100000000000000000000000000000000000001900000101000000000000005800CF01"
            "0000000000000000A18201CB308201C7A0030A0101A28201AA048201A64E544C4D53535000030000"
            "001800180090000000EE00EE00A80000000C000C00580000001A001A0064000000120012007E0000"
            "001000100096010000158288E2060380250000000FECAC77A5F385A8BF9C38C706EEEDDCD3530055"
            "005400330031003100610064006D0069006E006900730074007200610074006F0072004400520049"
            "0056004500520033003100310000000000000000000000000000000000000000000000000063078E"
            "B639FE03E20A231C3AE3BF23080101000000000000A1A1F5ADCBAED001BC4AD05F223CC90F000000"
            "0002000C0053005500540033003100310001000C0053005500540033003100310004000C00530055"
            "00540033003100310003000C0053005500540033003100310007000800A1A1F5ADCBAED001060004"
            "00020000000800300030000000000000000000000000300000B61FEFCAA857EA57BF1EDCEBF8974B"
            "8E0EBA5A6DFD9D07A31D11B548F8C9D0CC0A00100000000000000000000000000000000000090016"
            "0063006900660073002F005300550054003300310031000000000000000000000000003B9BDFF38F"
            "5EE8F9663F11A0F4C03A78A31204100100000063775A9A5FD97F0600000000"
        ),
        (
            "0DD13628CC3ED218EF9DF9772D436D0887AB9814BFAE63A80AA845F36909DB7928622DDDAD522D97"
            "51640A459762C5A9D6BB084CBB3CE6BDADEF5D5BCE3C6C01"
        ),
    ),
]


def test_preauth_hash_microsoft_vector_and_signing_key():
    ph = c.PreauthHash()
    snapshots = []
    for message, expected in PREAUTH_CHAIN:
        ph.update(h(message))
        assert ph.value == h(expected)
        snapshots.append(ph.copy())
    # copy() is independent of later updates
    assert snapshots[0].value == h(PREAUTH_CHAIN[0][1])
    keys = c.derive_session_keys(0x0311, h("270E1BA896585EEB7AF3472D3B4C75A7"), ph.value)
    assert keys.signing == h("73FE7A9A77BEF0BDE49C650D8CCB5F76")


def test_preauth_hash_initial_value():
    assert c.PreauthHash().value == b"\0" * 64
    ph = c.PreauthHash(b"\x01" * 64)
    ph.update(b"abc")
    assert ph.value == hashlib.sha512(b"\x01" * 64 + b"abc").digest()
    with pytest.raises(ValueError):
        c.PreauthHash(b"short")


# --- Microsoft: SMB 3.0 encryption (AES-128-CCM) -------------------------------

SMB30_SESSION_KEY = h("B4546771B515F766A86735532DD6C4F0")
SMB30_SESSION_ID = 0x8E40014000011
# client -> server: WRITE request "Smb3 encryption testing"
SMB30_REQUEST = h(
    "FE534D4240000100000000000900400008000000000000000400000000000000"
    "FFFE0000010000001100001400E4080000000000000000000000000000000000"
    "3100700017000000000000000000000015010000390000020100000039020000"
    "00000000000000007000000000000000536D623320656E6372797074696F6E20"
    "74657374696E67"
)
SMB30_REQUEST_TRANSFORM = h(
    "FD534D4281A286535415445DAE393921E44FA42E66E69A111892584FB5ED524A"
    "744DA3EE87000000000001001100001400E4080025C8FEE16605A437832D1CD5"
    "2DA9F4645333482A175FE5384563F45FCDAFAEF38BC62BA4D5C62897996625A4"
    "4C29BE5658DE2E6117585779E7B59FFD971278D08580D7FA899E410E910EABF5"
    "AA1DB43050B33B49182637759AC15D84BFCDF5B6B238993C0F4CF4D6012023F6"
    "C627297075D84B7803912D0A9639634453595EF3E33FFE4E7AC2AB"
)
# server -> client: WRITE response
SMB30_RESPONSE = h(
    "FE534D4240000100000000000900210009000000000000000400000000000000"
    "FFFE0000010000001100001400E4080000000000000000000000000000000000"
    "11000000170000000000000000000000"
)
SMB30_RESPONSE_TRANSFORM = h(
    "FD534D42A6015530A18F6D9AFFE22AFAE8E66484860000000000000011000014"
    "00E4080050000000000001001100001400E40800DBF46435C5F14169293CE079"
    "E344479BF670227E49873F458672C3098DAC467DD5809F369D67409166515787"
    "1483E01F7BECD02064EAC3E235F913668BBC2F097980D4B378F1993EFF6E60D1"
    "77309E5B"
)


@pytest.mark.parametrize("dialect", [0x0300, 0x0302])
def test_smb30_keys_microsoft_vector(dialect):
    keys = c.derive_session_keys(dialect, SMB30_SESSION_KEY)
    assert keys.decryption == h("261B72350558F2E9DCF613070383EDBF")  # client EncryptionKey
    assert keys.encryption == h("8FE2B57EC34D2DB5B1A9727F526BBDB5")  # client DecryptionKey


def test_smb30_encryption_microsoft_vector_both_directions():
    keys = c.derive_session_keys(0x0300, SMB30_SESSION_KEY)
    assert c.parse_transform_session_id(SMB30_REQUEST_TRANSFORM) == SMB30_SESSION_ID
    assert c.decrypt(c.AES_128_CCM, keys.decryption, SMB30_REQUEST_TRANSFORM) == SMB30_REQUEST
    nonce_field = SMB30_RESPONSE_TRANSFORM[20:36]
    out = c.encrypt(c.AES_128_CCM, keys.encryption, SMB30_SESSION_ID, SMB30_RESPONSE, nonce_field)
    assert out == SMB30_RESPONSE_TRANSFORM
    assert c.decrypt(c.AES_128_CCM, keys.encryption, out) == SMB30_RESPONSE


# --- Microsoft: SMB 3.1.1 encryption (AES-128-GCM) -----------------------------

SMB311_SESSION_KEY = h("419FDDF34C1E001909D362AE7FB6AF79")
SMB311_PREAUTH = h(
    "B23F3CBFD69487D9832B79B1594A367CDD950909B774C3A4C412B4FCEA9EDDDBA7DB256BA2EA30E9"
    "77F11F9B113247578E0E915C6D2A513B8F2FCA5707DC8770"
)
SMB311_SESSION_ID = 0x100000000025
SMB311_REQUEST = h(
    "FE534D4240000100000000000900010008000000000000000500000000000000FFFE000001000000"
    "25000000001000000000000000000000000000000000000031007000170000000000000000000000"
    "0600000004000000010000000400000000000000000000007000000000000000536D623320656E63"
    "72797074696F6E2074657374696E67"
)
SMB311_REQUEST_TRANSFORM = h(
    "FD534D42BD73D97D2BC9001BCAFAC0FDFF5FEEBCC7D6822D269CAF48904C664C0000000087000000"
    "0000010025000000001000006ECDD2A7AFC7B47763057A041B8FD4DAFFE990B70C9E09D36C084E02"
    "D14EF247F8BDE38ACF6256F8B1D3B56F77FBDEB312FEA5E92CBCC1ED8FB2EBBFAA75E49A4A394BB4"
    "4576545567C24D4C014D47C9FBDFDAFD2C4F9B72F8D256452620A299F48E29E53D6B61D1C13A19E9"
    "1AF013F00D17E3ABC2FC3D36C8C1B6B93973253852DBD442E46EE8"
)
SMB311_RESPONSE = h(
    "FE534D4240000100000000000900010001000000000000000500000000000000FFFE000001000000"
    "25000000001000000000000000000000000000000000000011000000170000000000000000000000"
)
SMB311_RESPONSE_TRANSFORM = h(
    "FD534D42ACBE1CB7ED343ADF1725EF144D90D4B0E06831DD2E8EB7B4000000000000000050000000"
    "00000100250000000010000026BBBF949983A6C1C796559D0F2C510CB651D1F7B6AC8DED32A2A0B8"
    "F2D793A815C6F6B848D69767A215841A42D400AE6DDB5F0B44173A014973321FDD7950DA6179159B"
    "82E03C9E18A050FF0EA1C967"
)


def test_smb311_encryption_microsoft_vector_both_directions():
    keys = c.derive_session_keys(0x0311, SMB311_SESSION_KEY, SMB311_PREAUTH, c.AES_128_GCM)
    assert keys.decryption == h("A2F5E80E5D59103034F32E52F698E5EC")  # client EncryptionKey
    assert keys.encryption == h("748C50868C90F302962A5C35F5F9A8BF")  # client DecryptionKey
    assert c.parse_transform_session_id(SMB311_REQUEST_TRANSFORM) == SMB311_SESSION_ID
    assert c.decrypt(c.AES_128_GCM, keys.decryption, SMB311_REQUEST_TRANSFORM) == SMB311_REQUEST
    nonce = SMB311_RESPONSE_TRANSFORM[20:32]  # 12-byte GCM nonce, zero padded in the field
    out = c.encrypt(c.AES_128_GCM, keys.encryption, SMB311_SESSION_ID, SMB311_RESPONSE, nonce)
    assert out == SMB311_RESPONSE_TRANSFORM


# --- KDF and key derivation, cross-checked with impacket's client KDF --------------


@pytest.mark.parametrize("bits", [128, 256])
@pytest.mark.parametrize(
    "label,context",
    [
        (b"SMB2AESCMAC\0", b"SmbSign\0"),
        (b"SMB2AESCCM\0", b"ServerIn \0"),
        (b"SMBS2CCipherKey\0", bytes(range(64))),
    ],
)
def test_kdf_matches_impacket(label, context, bits):
    key = bytes(range(16, 32))
    assert c.kdf(key, label, context, bits) == icrypto.KDF_CounterMode(key, label, context, bits)
    assert len(c.kdf(key, label, context, bits)) == bits // 8


@pytest.mark.parametrize("dialect", [0x0300, 0x0302, 0x0311])
def test_derived_keys_mirror_impacket_client(dialect):
    sk = bytes(range(100, 116))
    pa = hashlib.sha512(b"preauth").digest()
    keys = c.derive_session_keys(dialect, sk, pa)
    kdf = icrypto.KDF_CounterMode
    if dialect == 0x0311:
        client_sign = kdf(sk, b"SMBSigningKey\x00", pa, 128)
        client_enc = kdf(sk, b"SMBC2SCipherKey\x00", pa, 128)
        client_dec = kdf(sk, b"SMBS2CCipherKey\x00", pa, 128)
        client_app = kdf(sk, b"SMBAppKey\x00", pa, 128)
    else:
        client_sign = kdf(sk, b"SMB2AESCMAC\x00", b"SmbSign\x00", 128)
        client_enc = kdf(sk, b"SMB2AESCCM\x00", b"ServerIn \x00", 128)
        client_dec = kdf(sk, b"SMB2AESCCM\x00", b"ServerOut\x00", 128)
        client_app = kdf(sk, b"SMB2APP\x00", b"SmbRpc\x00", 128)
    assert keys == c.SessionKeys(client_sign, client_dec, client_enc, client_app)


@pytest.mark.parametrize("cipher", [c.AES_256_CCM, c.AES_256_GCM])
def test_smb311_aes256_keys_use_full_session_key(cipher):
    full = bytes(range(32))  # e.g. a Kerberos AES-256 subkey
    pa = hashlib.sha512(b"x").digest()
    keys = c.derive_session_keys(0x0311, full, pa, cipher)
    kdf = icrypto.KDF_CounterMode
    assert keys.encryption == kdf(full, b"SMBS2CCipherKey\x00", pa, 256)
    assert keys.decryption == kdf(full, b"SMBC2SCipherKey\x00", pa, 256)
    assert keys.signing == kdf(full[:16], b"SMBSigningKey\x00", pa, 128)
    assert len(keys.encryption) == len(keys.decryption) == 32
    # NTLM: a 16-byte session key still yields 32-byte cipher keys
    ntlm = c.derive_session_keys(0x0311, full[:16], pa, cipher)
    assert ntlm.encryption == kdf(full[:16], b"SMBS2CCipherKey\x00", pa, 256)


@pytest.mark.parametrize("dialect", [0x0202, 0x0210])
def test_smb2_keys_are_the_session_key(dialect):
    keys = c.derive_session_keys(dialect, bytes(range(20)))
    assert keys.signing == bytes(range(16))
    assert keys.encryption == keys.decryption == b""


def test_smb311_needs_preauth_hash():
    with pytest.raises(ValueError):
        c.derive_session_keys(0x0311, bytes(16))
    with pytest.raises(ValueError):
        c.derive_session_keys(0x0311, bytes(16), bytes(64), cipher=9)


# --- signing, cross-checked with smbprotocol and impacket ---------------------------


def _response(session_id: int = 0x1122334455667788, body: bytes = b"") -> bytes:
    """An SMB2 TREE_CONNECT response, flags SERVER_TO_REDIR."""
    # ProtocolId, StructureSize, CreditCharge, Status, Command, Credits, Flags,
    # NextCommand, MessageId, Reserved, TreeId, SessionId, Signature
    fields = (b"\xfeSMB", 64, 1, 0, 3, 1, 0x1, 0, 7, 0xFEFF, 1, session_id, b"\0" * 16)
    header = struct.pack("<4sHHIHHIIQIIQ16s", *fields)
    return header + (body or struct.pack("<HBBIII", 16, 1, 0, 0x30, 0, 0x1F01FF))


def _smbprotocol_signature(dialect: int, key: bytes, message: bytes) -> bytes:
    conn = SimpleNamespace(dialect=dialect, signing_algorithm_id=None)
    mid = int.from_bytes(message[24:32], "little")
    cmd = int.from_bytes(message[12:14], "little")
    return Connection._generate_signature(conn, message, key, mid, True, cmd)


@pytest.mark.parametrize("dialect", [0x0202, 0x0210, 0x0300, 0x0302, 0x0311])
def test_sign_matches_client_implementations(dialect):
    keys = c.derive_session_keys(dialect, bytes(range(16)), bytes(64))
    signed = c.sign(dialect, keys.signing, _response())
    flags = int.from_bytes(signed[16:20], "little")
    assert flags == 0x1 | c.SMB2_FLAGS_SIGNED
    assert signed[:48] == _response()[:16] + flags.to_bytes(4, "little") + _response()[20:48]
    assert signed[64:] == _response()[64:]
    sig = signed[48:64]
    assert sig == _smbprotocol_signature(dialect, keys.signing, signed)
    zeroed = signed[:48] + b"\0" * 16 + signed[64:]
    if dialect < 0x0300:  # impacket signSMB: HMAC-SHA256 over the session key
        assert sig == hmac.new(keys.signing, zeroed, hashlib.sha256).digest()[:16]
    else:  # impacket's own pure-Python AES-CMAC
        assert sig == icrypto.AES_CMAC(keys.signing, zeroed, len(zeroed))
    assert c.verify(dialect, keys.signing, signed)


@pytest.mark.parametrize("dialect", [0x0210, 0x0311])
def test_verify_rejects_tampering(dialect):
    key = bytes(range(16))
    signed = c.sign(dialect, key, _response())
    assert c.verify(dialect, key, signed)
    for pos in (0, 16, 40, 50, 63, 64, len(signed) - 1):
        bad = bytearray(signed)
        bad[pos] ^= 0x01
        assert not c.verify(dialect, key, bytes(bad)), pos
    assert not c.verify(dialect, bytes(16), signed)  # wrong key
    assert not c.verify(dialect, key, signed[:63])  # truncated
    assert not c.verify(dialect, key, _response())  # not signed at all
    assert not c.verify(0x0202 if dialect >= 0x0300 else 0x0300, key, signed)  # wrong algorithm


def test_sign_rejects_short_message():
    with pytest.raises(ValueError):
        c.sign(0x0300, bytes(16), b"\xfeSMB")


# --- encryption: round trips and independent implementations --------------------------


@pytest.mark.parametrize("cipher", ALL_CIPHERS)
def test_round_trip(cipher):
    key = bytes(range(KEY_LEN[cipher]))
    msg = _response(body=b"\xab" * 300)
    t = c.encrypt(cipher, key, 0x42, msg)
    assert t[:4] == b"\xfdSMB" and len(t) == 52 + len(msg)
    nonce_len = 11 if cipher in (c.AES_128_CCM, c.AES_256_CCM) else 12
    assert t[20 + nonce_len : 36] == b"\0" * (16 - nonce_len)
    assert struct.unpack_from("<IHHQ", t, 36) == (len(msg), 0, 1, 0x42)
    assert c.parse_transform_session_id(t) == 0x42
    assert c.decrypt(cipher, key, t) == msg
    assert c.encrypt(cipher, key, 0x42, msg) != t  # fresh random nonce


@pytest.mark.parametrize("cipher", ALL_CIPHERS)
def test_encrypt_matches_pycryptodome(cipher):
    """impacket's way: its SMB2_TRANSFORM_HEADER and pycryptodome's AES-CCM/GCM."""
    key = bytes(range(50, 50 + KEY_LEN[cipher]))
    msg = _response(body=b"hello" * 20)
    is_ccm = cipher in (c.AES_128_CCM, c.AES_256_CCM)
    nonce = bytes(range(1, 12 if is_ccm else 13))
    mode = AES.MODE_CCM if is_ccm else AES.MODE_GCM

    hdr = SMB2_TRANSFORM_HEADER()
    hdr["Nonce"] = nonce.ljust(16, b"\0")
    hdr["OriginalMessageSize"] = len(msg)
    hdr["EncryptionAlgorithm"] = 1
    hdr["SessionID"] = 0x99
    aes = AES.new(key, mode, nonce=nonce, mac_len=16)
    aes.update(hdr.getData()[20:])
    ciphertext, tag = aes.encrypt_and_digest(msg)
    hdr["Signature"] = tag
    theirs = hdr.getData() + ciphertext

    assert c.encrypt(cipher, key, 0x99, msg, nonce) == theirs
    assert c.decrypt(cipher, key, theirs) == msg


@pytest.mark.parametrize("cipher", ALL_CIPHERS)
def test_smbprotocol_client_interop(cipher):
    """smbprotocol encrypts to us with its EncryptionKey and decrypts our replies."""
    sk, pa, sid = bytes(range(16)), hashlib.sha512(b"neg").digest(), 0x1000000000AB
    keys = c.derive_session_keys(0x0311, sk, pa, cipher)
    bits = 256 if cipher in (c.AES_256_CCM, c.AES_256_GCM) else 128
    session = SimpleNamespace(
        session_id=sid,
        encryption_key=icrypto.KDF_CounterMode(sk, b"SMBC2SCipherKey\x00", pa, bits),
        decryption_key=icrypto.KDF_CounterMode(sk, b"SMBS2CCipherKey\x00", pa, bits),
    )
    conn = SimpleNamespace(dialect=0x0311, cipher_id=cipher, session_table={sid: session})

    request = _response(session_id=sid, body=b"request")
    sent = Connection._encrypt(conn, request, session).pack()
    assert c.parse_transform_session_id(sent) == sid
    assert c.decrypt(cipher, keys.decryption, sent) == request

    reply = _response(session_id=sid, body=b"reply" * 9)
    header = SMB2TransformHeader()
    header.unpack(c.encrypt(cipher, keys.encryption, sid, reply))
    assert Connection._decrypt(conn, header) == reply


@pytest.mark.parametrize("cipher", ALL_CIPHERS)
def test_decrypt_rejects_tampering(cipher):
    key = bytes(range(KEY_LEN[cipher]))
    t = c.encrypt(cipher, key, 7, _response(body=b"secret"))
    for pos in range(4, len(t)):  # signature, nonce, size, reserved, flags, session id, payload
        bad = bytearray(t)
        bad[pos] ^= 0x80
        with pytest.raises(c.DecryptError):
            c.decrypt(cipher, key, bytes(bad))
    with pytest.raises(c.DecryptError):
        c.decrypt(cipher, bytes(reversed(key)), t)  # wrong key
    other = c.AES_128_GCM if cipher == c.AES_128_CCM else c.AES_128_CCM
    with pytest.raises(c.DecryptError):
        c.decrypt(other, bytes(16), t)  # wrong cipher


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\xfdSMB",
        b"\xfeSMB" + bytes(100),
        SMB30_REQUEST_TRANSFORM[:52],
        SMB30_REQUEST_TRANSFORM[:53],
        SMB30_REQUEST_TRANSFORM[:-1],
        SMB30_REQUEST_TRANSFORM + b"\0",
        b"\xfdSMB" + bytes(48) + bytes(64),
    ],
)
def test_decrypt_rejects_garbage(garbage):
    key = c.derive_session_keys(0x0300, SMB30_SESSION_KEY).decryption
    with pytest.raises(c.DecryptError):
        c.decrypt(c.AES_128_CCM, key, garbage)


def test_decrypt_bad_arguments_raise_decrypt_error():
    t = SMB30_REQUEST_TRANSFORM
    for cipher, key in [(0, bytes(16)), (c.AES_128_CCM, bytes(32)), (c.AES_256_GCM, bytes(16))]:
        with pytest.raises(c.DecryptError):
            c.decrypt(cipher, key, t)
    with pytest.raises(c.DecryptError):
        c.decrypt(c.AES_128_CCM, None, t)  # type: ignore[arg-type]
    assert issubclass(c.DecryptError, ValueError)


def test_parse_transform_session_id_rejects_bad_input():
    for bad in (b"", SMB30_REQUEST_TRANSFORM[:51], b"\xfeSMB" + SMB30_REQUEST_TRANSFORM[4:]):
        with pytest.raises(c.DecryptError):
            c.parse_transform_session_id(bad)


def test_encrypt_rejects_bad_arguments():
    with pytest.raises(ValueError):
        c.encrypt(5, bytes(16), 1, _response())
    with pytest.raises(ValueError):
        c.encrypt(c.AES_256_GCM, bytes(16), 1, _response())
    with pytest.raises(ValueError):
        c.encrypt(c.AES_128_CCM, bytes(16), 1, _response(), nonce=bytes(12))
