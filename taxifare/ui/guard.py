"""What every request passes before the console answers it, and what every answer carries.

- The console is read-only: a method other than GET or HEAD is a 405.
- The Host header must name this machine while the console listens on loopback, so a web page
  elsewhere cannot reach it through DNS rebinding (a 400 otherwise).
- A URL over MAX_URL bytes is a 414, whatever the HTTP parser let through.
- Every answer forbids the page to load or send anything anywhere but the console itself
  (Content-Security-Policy), to be framed by other sites, or to be cached.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.responses import PlainTextResponse

MAX_URL = 8192
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'"
)
# A file from a run (an artifact) is shown as a sandboxed document: no scripts, no requests, no forms.
FILE_POLICY = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
HEADERS = {
    "content-security-policy": PAGE_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
    "x-frame-options": "SAMEORIGIN",
    "cache-control": "no-store",
}

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def host_name(header: str) -> str:
    """The host in a Host header, without its port (IPv6 in brackets too), lower-cased."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    def __init__(self, app: App, loopback_only: bool = True):
        self.app, self.loopback_only = app, loopback_only

    def problem(self, scope: Scope) -> tuple[int, str] | None:
        if scope["method"] not in ("GET", "HEAD"):
            return 405, "the console is read-only: GET and HEAD only\n"
        if len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") > MAX_URL:
            return 414, f"the URL is over {MAX_URL} bytes\n"
        if self.loopback_only:
            hosts = [v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"]
            if len(hosts) != 1 or host_name(hosts[0]) not in LOOPBACK_NAMES:
                return 400, "the console answers only requests for this machine (Host: 127.0.0.1 or localhost)\n"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in HEADERS.items():
                    if key not in headers:
                        headers[key] = value
            await send(message)

        problem = self.problem(scope)
        if problem is not None:
            response = PlainTextResponse(problem[1], problem[0], headers={"allow": "GET, HEAD"})
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
