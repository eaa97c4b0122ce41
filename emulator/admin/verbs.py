"""Admin verbs for the command line (net session, qwinsta, ...): built in the admin work."""

from __future__ import annotations

import argparse
from typing import Any


def add_verb_parsers(sub: Any) -> None:  # argparse's _SubParsersAction
    """Register the Windows-shaped admin verbs on the `smbrdp-emu` parser."""
    del sub  # no verbs yet


__all__ = ["add_verb_parsers", "argparse"]
