"""Find and parse trip CSV files (local, gs://, https://) into validated numpy columns.

No TensorFlow here: data staging and evaluation of the baseline use this module too.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import glob
import gzip
import io
import os
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from taxifare.errors import DataError, UsageError
from trainer import features
from trainer.features import FEATURES, KEY, LABEL

Columns = dict[str, np.ndarray]
NUMERIC = (LABEL, *FEATURES)
_NUMBER_RE = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
BLOCK_BYTES = 8 << 20
SNIFF_BYTES = 64 << 10  # line 1 is a header only if it ends within this many bytes
GZIP_MAGIC = b"\x1f\x8b"


@dataclasses.dataclass
class ReadStats:
    rows: int = 0
    kept: int = 0
    rejected: Counter[str] = dataclasses.field(default_factory=Counter)
    files: list[str] = dataclasses.field(default_factory=list)

    def add(self, other: ReadStats) -> None:
        self.rows += other.rows
        self.kept += other.kept
        self.rejected.update(other.rejected)
        self.files.extend(other.files)


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
    if path.startswith("gs://"):
        from trainer import gcs

        return gcs.open_read(path)
    if path.startswith(("https://", "http://")):
        try:
            return urllib.request.urlopen(path, timeout=60)
        except (urllib.error.URLError, TimeoutError) as err:
            raise DataError(f"{path}: cannot download it ({err})") from err
    return open(path, "rb")


def _sniff_header(path: str, stream: IO[bytes]) -> tuple[bytes, list[str] | None, int]:
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
def _open_data(path: str) -> Iterator[IO[bytes]]:
    """The file's bytes, decompressed when it is gzip (by its magic number, whatever its name)."""
    with open_binary(path) as raw:
        buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[type-var]
        if buffered.peek(2)[:2] != GZIP_MAGIC:
            yield buffered
            return
        with gzip.GzipFile(fileobj=buffered, mode="rb") as unzipped:
            yield unzipped  # type: ignore[misc]


def iter_file(
    path: str, *, require_label: bool = True, block_bytes: int = BLOCK_BYTES
) -> Iterator[tuple[Columns, ReadStats]]:
    """Yield (valid columns, stats of this block) for one CSV file (gzip too), block by block."""
    with _open_data(path) as raw:
        try:
            prefix, header, data_start = _sniff_header(path, raw)
        except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
            raise DataError(f"{path}: cannot be read ({err})") from err
        if header is None:
            names = list(features.CSV_COLUMNS)
        else:
            missing = [c for c in ((LABEL,) if require_label else ()) + FEATURES if c not in header]
            if missing:
                raise DataError(
                    f"{path}: header lacks column(s) {', '.join(missing)}; "
                    f"expected {', '.join(features.CSV_COLUMNS)} (any order)"
                )
            names = _dedupe(header)
        rest = _Prefixed(prefix[data_start:], raw)
        try:
            yield from _parse(path, rest, names, require_label, block_bytes)
        except pa.ArrowInvalid as err:
            if "Empty CSV" in str(err):
                raise DataError(f"{path}: no data rows; is the file empty?") from err
            raise DataError(f"{path}: cannot be read as CSV ({printable(str(err))})") from err
        except (OSError, EOFError) as err:
            raise DataError(f"{path}: cannot be read ({err}); a truncated gzip file?") from err


def _parse(
    path: str, rest: IO[bytes] | _Prefixed, names: list[str], require_label: bool, block_bytes: int
) -> Iterator[tuple[Columns, ReadStats]]:
    malformed = 0

    def on_invalid(_row: object) -> str:
        nonlocal malformed
        malformed += 1
        return "skip"

    wanted = [c for c in (*NUMERIC, KEY) if c in names]
    reader = pacsv.open_csv(
        rest,
        read_options=pacsv.ReadOptions(column_names=names, block_size=block_bytes),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            include_columns=wanted,
            column_types={c: pa.binary() for c in wanted},  # UTF-8 is checked per row, below
            strings_can_be_null=True,
        ),
    )
    offset = 0
    for batch in reader:
        columns, stats = _validate_batch(batch, path, offset, require_label, getattr(rest, "replaced", False))
        offset += batch.num_rows
        if malformed:
            stats.rejected["malformed_row"] += malformed
            stats.rows += malformed
            malformed = 0
        yield columns, stats
    if malformed:
        yield _empty(require_label), ReadStats(rows=malformed, rejected=Counter(malformed_row=malformed))


def _dedupe(names: list[str]) -> list[str]:
    seen: Counter[str] = Counter()
    out = []
    for name in names:
        out.append(name if not seen[name] else f"{name}.{seen[name]}")
        seen[name] += 1
    return out


def _empty(require_label: bool) -> Columns:
    cols: Columns = {c: np.zeros(0, np.float64) for c in NUMERIC if require_label or c != LABEL}
    cols[KEY] = np.zeros(0, dtype=object)
    return cols


def _to_float(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Parse strings to float64; return values (NaN where missing) and a not-a-number mask."""
    try:
        values = pc.cast(col, pa.float64())
        return values.to_numpy(zero_copy_only=False), np.zeros(len(col), dtype=bool)
    except pa.ArrowInvalid:
        ok = pc.fill_null(pc.match_substring_regex(col, _NUMBER_RE), True)
        clean = pc.if_else(ok, col, pa.scalar(None, pa.string()))
        values = pc.cast(clean, pa.float64()).to_numpy(zero_copy_only=False)
        return values, ~ok.to_numpy(zero_copy_only=False)


def _utf8(batch: pa.RecordBatch, replaced: bool = False) -> tuple[dict[str, pa.Array], np.ndarray]:
    """The batch's columns as strings, and the rows holding bytes that are not UTF-8 (emptied; each one bad row).
    `replaced`: the stream replaced such bytes with U+FFFD (_Prefixed), so a field holding it is one."""
    bad = np.zeros(batch.num_rows, dtype=bool)
    out = {}
    for name in batch.schema.names:
        col = batch.column(name)
        if replaced:
            marked = pc.fill_null(pc.match_substring(col.cast(pa.string()), "\ufffd"), False)
            bad |= marked.to_numpy(zero_copy_only=False)
        try:
            out[name] = col.cast(pa.string())
        except pa.ArrowInvalid:  # rare: find the rows, one Python pass over this column only
            values = col.to_pylist()
            invalid = np.array([v is not None and not _is_utf8(v) for v in values], dtype=bool)
            bad |= invalid
            out[name] = pa.array([None if x else v for v, x in zip(values, invalid, strict=True)], pa.binary())
            out[name] = out[name].cast(pa.string())
    return out, bad


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _validate_batch(
    batch: pa.RecordBatch, path: str, offset: int, require_label: bool, replaced: bool = False
) -> tuple[Columns, ReadStats]:
    strings, undecodable = _utf8(batch, replaced)
    columns: Columns = {}
    unparsable = np.zeros(batch.num_rows, dtype=bool)
    for name in NUMERIC:
        if name in strings:
            values, bad = _to_float(strings[name])
            columns[name] = values
            unparsable |= bad
    if KEY in strings:
        keys = strings[KEY].to_numpy(zero_copy_only=False).astype(object)
        missing_key = np.array([k is None for k in keys], dtype=bool)
        if missing_key.any():
            keys[missing_key] = _row_keys(path, offset, batch.num_rows)[missing_key]
    else:
        keys = _row_keys(path, offset, batch.num_rows)
    keep, rejected = features.validate(columns, unparsable)
    if undecodable.any():  # counted once, as malformed, whatever else is wrong with them
        rejected = features.validate({n: v[~undecodable] for n, v in columns.items()}, unparsable[~undecodable])[1]
        rejected["malformed_row"] += int(undecodable.sum())
        keep &= ~undecodable
    kept = {name: values[keep] for name, values in columns.items()}
    kept[KEY] = keys[keep]
    stats = ReadStats(rows=batch.num_rows, kept=int(keep.sum()), rejected=rejected)
    return kept, stats


def _row_keys(path: str, offset: int, n: int) -> np.ndarray:
    base = os.path.basename(path)
    return np.array([f"{base}:{offset + i}" for i in range(n)], dtype=object)


def iter_chunks(
    paths: Iterable[str],
    *,
    require_label: bool = True,
    max_bad_fraction: float = features.DEFAULT_MAX_BAD_FRACTION,
    block_bytes: int = BLOCK_BYTES,
    totals: ReadStats | None = None,
) -> Iterator[Columns]:
    """Stream valid rows of several files; fail on a file whose bad share is too high.

    `totals`, when given, accumulates the row counts as the stream is consumed.
    """
    for path in paths:
        file_stats = ReadStats(files=[path])
        for columns, stats in iter_file(path, require_label=require_label, block_bytes=block_bytes):
            file_stats.add(stats)
            if len(columns[KEY]):
                yield columns
        check_bad_fraction(file_stats, path, max_bad_fraction)
        if totals is not None:
            totals.add(file_stats)


def check_bad_fraction(stats: ReadStats, path: str, max_bad_fraction: float) -> None:
    if stats.rows == 0:
        raise DataError(f"{path}: no data rows; is the file empty?")
    bad = stats.rows - stats.kept
    if bad / stats.rows > max_bad_fraction:
        reasons = ", ".join(f"{r}={n}" for r, n in stats.rejected.most_common())
        raise DataError(
            f"{path}: {bad} of {stats.rows} rows ({bad / stats.rows:.0%}) are invalid "
            f"({reasons}), more than the allowed {max_bad_fraction:.0%}. Fix the data or raise "
            "--max_bad_fraction."
        )


def read_columns(
    spec: str | Sequence[str],
    *,
    require_label: bool = True,
    max_bad_fraction: float = features.DEFAULT_MAX_BAD_FRACTION,
) -> tuple[Columns, ReadStats]:
    """Read every valid row of the files `spec` names into memory."""
    totals = ReadStats()
    chunks = list(
        iter_chunks(expand_paths(spec), require_label=require_label, max_bad_fraction=max_bad_fraction, totals=totals)
    )
    return concat(chunks, require_label), totals


def concat(chunks: Sequence[Columns], require_label: bool = True) -> Columns:
    if not chunks:
        return _empty(require_label)
    return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}


def write_csv(columns: Columns, out: str | IO[bytes]) -> None:
    """Write columns as a CSV with the canonical header (label first, as the lab's files)."""
    names = [c for c in features.CSV_COLUMNS if c in columns]
    table = pa.table(
        {name: pa.array(columns[name], type=pa.string() if name == KEY else pa.float64()) for name in names}
    )
    pacsv.write_csv(table, out)


class _Prefixed(io.RawIOBase):
    """A stream that replays bytes already read (the sniffed first line) before the rest, with bytes that
    are not UTF-8 replaced by U+FFFD (`replaced` says so): pyarrow decodes a malformed row's text for its
    handler, and failed on such bytes with a traceback and the raw bytes in its message. A field holding
    U+FFFD is then one malformed row (`_utf8`), as a row of undecodable bytes always was."""

    def __init__(self, prefix: bytes, rest: IO[bytes]):
        self._pending = b""
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
