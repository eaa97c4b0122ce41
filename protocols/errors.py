"""The one exception type the protocol cores use to answer a request with an NTSTATUS."""


class StatusError(Exception):
    """Raised inside a protocol core: the request is answered with ``status``.

    ``status`` is an NTSTATUS value (see ``impacket.nt_errors`` for names).
    """

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(f"0x{status:08X} {detail}".strip())
        self.status = status
        self.detail = detail
