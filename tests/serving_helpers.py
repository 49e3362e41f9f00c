"""Start `taxifare serve` as a process on a free port and talk HTTP to it; or run it in a thread, to look inside."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from taxifare.runs import watchdog

LISTENING = re.compile(r"listening on http://([\d.]+):(\d+)")
# One valid trip, inside the schema's ranges.
TRIP: dict[str, Any] = {
    "pickuplon": -73.98,
    "pickuplat": 40.75,
    "dropofflon": -73.95,
    "dropofflat": 40.78,
    "passengers": 2,
}


class ServerProcess:
    """`taxifare serve ARGS` (on a free port unless `env` names one, as AIP_HTTP_PORT does)."""

    def __init__(self, args: list[str], log_path: str, env: dict[str, str] | None = None):
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        port = [] if env and "AIP_HTTP_PORT" in env else ["--port", "0"]
        cmd = [sys.executable, "-m", "taxifare.cli", "serve", *port, *args]
        self.proc = subprocess.Popen(
            cmd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        )
        self.host, self.port = self._wait_listening(timeout=90)

    def _wait_listening(self, timeout: float) -> tuple[str, int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = LISTENING.search(self.output())
            if match:
                return match.group(1), int(match.group(2))
            if self.proc.poll() is not None:
                raise RuntimeError(f"taxifare serve exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"taxifare serve did not listen within {timeout}s:\n{self.output()[-3000:]}")

    def output(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """Where to connect: loopback when the server binds every address (0.0.0.0)."""
        return "127.0.0.1" if self.host == "0.0.0.0" else self.host

    def wait_ready(self, version: str | None = None, timeout: float = 60, route: str = "/health/ready") -> dict:
        deadline = time.monotonic() + timeout
        body: Any = None
        while time.monotonic() < deadline:
            status, _, body = self.call("GET", route)
            if status == 200 and (version is None or body["modelVersionId"] == version):
                return body
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise TimeoutError(f"not ready ({body}) after {timeout}s:\n{self.output()[-3000:]}")

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        """One request on a fresh connection; body: bytes as-is, anything else as JSON."""
        conn = http.client.HTTPConnection(self.address, self.port, timeout=30)
        try:
            data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            conn.request(method, path, data, headers or {"Content-Type": "application/json"})
            response = conn.getresponse()
            raw = response.read()
            parsed = json.loads(raw) if raw else None
            return response.status, {k.lower(): v for k, v in response.getheaders()}, parsed
        finally:
            conn.close()

    def raw(self, data: bytes, timeout: float = 10, read_until_close: bool = True) -> bytes:
        """Send raw bytes on one socket; return everything the server sends until it closes (or times out)."""
        with socket.create_connection((self.address, self.port), timeout=timeout) as sock:
            sock.sendall(data)
            chunks = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
                if not read_until_close:
                    break
            return b"".join(chunks)

    def stop(self) -> None:
        watchdog.stop(self.proc, 15)
        self.log.close()


def responses(data: bytes, bodiless: Sequence[bool] = ()) -> list[tuple[int, bytes]]:
    """Split raw HTTP/1.1 responses (with Content-Length) into (status, body) pairs.

    `bodiless[i]` says the i-th answers a HEAD: its Content-Length is not followed by a body.
    """
    out: list[tuple[int, bytes]] = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(out) < len(bodiless) and bodiless[len(out)]:
            length = 0
        out.append((status, rest[:length]))
        data = rest[length:]
    return out


def read_until_close(sock: socket.socket, timeout: float = 30) -> bytes:
    """Everything the server sends until it closes; TimeoutError if `timeout` seconds pass without a byte."""
    sock.settimeout(timeout)
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def send_until_stopped(
    sock: socket.socket, requests: Iterator[bytes], limit: int, stalled_s: float = 1.0, seconds: float = 60
) -> tuple[int, int, bytes, bool]:
    """Send requests back to back and read nothing, until the server stops taking bytes for `stalled_s`.

    Stops too after `limit` bytes or `seconds`. Returns the bytes sent, the requests begun, the
    unsent rest of the last one, and whether the server stopped taking them.
    """
    sock.setblocking(False)
    sent = begun = 0
    pending = memoryview(b"")
    deadline = time.monotonic() + seconds
    stalled_since: float | None = None
    while sent < limit and time.monotonic() < deadline:
        if not pending:
            pending, begun = memoryview(next(requests)), begun + 1
        try:
            n = sock.send(pending)
        except BlockingIOError:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since >= stalled_s:
                return sent, begun, bytes(pending), True
            time.sleep(0.01)
            continue
        pending, sent, stalled_since = pending[n:], sent + n, None
    return sent, begun, bytes(pending), False


T = TypeVar("T")


class LoopServer:
    """`taxifare serve`'s App and connections on an event loop in a thread (uvloop when installed, as `serve` runs).

    It serves an empty registry: no model and no TensorFlow, every route but predict answering
    as usual (predict says 503). For the tests that look inside: `on_loop(fn)` runs fn there.
    """

    def __init__(self, registry: str, **options: Any):
        from taxifare.serving.app import App
        from taxifare.serving.protocol import Connection

        try:
            import uvloop

            self.loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:
            self.loop = asyncio.new_event_loop()
        self.app = App(self.loop, registry=registry, **options)
        create = self.loop.create_server(lambda: Connection(self.app), "127.0.0.1", 0)
        self.server = self.loop.run_until_complete(create)
        self.address, self.port = self.server.sockets[0].getsockname()[:2]
        self.app.start()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def on_loop(self, fn: Callable[[], T]) -> T:
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as err:
                done.set_exception(err)

        self.loop.call_soon_threadsafe(run)
        return done.result(timeout=10)

    def stop(self) -> None:
        def close() -> None:
            self.server.close()
            for conn in list(self.app.connections):
                if conn.transport is not None:
                    conn.transport.abort()
            self.app.stop()

        self.on_loop(close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
