"""Chunk sizes over the body limit, caught as they arrive rather than after the body deadline.

llhttp (through httptools) checks chunked framing but tells no callback a chunk's size, so a
client could announce a chunk far over the limit, send a little of it and hold the connection
until the body deadline. `SizeLines.spans` finds, in each slice about to be fed to llhttp, the
runs of hex digits right after a line feed that could be such a size. The connection feeds the
slice up to a run, then the run and the byte after it: in a chunked body, a run that added no
body bytes and that llhttp accepted followed by ';' or CR is a chunk-size line (llhttp refuses a
field name followed by either, and a line feed inside a chunk extension), so its value is the
chunk's size, exactly.

Only runs with at least as many digits as the limit has in hex are looked at, at most MAX_CHECKS
a slice, so a flood of 1-byte chunks costs one translate and one find per slice (about 5% of
llhttp's own work on it). A run cut by the end of a slice is carried into the next.
"""

from __future__ import annotations

import re
import string

_HEX, _LF = ord("h"), ord("\n")
# Every byte mapped to its class: 'h' for a hex digit, LF kept, '.' for the rest.
CLASSES = bytes(_HEX if chr(c) in string.hexdigits else c if c == _LF else ord(".") for c in range(256))
_RUN = re.compile(rb"h*")
MAX_CHECKS = 4  # runs checked per slice besides the ones at its edges; a legit body has about one per MiB


class SizeLines:
    """Where chunk sizes that could pass the limit are, slice by slice, for one connection."""

    def __init__(self, max_body_bytes: int):
        self.needle = b"\n" + b"h" * len(f"{max_body_bytes:x}")
        # Digits of a possible size line the previous slice ended in (b"": it ended with a line feed).
        self.pending: bytes | None = None

    def spans(self, piece: memoryview) -> list[tuple[int, int]]:
        """(start, end) of the runs of hex digits to check in `piece`, in order, not overlapping."""
        classes = piece.tobytes().translate(CLASSES)
        spans = []
        start = 0
        if self.pending is not None:  # the previous slice's run goes on here
            start = _run_end(classes, 0)
            spans.append((0, start))
        while len(spans) < MAX_CHECKS:
            at = classes.find(self.needle, start)
            if at < 0:
                break
            end = _run_end(classes, at + 1)
            if end == len(classes):
                break  # the slice ends in it: the tail, below
            spans.append((at + 1, end))
            start = end
        tail = classes.rfind(b"\n") + 1
        if tail and tail >= start and _run_end(classes, tail) == len(classes):
            spans.append((tail, len(classes)))  # a size line may go on in the next slice
        return spans


def _run_end(classes: bytes, at: int) -> int:
    match = _RUN.match(classes, at)
    assert match is not None  # h* always matches
    return match.end()
