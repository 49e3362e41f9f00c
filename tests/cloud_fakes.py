"""Local stand-ins for Google Cloud in the tests: a GCS emulator and a request-capturing server.

`gcs_emulator` starts gcp-storage-emulator (a real JSON-API server) in this process and points
google-cloud-storage at it. `Capture` is a small threaded HTTP server that records every
request and answers from a route table, for the SDKs' real REST transports (Vertex AI,
BigQuery, Resource Manager): the tests assert on what was sent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gcs_emulator(monkeypatch: Any) -> Iterator[Any]:
    """A fresh in-memory GCS emulator; google-cloud-storage (via trainer.gcs) talks to it."""
    from gcp_storage_emulator.server import create_server

    from trainer import gcs

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    gcs.client.cache_clear()
    try:
        yield server
    finally:
        gcs.client.cache_clear()
        server.stop()


@dataclasses.dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Reply = tuple[int, Any]  # (status, JSON body)
Handler = Callable[[Request, re.Match[str]], Reply]


class Capture:
    """Records requests; answers the first route whose method and path regex match (404 otherwise)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.routes: list[tuple[str, re.Pattern[str], Handler | Reply]] = []
        self._lock = threading.Lock()
        capture = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(
                    self.command, unquote(url.path), parse_qs(url.query), dict(self.headers), self.rfile.read(length)
                )
                status, body = capture.answer(req)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def route(self, method: str, pattern: str, reply: Handler | Reply) -> None:
        """Add a route; later routes for the same request win over earlier ones."""
        self.routes.insert(0, (method, re.compile(pattern + r"$"), reply))

    def answer(self, req: Request) -> Reply:
        with self._lock:
            self.requests.append(req)
            for method, pattern, reply in self.routes:
                m = pattern.match(req.path)
                if method == req.method and m:
                    return reply(req, m) if callable(reply) else reply
        return 404, {"error": {"code": 404, "message": f"no route for {req.method} {req.path}", "status": "NOT_FOUND"}}

    def sent(self, method: str, pattern: str) -> list[Request]:
        rx = re.compile(pattern + r"$")
        return [r for r in self.requests if r.method == method and rx.match(r.path)]

    def __enter__(self) -> Capture:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
