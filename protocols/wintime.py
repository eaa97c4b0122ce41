"""Windows FILETIME: 100 ns ticks since 1601-01-01 (used by SMB, NTLM and, later, RDP)."""

# 1970-01-01 in FILETIME ticks.
FILETIME_UNIX_EPOCH = 116444736000000000


def filetime_from_ns(unix_ns: int) -> int:
    return unix_ns // 100 + FILETIME_UNIX_EPOCH


def ns_from_filetime(filetime: int) -> int:
    return (filetime - FILETIME_UNIX_EPOCH) * 100


def filetime_from_seconds(posix_seconds: float) -> int:
    return FILETIME_UNIX_EPOCH + int(posix_seconds * 10_000_000)
