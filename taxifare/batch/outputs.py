"""Where predictions and rejected rows go: CSV or JSON lines, written in place, then marked complete.

A file is written where it is asked for (no temporary copy renamed over it: Cloud Storage FUSE,
where pipeline artifacts live on Vertex AI, cannot rename folders and copies files to do it), and
only when everything is written does `<file>.complete` appear beside it, holding the run's summary.
Any marker a previous run left is removed before the first byte is written, so a killed or failed
run never leaves output that looks finished: readers take a file only when its marker is there.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from taxifare.batch.inputs import Reject
from taxifare.errors import DataError, UsageError
from trainer.config import BATCH_FORMATS

FORMATS = BATCH_FORMATS
MARKER = ".complete"
PREDICTION_COLUMNS = ("key", "fare_amount")
ERROR_COLUMNS = ("source", "row", "key", "reason", "detail")


def marker(path: str) -> str:
    return path + MARKER


def is_complete(path: str) -> bool:
    return os.path.isfile(marker(path))


def format_of(path: str, given: str = "") -> str:
    """The output format: given, or told by the file's name (.jsonl/.json: JSON lines; else CSV)."""
    if given:
        if given not in FORMATS:
            raise UsageError(f"--format {given!r}: expected one of {', '.join(FORMATS)}")
        return given
    return "jsonl" if path.lower().endswith((".jsonl", ".json", ".ndjson")) else "csv"


def errors_path(out: str, fmt: str) -> str:
    """Beside the output: preds.csv -> preds.errors.csv."""
    root, _ = os.path.splitext(out)
    return f"{root}.errors.{fmt}"


class Writer:
    """One output file: opened in place (any old marker removed first), rows appended, marked at the end."""

    def __init__(self, path: str, fmt: str, columns: Sequence[str]):
        self.path, self.fmt, self.columns = path, fmt, tuple(columns)
        if os.path.isdir(path):
            raise UsageError(f"{path} is a folder", "give the output a file name, e.g. preds.csv")
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            if os.path.exists(marker(path)):
                os.remove(marker(path))
            self._file: IO[bytes] | None = open(path, "wb")  # noqa: SIM115 - closed by finish() or abort()
        except OSError as err:
            raise DataError(f"{path}: cannot be written ({err.strerror})") from err
        if fmt == "csv":
            self._file.write((",".join(self.columns) + "\n").encode())
        self.rows = 0

    def table(self, table: pa.Table) -> None:
        """Rows whose columns are `self.columns`, in that order."""
        assert self._file is not None
        if self.fmt == "csv":
            pacsv.write_csv(table, self._file, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
        else:
            names = table.column_names
            encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
            lines = (
                encode(dict(zip(names, row, strict=True))) for row in zip(*table.to_pydict().values(), strict=True)
            )
            self._file.write("".join(line + "\n" for line in lines).encode())
        self.rows += table.num_rows

    def finish(self, summary: Mapping[str, Any]) -> None:
        """Flush the file to disk, then write the marker: the file is complete."""
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        with open(marker(self.path), "w") as f:
            json.dump({"complete": True, "file": self.path, "rows_in_file": self.rows, **summary}, f, indent=2,
                      default=str)  # fmt: skip

    def abort(self) -> None:
        """Close without a marker: what was written stays, unmarked (the reason is the caller's error)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def predictions(keys: pa.Array, fares: np.ndarray) -> pa.Table:
    """Keys and fares rounded to 4 decimals, as the prediction server answers."""
    rounded = np.round(np.asarray(fares, np.float64), 4)
    return pa.table({"key": keys, "fare_amount": pa.array(rounded, pa.float64())})


def rejects(rows: Sequence[Reject]) -> pa.Table:
    return pa.table(
        {
            "source": pa.array([r.source for r in rows], pa.string()),
            "row": pa.array([r.row for r in rows], pa.int64()),
            "key": pa.array([r.key for r in rows], pa.string()),
            "reason": pa.array([r.reason for r in rows], pa.string()),
            "detail": pa.array([r.detail for r in rows], pa.string()),
        }
    )


def publish(predictions: str, rejected: str, out: str, fmt: str) -> str:
    """Copy complete predictions (and their rejected rows, beside: NAME.errors.FMT) to `out`, each marked
    complete once copied whole (the predictions last); return `out`."""
    for src, dest in ((rejected, errors_path(out, fmt)), (predictions, out)):
        if not is_complete(src):
            raise UsageError(f"{src} is not marked complete: its run did not finish", "rerun the scoring")
        with open(marker(src)) as f:
            summary = json.load(f)
        if os.path.exists(marker(dest)):
            os.remove(marker(dest))
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        with open(src, "rb") as f, open(dest, "wb") as copy:
            shutil.copyfileobj(f, copy, 1 << 20)
            copy.flush()
            os.fsync(copy.fileno())
        with open(marker(dest), "w") as f:
            json.dump({**summary, "file": dest, "copied_from": src}, f, indent=2)
    return out
