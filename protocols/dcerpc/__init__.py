"""DCE/RPC over SMB named pipes: srvsvc, wkssvc, spoolss, lsarpc and samr (sans-IO).

``pipes.open_pipe`` gives one ``PipeEndpoint`` per pipe open; the services answer from a
``ServerView`` the emulator implements over its session engine.
"""

from protocols.dcerpc.pipes import (
    Caller,
    Fault,
    PipeEndpoint,
    PipeService,
    ServerView,
    known_pipe,
    open_pipe,
)

__all__ = ["Caller", "Fault", "PipeEndpoint", "PipeService", "ServerView", "known_pipe",
           "open_pipe"]
