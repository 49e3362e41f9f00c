"""The trips to score, read a block at a time in input order: CSV (the lab's headerless layout, or a
header with any known aliases and extra columns) or JSON lines, plain or gzip, from files or standard
input (`-`).

CSV goes through trainer/sources.py (pyarrow's reader, the header aliases, gzip told by its bytes,
each row's reject reason from the feature table); JSON lines are one object a line, with the same
names and aliases (other fields ignored) and the same checks. A block carries its valid rows as the
[N, 5] array the model takes, their keys, and every rejected row with its number and reason, so
nothing is dropped unsaid. The format is told by the first byte of the (decompressed) data: `{` is
JSON lines, anything else CSV.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import math
import os
from collections.abc import Iterator, Sequence
from typing import IO, Any

import msgspec
import numpy as np
import pyarrow as pa

from taxifare.errors import DataError
from trainer import data_files, features, sources
from trainer.config import BATCH_INPUT_FORMATS
from trainer.features import FEATURES, KEY, SCHEMA

REASONS = features.REJECT_REASONS
MALFORMED = REASONS.index("malformed_row")
JSON_LINES_PER_BLOCK = 65_536
FORMATS = BATCH_INPUT_FORMATS
_json = msgspec.json.Decoder()
_CHECKED_BY = {r: [f.name for f in SCHEMA.fields if f.name in FEATURES and f.reject_reason == r] for r in REASONS}


@dataclasses.dataclass(frozen=True)
class Reject:
    """A row that cannot be scored: where it is, its key (if it had one), why."""

    source: str
    row: int  # the row's number among the file's data rows (CSV) or lines (JSON lines), from 1
    key: str
    reason: str  # one of trainer.features.REJECT_REASONS
    detail: str


@dataclasses.dataclass
class Part:
    """A block of input: the valid rows (in input order) and the rejected ones."""

    source: str
    columns: dict[str, np.ndarray]  # each feature's N values as read (float64)
    raw: np.ndarray  # [N, 5] float32 in FEATURES order: what the model takes
    keys: pa.Array  # N strings
    rejects: list[Reject]

    @property
    def rows(self) -> int:
        return len(self.raw) + len(self.rejects)


def expand(spec: str | Sequence[str]) -> list[str]:
    """Files from a file, glob or comma-separated list (local, gs://, https://); `-` is standard input."""
    parts = [p.strip() for p in ([spec] if isinstance(spec, str) else spec) for p in p.split(",") if p.strip()]
    if parts == ["-"]:
        return ["-"]
    return data_files.expand_paths(parts)


def read(paths: Sequence[str], input_format: str = "auto") -> Iterator[Part]:
    """Every row of the files, a block at a time, in order; a file with no data row is a DataError."""
    for path in paths:
        seen = 0
        with _opened(path) as stream:
            kind = input_format if input_format != "auto" else _kind(stream)
            blocks = _csv(path, stream) if kind == "csv" else _json_lines(path, stream)
            for part in blocks:
                seen += part.rows
                yield part
        if seen == 0:
            raise DataError(f"{_name(path)}: no data rows; is the file empty?")


def _name(path: str) -> str:
    return "standard input" if path == "-" else path


@contextlib.contextmanager
def _opened(path: str) -> Iterator[IO[bytes]]:
    try:
        with data_files.open_data(path) as stream:
            yield stream
    except (OSError, EOFError) as err:
        raise DataError(f"{_name(path)}: cannot be read ({err}); a truncated gzip file?") from err


def _kind(stream: Any) -> str:
    head = stream.peek(4096)[:4096].removeprefix(codecs.BOM_UTF8).lstrip()
    return "jsonl" if head.startswith(b"{") else "csv"


def _csv(path: str, stream: IO[bytes]) -> Iterator[Part]:
    for block in sources.iter_blocks(_name(path), require_label=False, stream=stream):
        keep = block.keep
        columns = {name: block.columns[name][keep] for name in FEATURES}
        rejects = [Reject(block.path, row, "", "malformed_row", _malformed(text)) for row, text in block.malformed]
        if not keep.all():
            bad = ~keep
            keys = block.keys.filter(pa.array(bad)).to_pylist()
            values = np.stack([block.columns[name][bad] for name in FEATURES], axis=1).tolist()
            for row, code, key, row_values in zip(block.rows[bad].tolist(), block.codes[bad].tolist(), keys, values,
                                                  strict=True):  # fmt: skip
                detail = _detail(REASONS[code], dict(zip(FEATURES, row_values, strict=True)))
                rejects.append(Reject(block.path, row, key or "", REASONS[code], detail))
            rejects.sort(key=lambda r: r.row)
        yield Part(block.path, columns, _raw(columns), block.row_keys(keep, by_number=True), rejects)


def _raw(columns: dict[str, np.ndarray]) -> np.ndarray:
    raw = np.empty((len(columns[FEATURES[0]]), len(FEATURES)), np.float32)
    for i, name in enumerate(FEATURES):
        raw[:, i] = columns[name]
    return raw


def _malformed(text: str) -> str:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return f"not {len(features.CSV_COLUMNS)} fields (or not the header's count): {shown!r}"


def _detail(reason: str, values: dict[str, float]) -> str:
    """What is wrong with a rejected row, naming the field."""
    if reason == "malformed_row":
        return "bytes that are not UTF-8"
    if reason in ("missing_value", "not_a_number"):
        names = [n for n, v in values.items() if not math.isfinite(v)]
        what = "missing" if reason == "missing_value" else "not a (finite) number"
        return f"{', '.join(names) or 'a field'}: {what}"
    for name in _CHECKED_BY.get(reason, ()):
        if problem := SCHEMA.value_problem(name, values[name]):
            return f"{name}: {problem}"
    return reason


def _json_lines(path: str, stream: IO[bytes]) -> Iterator[Part]:
    lines: list[tuple[int, bytes]] = []
    for number, line in enumerate(stream, start=1):
        if line.strip():
            lines.append((number, line))
        if len(lines) >= JSON_LINES_PER_BLOCK:
            yield _json_part(_name(path), lines)
            lines = []
    if lines:
        yield _json_part(_name(path), lines)


def _json_part(source: str, lines: list[tuple[int, bytes]]) -> Part:
    """One block of JSON lines, checked as the feature table checks CSV rows."""
    n = len(lines)
    values = np.full((n, len(FEATURES)), np.nan)
    unparsable, keys = np.zeros(n, bool), [""] * n
    broken: dict[int, str] = {}
    index = {name: i for i, name in enumerate(FEATURES)}
    for j, (_, line) in enumerate(lines):
        try:
            obj = _json.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError) as err:
            broken[j] = f"not valid JSON ({err})"
            continue
        if not isinstance(obj, dict):
            broken[j] = "not a JSON object"
            continue
        for field, value in obj.items():
            name = SCHEMA.canonical_name(field)
            if name in index:
                ok = isinstance(value, int | float) and not isinstance(value, bool)
                values[j, index[name]] = _number(value) if ok else np.nan
                unparsable[j] |= value is not None and not ok
            elif name == KEY and value is not None:
                keys[j] = str(value)
    columns = {name: values[:, i] for name, i in index.items()}
    codes = SCHEMA.reason_codes(columns, unparsable)
    codes[list(broken)] = MALFORMED
    rejects = []
    for j in np.flatnonzero(codes >= 0).tolist():
        reason = REASONS[codes[j]]
        detail = broken.get(j) or _detail(reason, {n: float(values[j, i]) for n, i in index.items()})
        rejects.append(Reject(source, lines[j][0], keys[j], reason, detail))
    keep = codes < 0
    made = [keys[j] or f"{os.path.basename(source)}:{lines[j][0]}" for j in np.flatnonzero(keep).tolist()]
    kept = {name: values[keep, i] for name, i in index.items()}
    return Part(source, kept, _raw(kept), pa.array(made, pa.string()), rejects)


def _number(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer of hundreds of digits: out of every range
        return float("inf")
