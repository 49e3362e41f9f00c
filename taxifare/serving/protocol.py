"""HTTP/1.1 for `taxifare serve`: llhttp (through httptools) parses, this module only keeps count.

llhttp is strict where h11 is (no `0x` chunk sizes, no whitespace but SP/HTAB around values, no
bare LF, no Content-Length with Transfer-Encoding, no duplicate Content-Length, no obs-fold) and
costs CPU linear in what it is fed. On top of it, for each request:

- the head (request line and headers) and the trailers are at most MAX_HEAD_BYTES (431 / 400);
- chunked framing (sizes, extensions, CRLFs) is at most FRAMING_PER_BYTE bytes per body byte
  (1-byte chunks take 5), so chunk extensions cannot multiply the traffic a body costs (400);
- the body is at most `max_body_bytes`, announced, chunked, or in one chunk's size (413; `chunks`);
- the only transfer coding is `chunked`, alone, on HTTP/1.0 or 1.1 (400 otherwise: what a
  client sends never gets a 5xx; 503 when every connection is busy is the server's state);
- the head must arrive within `head_seconds` of its first byte, the body within `body_seconds`
  of the head's end (408), not counting time the server was not reading.

Requests on one connection are parsed as they arrive (pipelining) and answered in order, one at
a time. What a connection holds is bounded whatever its client does: answering pauses while more
than WRITE_HIGH_BYTES of answers wait for the client to take them (asyncio's pause_writing), and
reading pauses while more than MAX_PIPELINED requests or a body's worth of bytes wait, so a client
that never reads is stopped, not buffered; answers that do not move for `send_seconds` drop the
connection. A client that half-closes after its requests still gets their answers. The cap on
connections, and who makes room at it, is `connections`' business.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import httptools

from taxifare.serving.chunks import SizeLines
from taxifare.serving.messages import HttpError, Refusal, Request, response, too_large

if TYPE_CHECKING:
    from taxifare.serving.app import App
    from taxifare.serving.connections import Deadlines

MAX_HEAD_BYTES = 64 << 10
FRAMING_PER_BYTE = 12  # chunked framing allowed per body byte: "1\r\nx\r\n" is 5, plus a short extension
SLICE_BYTES = 16 << 10  # data is fed to the parser this much at a time, so bytes are counted per request
# A connection parses at most this much per turn of the event loop, then lets the others in: a
# client sending 1-byte chunks at full speed holds the loop ~1.5 ms at a time, not for its whole body.
# Reading pauses until what was received is parsed, so the backlog is one read at most.
TURN_BYTES = 64 << 10
LINGER_SECONDS = 2.0
MAX_PIPELINED = 64  # parsed requests waiting on one connection before it stops reading
# Unsent answers a connection may hold before it stops answering (and so, soon, reading): asyncio's
# default mark, said here because it is the bound. One answer may go past it.
WRITE_HIGH_BYTES = 64 << 10


@dataclass
class _Incoming:
    """The request being parsed: what came so far, and the bytes it has cost."""

    started: float
    url: bytearray = field(default_factory=bytearray)
    head_bytes: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    head_done: float | None = None  # when the head was complete
    body_bytes: int = 0
    fed: int = 0  # bytes of the slices this request was parsed from (an upper bound on its size)
    chunked: bool = False
    head: bool = False  # a HEAD: its answer, whatever it is, has no body


class Connection(asyncio.Protocol):
    """One client connection: feeds llhttp, queues complete requests, answers them in order."""

    def __init__(self, app: App):
        self.app = app
        self.transport: asyncio.Transport | None = None
        self.incoming: _Incoming | None = None
        self.queue: deque[Request | Refusal] = deque()  # parsed, waiting for their turn
        self.queued_bytes = 0
        self.failed = False  # an error answer is queued: nothing after it is parsed
        self.busy = False  # a request is being answered
        self.closed = False
        self.lingering = False
        self.paused = False  # reading paused: too much waits to be answered
        self.write_paused = False  # answering paused: the client is not taking its answers
        self.eof = False  # the client half-closed: answer what came, then close
        self.answering_head = False  # the request being answered is a HEAD
        self.idle_since = app.clock
        self._written = self._drained = 0  # bytes written; written less unsent when last looked
        self._moved_at = app.clock  # when unsent answers were last seen to move
        self._slice = 0
        self._backlog = memoryview(b"")  # received, not parsed yet: the next turns' share
        self._yielding = False  # reading paused until the backlog is parsed, a turn at a time
        self.sizes = SizeLines(app.max_body_bytes)
        # llhttp calls on_body once per chunk: a bytearray's extend is the cheapest callback there
        # is (no Python frame, nothing to join), so 8 MiB of 1-byte chunks cost well under a second.
        self.body = bytearray()
        self.on_body = self.body.extend
        self.parser = httptools.HttpRequestParser(self)  # reads the callbacks above once, now

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if not self.app.connections.admit(self):
            cap = self.app.connections.cap
            err = HttpError(503, f"the server is at its limit of {cap} connections, each with a request; retry")
            self.transport.write(response(err.status, err.body(), False, (), self.app.date))
            self.transport.close()
            self.closed = True
            return
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_BYTES)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.app.connections.discard(self)
        # Let what the client sent go now, not when the collector breaks the parser's reference cycle.
        self.queue.clear()
        self.body.clear()
        self._backlog = memoryview(b"")
        self.incoming = None

    def pause_writing(self) -> None:
        self.write_paused = True  # process() answers nothing more until the client takes what it has

    def resume_writing(self) -> None:
        self.write_paused = False
        self.process()

    def eof_received(self) -> bool:
        """The client half-closed: answer what it sent, then close (True keeps the transport open to write)."""
        self.eof = True
        self._close_if_done()
        return True

    def data_received(self, data: bytes) -> None:
        if self.lingering or self.failed or self.closed:
            return  # the answer (413, 400) is queued or out: drop the rest of what the client sends
        self._backlog = memoryview(bytes(self._backlog) + data if self._backlog else data)
        self._feed()

    def _feed(self) -> None:
        """Parse at most TURN_BYTES now; the rest waits for the loop's next turn, reading paused meanwhile."""
        if self.closed or self.lingering or self.failed:
            self._backlog = memoryview(b"")
            return
        view, self._backlog = self._backlog[:TURN_BYTES], self._backlog[TURN_BYTES:]
        for start in range(0, len(view), SLICE_BYTES):
            self._parse_slice(view[start : start + SLICE_BYTES])
            if self.failed:
                self._backlog = memoryview(b"")
                break
        if self._backlog:
            if not self._yielding and self.transport is not None:
                self._yielding = True
                self.transport.pause_reading()
            self.app.loop.call_soon(self._feed)
        elif self._yielding:  # the backlog is parsed: read again (unless paused for a full queue)
            self._yielding = False
            if not self.paused and self.transport is not None:
                self.transport.resume_reading()
        self._pause_if_full()
        self.process()

    def _parse_slice(self, piece: memoryview) -> None:
        """Feed one slice, stopping at each run of digits that could be a chunk size over the limit."""
        done = 0
        for start, end in self.sizes.spans(piece):
            self._parse(piece[done:start])
            if not self.failed:
                done = self._parse_size(piece, start, end)
            if self.failed:
                return
        self._parse(piece[done:])

    def _parse_size(self, piece: memoryview, start: int, end: int) -> int:
        """Feed a run of hex digits and the byte after it; a chunk size past the body limit is a 413."""
        req, before = self.incoming, len(self.body)
        in_chunks = req is not None and req.chunked and req.head_done is not None
        digits = (self.sizes.pending or b"") + bytes(piece[start:end])
        stop = min(end + 1, len(piece))
        self._parse(piece[start:stop])
        self.sizes.pending = None
        if self.failed or not in_chunks or self.incoming is not req or len(self.body) != before:
            return stop  # body bytes, a header, or refused already
        if end == len(piece):
            self.sizes.pending = digits.lstrip(b"0")  # the size line goes on in the next slice
        elif piece[end] in b";\r" and int(digits or b"0", 16) > self.app.max_body_bytes - before:
            self._fail(too_large(f"a chunk of {int(digits, 16):,} bytes after {before:,}", self.app.max_body_bytes))
        return stop

    def _parse(self, part: memoryview) -> None:
        """Feed llhttp; whatever it or a callback refuses becomes the answer."""
        if not part:
            return
        self._slice = len(part)
        try:
            self.parser.feed_data(part)
            if self.incoming is not None:
                self._charge(self.incoming)
        except HttpError as err:
            self._fail(err)
        except httptools.HttpParserUpgrade:
            self._fail(HttpError(400, "protocol upgrades and CONNECT are not supported here"))
        except httptools.HttpParserCallbackError as err:
            cause = err.__context__
            self._fail(cause if isinstance(cause, HttpError) else HttpError(400, f"malformed request: {err}"))
        except httptools.HttpParserError as err:
            self._fail(HttpError(400, f"malformed HTTP: {err}"))

    # llhttp callbacks (an HttpError raised here becomes the answer)

    def on_message_begin(self) -> None:
        self.incoming = _Incoming(started=self.app.clock)

    def on_url(self, url: bytes) -> None:
        req = self._req()
        if not req.url:
            req.head = self.parser.get_method() == b"HEAD"
        req.url += url
        req.head_bytes += len(url)
        if req.head_bytes > MAX_HEAD_BYTES:
            raise HttpError(431, f"request head over {MAX_HEAD_BYTES} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        req = self._req()
        req.head_bytes += len(name) + len(value) + 4
        trailer = req.head_done is not None
        if req.head_bytes > MAX_HEAD_BYTES:
            if trailer:
                raise HttpError(400, f"request head and trailers over {MAX_HEAD_BYTES} bytes")
            raise HttpError(431, f"request head over {MAX_HEAD_BYTES} bytes")
        if not trailer:
            key = name.lower()
            req.headers[key] = req.headers[key] + b", " + value if key in req.headers else value

    def on_headers_complete(self) -> None:
        req = self._req()
        req.head_done = self.app.clock
        version = self.parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise HttpError(400, f"HTTP/{version} is not spoken here; use HTTP/1.1")
        coding = req.headers.get(b"transfer-encoding")
        if coding is not None and (coding.lower() != b"chunked" or version == "1.0"):
            raise HttpError(400, "the only Transfer-Encoding supported is chunked, alone, on HTTP/1.1")
        req.chunked = coding is not None
        length = int(req.headers.get(b"content-length", b"0") or b"0")
        if length > self.app.max_body_bytes:
            raise too_large(f"a body of {length:,} bytes", self.app.max_body_bytes)
        if req.headers.get(b"expect", b"").lower() == b"100-continue" and not (self.busy or self.queue):
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_message_complete(self) -> None:
        req = self._req()
        self._charge(req)
        try:
            url = bytes(req.url)
            path = (url if url[:1] == b"/" and b"?" not in url else httptools.parse_url(url).path).decode("ascii")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            raise HttpError(400, "malformed request target") from None
        self.incoming = None
        body = bytes(self.body)
        self.body.clear()
        method = self.parser.get_method().decode("ascii")
        keep_alive = self.parser.should_keep_alive()
        request = Request(method, path, keep_alive, body)
        self.queue.append(request)
        self.queued_bytes += request.size

    def _req(self) -> _Incoming:
        assert self.incoming is not None
        return self.incoming

    def _charge(self, req: _Incoming) -> None:
        """Count this slice against the request: its body, head, trailers and chunk framing are bounded."""
        req.fed += self._slice
        req.body_bytes = len(self.body)
        if req.body_bytes > self.app.max_body_bytes:
            raise too_large("the body", self.app.max_body_bytes)
        framing = req.fed - req.body_bytes
        if framing > MAX_HEAD_BYTES + FRAMING_PER_BYTE * req.body_bytes + 2 * SLICE_BYTES:
            if req.head_done is None:
                raise HttpError(431, f"request head over {MAX_HEAD_BYTES} bytes")
            raise HttpError(400, "chunk extensions or trailers too long")

    # answering

    def _fail(self, err: HttpError) -> None:
        """Queue the error answer after what is already queued, and read no further requests."""
        self.failed = True
        self.queue.append(Refusal(err, self.incoming is not None and self.incoming.head))
        self.incoming = None
        self.body.clear()

    def process(self) -> None:
        """Answer what waits, in order, while the client takes its answers; read again once all are answered."""
        while not (self.busy or self.closed or self.lingering or self.write_paused) and self.queue:
            item = self.queue.popleft()
            if isinstance(item, Refusal):
                self.answering_head = item.head
                self.send_error(item.error, keep_alive=False)
                break
            self.queued_bytes -= item.size
            self.answering_head = item.method == "HEAD"
            self.app.handle(self, item)
        if self.paused and not self.busy and not self.queue and self.transport is not None:
            self.paused = False
            if (req := self.incoming) is not None:  # its deadline starts again: the server was not reading
                req.started, req.head_done = self.app.clock, None if req.head_done is None else self.app.clock
            if not self._yielding:
                self.transport.resume_reading()
        self._close_if_done()

    def _pause_if_full(self) -> None:
        full = self.queued_bytes > self.app.max_body_bytes + MAX_HEAD_BYTES or len(self.queue) > MAX_PIPELINED
        if full and not self.paused and self.transport:
            self.transport.pause_reading()
            self.paused = True

    def _close_if_done(self) -> None:
        """After a half-close, close once everything the client sent is answered (a partial request never will be)."""
        if self.eof and not (self._backlog or self.busy or self.queue):
            self.close()

    def check_deadlines(self, now: float, limits: Deadlines) -> None:
        """Called once a second: a request too slow to arrive gets 408; an idle or stuck connection is closed."""
        self._check_sending(now, limits.send_seconds)
        req = self.incoming
        if req is None or self.failed:
            if self.idle() and now - self.idle_since > limits.idle_seconds:
                self.close()
        elif not self.paused:  # while the server is not reading, the client cannot be late
            if req.head_done is None and now - req.started > limits.head_seconds:
                self._fail(HttpError(408, f"the request head took over {limits.head_seconds:g} s to arrive"))
            elif req.head_done is not None and now - req.head_done > limits.body_seconds:
                self._fail(HttpError(408, f"the request body took over {limits.body_seconds:g} s to arrive"))
            self.process()

    def _check_sending(self, now: float, send_seconds: float) -> None:
        """Drop the connection when answers it holds have not moved to the client for send_seconds."""
        if self.transport is None:
            return
        unsent = self.transport.get_write_buffer_size()
        drained = self._written - unsent
        if not unsent or drained != self._drained:
            self._drained, self._moved_at = drained, now
        elif now - self._moved_at > send_seconds:
            self.transport.abort()

    def idle(self) -> bool:
        """No request arriving, waiting or being answered: closing it loses nothing the client is owed."""
        return self.incoming is None and not self.busy and not self.queue

    def in_flight(self) -> bool:
        """A request has begun arriving, waits, or is being answered on this connection."""
        return not self.closed and not self.lingering and not self.idle()

    def send_error(self, err: HttpError, keep_alive: bool) -> None:
        self.send(err.status, err.body(), keep_alive, err.headers)

    def send(
        self, status: int, body: bytes, keep_alive: bool = True, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        """Write one answer (its headers only, when the request was a HEAD)."""
        if self.closed or self.transport is None:
            return
        keep_alive = keep_alive and not self.app.draining
        self._write(response(status, body, keep_alive, headers, self.app.date, self.answering_head))
        self.idle_since = self.app.clock
        self.app.connections.touch(self)
        if not keep_alive:
            self._close_after_response()

    def _write(self, data: bytes) -> None:
        assert self.transport is not None
        self._written += len(data)
        self.transport.write(data)

    def _close_after_response(self) -> None:
        """Half-close and keep reading a moment: a client still sending its body then sees the answer, not a reset."""
        assert self.transport is not None
        self.lingering = True
        self.queue.clear()
        if self.paused or self._yielding:
            self.paused = self._yielding = False
            self.transport.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.app.loop.call_later(LINGER_SECONDS, self.transport.close)

    def evict(self) -> None:
        """Closed to make room for a new connection; answers its client left unread are dropped with it."""
        self.closed = True
        if self.transport is not None:
            (self.transport.abort if self.transport.get_write_buffer_size() else self.transport.close)()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
