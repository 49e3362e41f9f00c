"""Find and open data files (local, gs://, https://, standard input; gzip by its magic number), read the
first line to tell a header from data, and hand pyarrow the bytes with anything that is not UTF-8 replaced."""

from __future__ import annotations

import codecs
import contextlib
import csv
import glob
import gzip
import io
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import IO

from taxifare.errors import DataError, UsageError
from trainer import features
from trainer.features import FEATURES, LABEL

SNIFF_BYTES = 64 << 10  # line 1 is a header only if it ends within this many bytes
GZIP_MAGIC = b"\x1f\x8b"


def expand_paths(spec: str | Sequence[str]) -> list[str]:
    """Expand a file, glob, or comma-separated list (local, gs://, https://) to files.

    Fails at once, naming the pattern, when a file is missing or a glob matches nothing.
    """
    parts = [spec] if isinstance(spec, str) else list(spec)
    patterns = [p.strip() for part in parts for p in part.split(",") if p.strip()]
    if not patterns:
        raise UsageError("no data path given", "pass a file, a glob or a comma-separated list")
    found: list[str] = []
    for pattern in patterns:
        if pattern.startswith(("https://", "http://")):
            found.append(pattern)
        elif pattern.startswith("gs://"):
            from trainer import gcs

            matches = gcs.glob(pattern)
            if not matches:
                raise UsageError(f"no object matches {pattern!r}", "check the bucket and path")
            found.extend(matches)
        else:
            matches = sorted(glob.glob(os.path.expanduser(pattern)))
            matches = [m for m in matches if os.path.isfile(m)]
            if not matches:
                what = "no file matches" if glob.has_magic(pattern) else "file not found:"
                raise UsageError(f"{what} {pattern!r}", f"check the path (relative to {os.getcwd()})")
            found.extend(matches)
    return found


def open_binary(path: str) -> IO[bytes]:
    if path == "-":  # standard input (its own descriptor: closing this leaves fd 0 open)
        return os.fdopen(os.dup(0), "rb")
    if path.startswith("gs://"):
        from trainer import gcs

        return gcs.open_read(path)
    if path.startswith(("https://", "http://")):
        try:
            return urllib.request.urlopen(path, timeout=60)
        except (urllib.error.URLError, TimeoutError) as err:
            raise DataError(f"{path}: cannot download it ({err})") from err
    return open(path, "rb")


def sniff_header(path: str, stream: IO[bytes]) -> tuple[bytes, list[str] | None, int]:
    """Read a bounded prefix; return it, the canonical column names if line 1 is a header, and where
    the data starts in the prefix (after the header line, or 0)."""
    prefix = stream.read(SNIFF_BYTES)
    start = len(codecs.BOM_UTF8) if prefix.startswith(codecs.BOM_UTF8) else 0  # spreadsheet tools add one
    ends = [i for i in (prefix.find(b"\n", start), prefix.find(b"\r", start)) if i >= 0]
    if not ends:  # no line end in the prefix: far too long for a header, so data (or nothing)
        return prefix, None, 0
    end = min(ends)
    line = prefix[start:end].decode("utf-8", "replace")
    try:
        row = next(csv.reader([line]), [])
    except csv.Error as err:
        raise DataError(f"{path}: line 1 cannot be read as CSV ({err})") from None
    fields = [features.canonical_name(f) for f in row]
    if LABEL in fields or set(FEATURES) <= set(fields):
        after = end + 2 if prefix[end : end + 2] == b"\r\n" else end + 1
        return prefix, fields, after
    return prefix, None, 0


@contextlib.contextmanager
def open_data(path: str) -> Iterator[IO[bytes]]:
    """The file's bytes (`-`: standard input), decompressed when gzip (by its magic number, whatever its name)."""
    with open_binary(path) as raw:
        buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[type-var]
        if buffered.peek(2)[:2] != GZIP_MAGIC:
            yield buffered
            return
        with gzip.GzipFile(fileobj=buffered, mode="rb") as unzipped:
            yield unzipped  # type: ignore[misc]


class Prefixed(io.RawIOBase):
    """A stream that replays bytes already read (the sniffed first line) before the rest, with bytes that
    are not UTF-8 replaced by U+FFFD (`replaced` says so): pyarrow decodes a malformed row's text for its
    handler, and failed on such bytes with a traceback and the raw bytes in its message. A field holding
    U+FFFD is then one malformed row (`_block`), as a row of undecodable bytes always was."""

    def __init__(self, prefix: bytes, rest: IO[bytes]):
        self._rest = rest
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.replaced = False
        self._pending = self._clean(prefix)

    def readable(self) -> bool:
        return True

    def _clean(self, data: bytes, final: bool = False) -> bytes:
        if data.isascii() and not self._decoder.getstate()[0]:
            return data
        text = self._decoder.decode(data, final)
        if "\ufffd" in text:
            self.replaced = True
        return text.encode("utf-8")

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            data = self._rest.read(len(buffer))
            self._pending = self._clean(data, final=not data)
            if not data:
                break
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def printable(text: str, limit: int = 200) -> str:
    """A message quoting file content, safe for a terminal: control characters escaped, cut at `limit`."""
    shown = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
