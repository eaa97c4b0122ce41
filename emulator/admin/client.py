"""A small client for the admin API (urllib only: no runtime dependency for the CLI verbs)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

ADMIN_ENV = "SMBRDP_EMU_ADMIN"
TOKEN_ENV = "SMBRDP_EMU_TOKEN"


class AdminError(Exception):
    """One line for the user; exit_code 1 = could not talk to the server, 2 = it said no."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class AdminClient:
    def __init__(self, url: str | None, token: str | None, timeout: float = 15.0) -> None:
        url = url or os.environ.get(ADMIN_ENV)
        if not url:
            raise AdminError(f"no admin URL: pass --admin http://HOST:PORT or set {ADMIN_ENV}")
        if not url.startswith(("http://", "https://")):
            raise AdminError(f"the admin URL must start with http://, got {url!r}")
        self.url = url.rstrip("/")
        self.token = token or os.environ.get(TOKEN_ENV)
        self.timeout = timeout
        # The admin API is on this machine or the lab's network: never via an HTTP proxy
        # from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method: str, path: str, body: Any = None) -> Any:
        raw = self.call_raw(method, path, body)
        try:
            return json.loads(raw or b"null")
        except ValueError:
            raise AdminError(f"{self.url}{path} did not answer JSON: is it smbrdp-emu's "
                             "admin port?", 1) from None

    def call_text(self, method: str, path: str) -> str:
        """For /metrics (Prometheus text)."""
        return self.call_raw(method, path).decode("utf-8", "replace")

    def call_raw(self, method: str, path: str, body: Any = None) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                answer: bytes = response.read()
                return answer
        except urllib.error.HTTPError as err:
            raise AdminError(self._refusal(err)) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise AdminError(f"cannot reach the admin API at {self.url}: {reason}", 1) from None

    def _refusal(self, err: urllib.error.HTTPError) -> str:
        if err.code == 401:
            return (f"the admin API refused the token (401): pass --token TOKEN or set "
                    f"{TOKEN_ENV}" if self.token else
                    f"the admin API needs a token (401): pass --token TOKEN or set {TOKEN_ENV}")
        try:
            message = json.loads(err.read())["error"]
        except (ValueError, KeyError, TypeError, OSError):
            message = err.reason
        return f"{message} ({err.code})"
