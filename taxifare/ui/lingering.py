"""uvicorn's h11 protocol with a lingering close after a refused request.

uvicorn answers a request it cannot parse (a request line over the size limit, bad bytes) with a
400 and closes at once. Closing a socket that still holds unread bytes from the client makes the
kernel reset the connection, and a reset drops the answer from the client's receive buffer before
it can read it: the client sees "connection reset", not the 400. HTTP servers close such a
connection gracefully instead (RFC 9112, section 9.6): stop writing, then read and drop what the
client still sends, for a bounded time, then close. uvicorn has no option for it, hence this.
"""

from __future__ import annotations

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

LINGER_SECONDS = 2.0  # at most this long reading (and dropping) after the answer


class LingeringH11Protocol(H11Protocol):
    lingering = False

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # the rest of a refused request: read, so the close is not a reset, and dropped
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's 400 (the same answer), then the lingering close in place of its immediate one."""
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                      h11.Data(data=msg.encode("ascii")), h11.EndOfMessage()):  # fmt: skip
            self.transport.write(self.conn.send(event) or b"")
        self.lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client reads the answer to its end
        self.loop.call_later(LINGER_SECONDS, self.transport.close)  # its own close ends it sooner (eof_received)
