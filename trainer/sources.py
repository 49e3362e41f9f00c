"""Parse trip CSV files into validated numpy columns, block by block (data_files finds and opens them).

No TensorFlow here: data staging and evaluation of the baseline use this module too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from taxifare.errors import DataError
from trainer import data_files, features
from trainer.features import FEATURES, KEY, LABEL

Columns = dict[str, np.ndarray]
NUMERIC = (LABEL, *FEATURES)
_NUMBER_RE = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
BLOCK_BYTES = 8 << 20


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


@dataclasses.dataclass
class Block:
    """One block of a CSV file as read: its rows in file order, each with its reject reason or none.
    A row's number counts the file's data rows from 1 (not the header or blank lines). Malformed
    rows (the wrong number of fields) are listed apart, with their number and text, not in `rows`."""

    path: str
    rows: np.ndarray  # int64 row numbers
    columns: Columns  # the label (when read) and features as float64, NaN where missing
    keys: pa.Array  # the key column as strings, null where the file has none
    codes: np.ndarray  # features.reason_codes (-1: kept); rows with bytes that are not UTF-8: malformed_row
    malformed: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    offset: int = 0  # parsed (not malformed) rows before this block

    @property
    def keep(self) -> np.ndarray:
        return self.codes < 0

    def stats(self) -> ReadStats:
        rejected = features.SCHEMA.count_reasons(self.codes) + Counter(malformed_row=len(self.malformed))
        return ReadStats(rows=len(self.rows) + len(self.malformed), kept=int(self.keep.sum()), rejected=rejected)

    def row_keys(self, mask: np.ndarray | None = None, by_number: bool = False) -> pa.Array:
        """The keys of the rows `mask` picks (all by default). A row without one gets `<file>:<n>`: n its
        row number with `by_number`, else (what staging hashes, so kept as it was) its 0-based index
        among the file's parsed rows."""
        keys = self.keys if mask is None else self.keys.filter(pa.array(mask))
        if keys.null_count == 0:
            return keys
        ids = self.rows if by_number else np.arange(self.offset, self.offset + len(self.rows))
        ids = ids if mask is None else ids[mask]
        missing = keys.is_null().to_numpy(zero_copy_only=False)
        base = os.path.basename(self.path)
        made = pa.array([f"{base}:{n}" for n in ids[missing]], pa.string())
        return pc.replace_with_mask(keys, pa.array(missing), made)


def iter_blocks(
    path: str, *, require_label: bool = True, block_bytes: int = BLOCK_BYTES, stream: IO[bytes] | None = None
) -> Iterator[Block]:
    """Every row of one CSV file (gzip too; or `stream`, already open), block by block, with its number and
    reject reason. Without `require_label` the label is not read (prediction input: its value does not matter)."""
    with data_files.open_data(path) if stream is None else contextlib.nullcontext(stream) as raw:
        try:
            prefix, header, data_start = data_files.sniff_header(path, raw)
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
        rest = data_files.Prefixed(prefix[data_start:], raw)
        try:
            yield from _parse(path, rest, names, require_label, block_bytes)
        except pa.ArrowInvalid as err:
            if "Empty CSV" in str(err):
                raise DataError(f"{path}: no data rows; is the file empty?") from err
            raise DataError(f"{path}: cannot be read as CSV ({data_files.printable(str(err))})") from err
        except (OSError, EOFError) as err:
            raise DataError(f"{path}: cannot be read ({err}); a truncated gzip file?") from err


def iter_file(
    path: str, *, require_label: bool = True, block_bytes: int = BLOCK_BYTES
) -> Iterator[tuple[Columns, ReadStats]]:
    """Yield (valid columns, stats of this block) for one CSV file (gzip too), block by block."""
    for block in iter_blocks(path, require_label=require_label, block_bytes=block_bytes):
        keep = block.keep
        keys = block.row_keys(keep).to_numpy(zero_copy_only=False).astype(object)
        yield {**{name: values[keep] for name, values in block.columns.items()}, KEY: keys}, block.stats()


class _RowNumbers:
    """Row numbers, counting the malformed rows pyarrow skips (it reports them, maybe a block ahead)."""

    def __init__(self) -> None:
        self.next = 1
        self.pending: list[tuple[int, str]] = []

    def on_invalid(self, row: Any) -> str:
        self.pending.append((row.number if row.number is not None else 0, row.text))
        return "skip"

    def take(self, n: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """The numbers of the next `n` parsed rows, and the malformed rows among or before them."""
        candidates = np.arange(self.next, self.next + n + len(self.pending), dtype=np.int64)
        rows = candidates[~np.isin(candidates, [number for number, _ in self.pending])][:n]
        self.next = int(rows[-1]) + 1 if n else self.next
        mine = sorted(p for p in self.pending if p[0] < self.next)
        self.pending = [p for p in self.pending if p[0] >= self.next]
        return rows, mine


def _parse(
    path: str, rest: IO[bytes] | data_files.Prefixed, names: list[str], require_label: bool, block_bytes: int
) -> Iterator[Block]:
    numbers = _RowNumbers()
    wanted = [c for c in (*(NUMERIC if require_label else FEATURES), KEY) if c in names]
    reader = pacsv.open_csv(
        rest,
        # One thread: pyarrow then numbers the malformed rows it skips (and the cores stay for the model).
        read_options=pacsv.ReadOptions(column_names=names, block_size=block_bytes, use_threads=False),
        parse_options=pacsv.ParseOptions(invalid_row_handler=numbers.on_invalid),
        convert_options=pacsv.ConvertOptions(
            include_columns=wanted,
            column_types={c: pa.binary() for c in wanted},  # UTF-8 is checked per row, below
            strings_can_be_null=True,
        ),
    )
    offset = 0
    for batch in reader:
        rows, malformed = numbers.take(batch.num_rows)
        yield _block(batch, path, rows, malformed, offset, getattr(rest, "replaced", False))
        offset += batch.num_rows
    if numbers.pending:  # malformed rows after the last parsed one
        empty = pa.record_batch([pa.array([], pa.binary()) for _ in wanted], names=wanted)
        yield _block(empty, path, np.zeros(0, np.int64), sorted(numbers.pending), offset)


def _dedupe(names: list[str]) -> list[str]:
    seen: Counter[str] = Counter()
    out = []
    for name in names:
        out.append(name if not seen[name] else f"{name}.{seen[name]}")
        seen[name] += 1
    return out


def _empty(require_label: bool) -> Columns:
    return {**{c: np.zeros(0, np.float64) for c in NUMERIC if require_label or c != LABEL}, KEY: np.zeros(0, object)}


def _to_float(col: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse a column's bytes as float64: values (NaN where missing), the not-a-number rows, the rows whose
    bytes are not UTF-8. Straight from bytes when every value parses (the usual case); else as text."""
    try:
        values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        return values, np.zeros(len(col), dtype=bool), np.zeros(len(col), dtype=bool)
    except pa.ArrowInvalid:
        text, undecodable = _text(col)
    ok = pc.fill_null(pc.match_substring_regex(text, _NUMBER_RE), True)
    clean = pc.if_else(ok, text, pa.scalar(None, pa.string()))
    values = pc.cast(clean, pa.float64()).to_numpy(zero_copy_only=False)
    return values, ~ok.to_numpy(zero_copy_only=False), undecodable


def _text(col: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """A column's bytes as strings, and the rows holding bytes that are not UTF-8 (emptied; each one bad row)."""
    try:
        return col.cast(pa.string()), np.zeros(len(col), dtype=bool)
    except pa.ArrowInvalid:  # rare: find the rows, one Python pass over this column only
        values = col.to_pylist()
        invalid = np.array([v is not None and not _is_utf8(v) for v in values], dtype=bool)
        text = pa.array([None if x else v for v, x in zip(values, invalid, strict=True)], pa.binary())
        return text.cast(pa.string()), invalid


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _block(
    batch: pa.RecordBatch, path: str, rows: np.ndarray, malformed: list[tuple[int, str]], offset: int,
    replaced: bool = False,
) -> Block:  # fmt: skip
    """`replaced`: the stream replaced bytes that are not UTF-8 with U+FFFD (data_files.Prefixed): a field
    holding it is such a row."""
    columns: Columns = {}
    unparsable, undecodable = np.zeros(batch.num_rows, dtype=bool), np.zeros(batch.num_rows, dtype=bool)
    if replaced:
        for col in batch.columns:
            undecodable |= pc.fill_null(pc.match_substring(col, "\ufffd"), False).to_numpy(zero_copy_only=False)
    for name in NUMERIC:
        if name in batch.schema.names:
            columns[name], bad, broken = _to_float(batch.column(name))
            unparsable, undecodable = unparsable | bad, undecodable | broken
    keys = pa.nulls(batch.num_rows, pa.string())
    if KEY in batch.schema.names:
        keys, broken = _text(batch.column(KEY))
        undecodable |= broken
    codes = features.SCHEMA.reason_codes(columns, unparsable) if batch.num_rows else np.zeros(0, np.int8)
    codes[undecodable] = features.REJECT_REASONS.index("malformed_row")  # one bad row, whatever else is wrong
    return Block(path, rows, columns, keys, codes, malformed, offset)


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
    paths = data_files.expand_paths(spec)
    chunks = list(iter_chunks(paths, require_label=require_label, max_bad_fraction=max_bad_fraction, totals=totals))
    return concat(chunks, require_label), totals


def concat(chunks: Sequence[Columns], require_label: bool = True) -> Columns:
    if not chunks:
        return _empty(require_label)
    return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}
