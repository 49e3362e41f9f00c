"""The console's only way to files on disk: a path from a URL is resolved inside one root or not at all.

A URL names a file by a path relative to a run's folder. It is refused (None, which the app
turns into a 404 that says nothing of what exists) when it is not a plain relative path (empty,
absolute, `.` or `..` segments, NUL, backslashes, too long) or when, links followed, it lands
outside the root. Files are opened without following a final link and without blocking on a
pipe or device, and only regular files are read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

MAX_PATH = 1024
CHUNK = 64 << 10


def inside(root: str, relative: str) -> str | None:
    """The real path of `relative` under `root`, or None if it is not a plain relative path that stays there."""
    if not relative or len(relative) > MAX_PATH or "\x00" in relative or "\\" in relative:
        return None
    parts = relative.split("/")
    if relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return None
    try:
        base = os.path.realpath(root)
        real = os.path.realpath(os.path.join(base, *parts))
    except (OSError, ValueError):
        return None
    return real if real.startswith(base + os.sep) else None


def within(root: str, path: str) -> str | None:
    """`path` (absolute, e.g. an artifact's uri from a record) relative to `root` if it lies inside it."""
    if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
        return None
    try:
        base, real = os.path.realpath(root), os.path.realpath(path)
    except (OSError, ValueError):
        return None
    return os.path.relpath(real, base) if real.startswith(base + os.sep) else None


@dataclass
class Opened:
    fd: int
    size: int

    def chunks(self, limit: int | None = None) -> Iterator[bytes]:
        """The file's bytes (up to `limit`), then closes it."""
        left = self.size if limit is None else min(limit, self.size)
        try:
            while left > 0:
                data = os.read(self.fd, min(CHUNK, left))
                if not data:
                    break
                left -= len(data)
                yield data
        finally:
            os.close(self.fd)

    def read(self, offset: int, limit: int) -> bytes:
        try:
            return os.pread(self.fd, limit, offset)
        finally:
            os.close(self.fd)


def open_regular(path: str) -> Opened | None:
    """A regular file opened for reading (no final link followed, no blocking open); None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None
    return Opened(fd, info.st_size)


def read_head(path: str, limit: int = 4096) -> bytes | None:
    opened = open_regular(path)
    return None if opened is None else opened.read(0, limit)


def tail(path: str, offset: int, limit: int, whole_lines: bool = True) -> tuple[bytes, int, int] | None:
    """A growing file's bytes from `offset` (negative: from that many before the end, at a line's start):
    (bytes, the offset after them, the file's size). With `whole_lines`, a last line not ended yet is
    left for the next call, unless it alone is over `limit`."""
    opened = open_regular(path)
    if opened is None:
        return None
    size = opened.size
    start = max(size + offset, 0) if offset < 0 else min(offset, size)
    data = opened.read(start, min(limit, size - start))
    if offset < 0 and start > 0 and (nl := data.find(b"\n")) >= 0:
        data, start = data[nl + 1 :], start + nl + 1
    if whole_lines and data and not data.endswith(b"\n"):
        nl = data.rfind(b"\n")
        if nl >= 0:
            data = data[: nl + 1]
        elif len(data) < limit:
            data = b""
    return data, start + len(data), size


def kind(name: str, head: bytes) -> str:
    """What a file is, from its name and first bytes: html, svg, png, jpeg, text or binary."""
    lower, start = name.lower(), head.lstrip(b"\xef\xbb\xbf \t\r\n")[:256].lower()
    if start.startswith(b"\x89png\r\n\x1a\n"):
        return "png"
    if start.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if start.startswith((b"<!doctype html", b"<html")) or lower.endswith((".html", ".htm")):
        return "html"
    if start.startswith(b"<svg") or (start.startswith(b"<?xml") and b"<svg" in head[:1024]):
        return "svg"
    if b"\x00" in head:
        return "binary"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:  # not merely a character cut at the end of the sample
            return "binary"
    return "text"


def listing(path: str, limit: int = 500) -> list[tuple[str, bool, int]] | None:
    """A folder's entries (name, is a folder, size), folders first; links are listed as files, not followed."""
    try:
        entries = list(os.scandir(path))
    except (OSError, ValueError):
        return None
    rows = []
    for entry in entries[:limit]:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        rows.append((entry.name, stat.S_ISDIR(info.st_mode), info.st_size))
    return sorted(rows, key=lambda r: (not r[1], r[0]))
