"""A small client for the admin API (urllib only: no runtime dependency for the CLI verbs)."""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any
from urllib.parse import urlsplit

ADMIN_ENV = "SMBRDP_EMU_ADMIN"
TOKEN_ENV = "SMBRDP_EMU_TOKEN"
# NERR_ClientNameNotFound (2312): what `net session \\X` says for an unknown computer. The
# API answers it (404) and the CLI prints it; it lives here so the CLI needs no twisted.web.
NO_SUCH_CLIENT = "A session does not exist with that computer name."


class AdminError(Exception):
    """One line for the user; exit_code 1 = could not talk to the server, 2 = it said no."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _host_part(url: str) -> str:
    try:
        return urlsplit(url).netloc
    except ValueError:  # e.g. an unclosed [IPv6 address
        return ""


class AdminClient:
    def __init__(self, url: str | None, token: str | None, timeout: float = 15.0, *,
                 host: str | None = None) -> None:
        url = url or os.environ.get(ADMIN_ENV)
        if not url:
            raise AdminError(f"no admin URL: pass --admin http://HOST:PORT or set {ADMIN_ENV}")
        if not url.startswith(("http://", "https://")) or not _host_part(url):
            raise AdminError(f"the admin URL must be http://HOST:PORT, got {url!r}")
        self.url = url.rstrip("/")
        self.token = token or os.environ.get(TOKEN_ENV)
        self.timeout = timeout
        # `--host NAME`: one host of a lab; every /api/X goes to /api/hosts/NAME/X.
        self.host_prefix = f"/api/hosts/{urllib.parse.quote(host, safe='')}" if host else ""
        # The admin API is on this machine or the lab's network: never via an HTTP proxy
        # from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One API request; the answer's JSON."""
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
        if self.host_prefix and path.startswith("/api/"):
            path = self.host_prefix + path[4:]
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            request = urllib.request.Request(self.url + path, data, headers, method=method)
            with self._opener.open(request, timeout=self.timeout) as response:
                answer: bytes = response.read()
                return answer
        except urllib.error.HTTPError as err:  # the server answered, and said no
            raise AdminError(self._refusal(err)) from None
        except (http.client.InvalidURL, ValueError) as err:
            raise AdminError(f"bad admin URL {self.url!r}: {err}") from None
        except (OSError, http.client.HTTPException) as err:  # URLError is an OSError
            reason = " ".join(str(getattr(err, "reason", None) or err).split())  # one line
            raise AdminError(f"cannot reach the admin API at {self.url}: {reason}", 1) from None

    def _refusal(self, err: urllib.error.HTTPError) -> str:
        if err.code == 401:
            what = "refused the token" if self.token else "needs a token"
            return f"the admin API {what} (401): pass --token TOKEN or set {TOKEN_ENV}"
        try:
            message = json.loads(err.read())["error"]
        except (ValueError, KeyError, TypeError, OSError, http.client.HTTPException):
            message = err.reason
        return f"{message} ({err.code})"
