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
