"""Local stand-ins for Google Cloud in the tests: a GCS emulator and a request-capturing server.

`gcs_emulator` starts gcp-storage-emulator (a real JSON-API server) in this process and points
google-cloud-storage at it. `Capture` is the recording server with only the routes a test
adds, for the SDKs' real REST transports (Vertex AI, BigQuery, Resource Manager): the tests
assert on what was sent.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator
from typing import Any

from capture_server import CaptureServer, Recorded


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


class Capture(CaptureServer):
    """The recording server of tests/capture_server.py with only the routes a test adds.

    Routes and `sent` match the whole path; handlers take (request, match) and answer a
    (status, JSON) pair.
    """

    def __init__(self) -> None:
        super().__init__(defaults=False)

    def route(self, method: str, path_regex: str, answer: Any, *, times: int | None = None) -> None:
        super().route(method, f"^(?:{path_regex})$", answer, times=times)

    def sent(self, method: str, path_regex: str) -> list[Recorded]:
        return [r for r in self.find(method) if re.fullmatch(path_regex, r.path)]


@contextlib.contextmanager
def gated_proxy(target: str) -> Iterator[tuple[str, Any]]:
    """An HTTP proxy to `target` that holds object listings (`GET .../o?...`) until `gate.set()`.

    Yields (proxy URL, gate): point STORAGE_EMULATOR_HOST at the URL to make fetching a
    folder as slow as a test needs, deterministically. (Listings, not downloads: the client
    downloads from each object's mediaLink, which names the emulator itself.)
    """
    import http.client
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlsplit

    gate = threading.Event()
    upstream = urlsplit(target)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _forward(self) -> None:
            if self.command == "GET" and re.search(r"/storage/v1/b/[^/]+/o(\?|$)", self.path):
                gate.wait(120)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(self.command, self.path, body, headers)
            reply = conn.getresponse()
            data = reply.read()
            self.send_response(reply.status)
            for k, v in reply.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", gate
    finally:
        gate.set()
        server.shutdown()
        server.server_close()


def upload_dir(bucket: Any, local_dir: str, prefix: str) -> None:
    """Every file under `local_dir` to `bucket` under `prefix/`, keeping relative paths."""
    import os

    for root, _, names in os.walk(local_dir):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), local_dir)
            bucket.blob(f"{prefix}/{rel}").upload_from_filename(os.path.join(root, name))


class Webhook:
    """A webhook (Slack's, a chat's): records each JSON POST as (path, content type, body), answers `status`."""

    def __init__(self, status: int = 200, path: str = "/hook"):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.status, self.posts = status, []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts.append((self.path, self.headers["Content-Type"], json.loads(body)))
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
