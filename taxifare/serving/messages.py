"""What `protocol` hands `app` and what goes back: a parsed request, the errors a client causes, answers' bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from taxifare.errors import TaxifareError
from taxifare.serving import VERTEX_REQUEST_BYTES

STATUS = {
    100: ("Continue", ""),
    200: ("OK", ""),
    400: ("Bad Request", "INVALID_ARGUMENT"),
    404: ("Not Found", "NOT_FOUND"),
    405: ("Method Not Allowed", "METHOD_NOT_ALLOWED"),
    408: ("Request Timeout", "DEADLINE_EXCEEDED"),
    413: ("Content Too Large", "PAYLOAD_TOO_LARGE"),
    431: ("Request Header Fields Too Large", "INVALID_ARGUMENT"),
    500: ("Internal Server Error", "INTERNAL"),
    503: ("Service Unavailable", "UNAVAILABLE"),
}


class HttpError(TaxifareError):
    """A response the client caused: a status, a message, and where in the request it went wrong."""

    def __init__(
        self,
        status: int,
        message: str,
        instance: int | None = None,
        field: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ):
        super().__init__(message)
        self.status, self.instance, self.field, self.headers = status, instance, field, headers

    def body(self) -> bytes:
        error: dict[str, Any] = {"code": self.status, "status": STATUS[self.status][1], "message": self.message}
        if self.instance is not None:
            error["instance"] = self.instance
        if self.field is not None:
            error["field"] = self.field
        return json.dumps({"error": error}, ensure_ascii=True).encode()


def too_large(what: str, limit: int) -> HttpError:
    """413 for a body over the limit, saying what the limit is and how to live with it."""
    return HttpError(
        413,
        f"{what} is over this server's body limit of {limit:,} bytes: send fewer instances per request "
        f"(Vertex AI takes at most {VERTEX_REQUEST_BYTES:,} bytes), or start `taxifare serve` with a larger "
        "--max-body-bytes for local use",
    )


@dataclass
class Request:
    method: str
    path: str
    keep_alive: bool
    body: bytes

    @property
    def size(self) -> int:
        """Bytes it holds while it waits for its turn."""
        return len(self.path) + len(self.body)


@dataclass
class Refusal:
    """An error answer queued in a request's place; nothing after it on the connection is read."""

    error: HttpError
    head: bool  # the request was a HEAD: the answer has no body


def response(
    status: int, body: bytes, keep_alive: bool, headers: tuple[tuple[str, str], ...], date: str, head: bool = False
) -> bytes:
    """One answer's bytes; `head` (HEAD) keeps the headers, Content-Length included, and drops the body."""
    lines = [
        f"HTTP/1.1 {status} {STATUS[status][0]}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        f"Date: {date}",
        "Server: taxifare",
    ]
    lines.extend(f"{k}: {v}" for k, v in headers)
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else body)
