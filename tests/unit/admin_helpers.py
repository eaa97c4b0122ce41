"""Shared by the unit tests that call the admin API in-process (``AdminAPI.handle``)."""

from __future__ import annotations

import json
from typing import Any

from emulator.admin.api import AdminAPI, Call

TOKEN = "s3cret-token"
HEADERS = {"host": "127.0.0.1:8080", "authorization": f"Bearer {TOKEN}"}


def call(api: AdminAPI, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One authenticated request: (status, the JSON reply)."""
    raw = b"" if body is None else json.dumps(body).encode()
    reply = api.handle(Call(method, path, {}, HEADERS, raw))
    return reply.status, json.loads(reply.body)
