"""Score a table of trips: read, predict and write at once, in input order, in flat memory.

Three stages run side by side, joined by queues of a couple of blocks each: a thread reads and
checks blocks (pyarrow parses outside the GIL), the caller's thread predicts (TensorFlow's threads),
and a thread writes predictions and rejected rows. Memory holds a few blocks whatever the size of
the input; the output's order is the input's. Rows the feature table refuses go to the errors file
with their number and reason, and are counted; the training statistics of the model, when it has
them, are compared with what was scored (trainer/drift.py).
"""

from __future__ import annotations

import dataclasses
import os
import queue
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from taxifare.batch import inputs, outputs
from taxifare.errors import NotServable, UsageError
from trainer import drift, features

DEPTH = 2  # blocks waiting between two stages
_DONE = object()


@dataclasses.dataclass
class Result:
    """What a batch scoring did."""

    rows: int = 0
    scored: int = 0
    rejected: Counter[str] = dataclasses.field(default_factory=Counter)
    files: list[str] = dataclasses.field(default_factory=list)
    output: str = ""
    errors: str = ""
    model: str = ""
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the process's CPU time (every thread) while it scored
    drift: dict[str, Any] | None = None

    def summary(self) -> list[str]:
        """The lines a person (or the run's view) reads: counts, reasons, where things went."""
        lines = [f"scored {self.scored:,} rows, rejected {sum(self.rejected.values()):,} (of {self.rows:,} read)"
                 + (f" with {self.model}" if self.model else "")]  # fmt: skip
        shown = [f"{r} {self.rejected[r]:,}" for r in features.REJECT_REASONS if self.rejected.get(r)]
        if shown:
            lines.append("rejected: " + ", ".join(shown) + f" (rows in {self.errors})")
        rate = f", {self.rows / self.seconds:,.0f} rows/s" if self.seconds > 0 else ""
        lines.append(f"predictions: {self.output} ({self.seconds:.1f}s{rate}; {self.cpu_seconds:.1f} CPU-s)")
        return lines

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["rejected"] = dict(self.rejected)
        return out

    def marked(self) -> dict[str, Any]:
        """What the completion markers say (the drift report has its own place)."""
        return {k: v for k, v in self.as_dict().items() if k != "drift"}


class _Stage:
    """A thread feeding (or draining) a bounded queue; its exception is re-raised where it is read."""

    def __init__(self, name: str):
        self.queue: queue.Queue[Any] = queue.Queue(DEPTH)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.name = name

    def put(self, item: Any) -> bool:
        """Wait for room; False once the run stopped (then nothing is put)."""
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


def _produce(stage: _Stage, items: Iterable[Any]) -> None:
    try:
        for item in items:
            if not stage.put(item):
                return
    except BaseException as err:  # handed to the reading thread
        stage.error = err
    stage.put(_DONE)


def _consumed(stage: _Stage) -> Iterator[Any]:
    while True:
        try:
            item = stage.queue.get(timeout=0.1)
        except queue.Empty:
            if stage.stop.is_set():
                return
            continue
        if item is _DONE:
            if stage.error is not None:
                raise stage.error
            return
        yield item


def score(
    paths: Sequence[str],
    out: str,
    predict: Callable[[np.ndarray], np.ndarray],
    *,
    fmt: str = "",
    errors: str = "",
    input_format: str = "auto",
    reference: dict[str, Any] | None = None,
    threshold: float = drift.DEFAULT_THRESHOLD,
    model: str = "",
) -> Result:
    """Score every row of `paths` with `predict` ([N, 5] float32 -> N fares) into `out`.

    `reference`: the model's training statistics (trainer/drift.py); with them the result says
    how far the scored rows are from what the model was trained on.
    """
    fmt = outputs.format_of(out, fmt)
    result = Result(files=list(paths), output=out, errors=errors or outputs.errors_path(out, fmt), model=model)
    read = {os.path.realpath(p) for p in paths if "://" not in p and p != "-"}
    if read & {os.path.realpath(result.output), os.path.realpath(result.errors)}:
        raise UsageError(
            "the output would overwrite the input it is read from", "give --out (and --errors) other names"
        )
    tally = drift.Tally(reference) if reference else None
    started, cpu = time.perf_counter(), _cpu()
    reader, writer = _Stage("read"), _Stage("write")
    written = outputs.Writer(result.output, fmt, outputs.PREDICTION_COLUMNS)
    rejected = outputs.Writer(result.errors, fmt, outputs.ERROR_COLUMNS)
    threads = [
        threading.Thread(target=_produce, args=(reader, inputs.read(paths, input_format)), daemon=True),
        threading.Thread(target=_write, args=(writer, written, rejected, tally), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        for part in _consumed(reader):
            fares = predict(part.raw) if len(part.raw) else np.zeros(0, np.float32)
            _check(fares, part)
            result.rows += part.rows
            result.scored += len(part.raw)
            result.rejected.update(r.reason for r in part.rejects)
            if not writer.put((part, fares)) or writer.error:
                break
        writer.put(_DONE)
        threads[1].join()
        if writer.error is not None:
            raise writer.error
    except BaseException:
        reader.stop.set()
        writer.stop.set()
        threads[1].join(timeout=30)
        written.abort()
        rejected.abort()
        raise
    result.seconds, result.cpu_seconds = time.perf_counter() - started, _cpu() - cpu
    result.drift = drift.compare(tally, threshold) if tally is not None else None
    rejected.finish(result.marked())
    written.finish(result.marked())  # last: the predictions are complete once everything else is
    return result


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def metrics(result: Result) -> dict[str, float]:
    """The counts as flat metrics (what the console's Metrics artifact shows)."""
    out = {"rows_read": float(result.rows), "rows_scored": float(result.scored)}
    out.update({f"rejected_{r}": float(result.rejected.get(r, 0)) for r in features.REJECT_REASONS})
    if result.seconds > 0:
        out["rows_per_second"] = result.rows / result.seconds
    return out


def _check(fares: np.ndarray, part: inputs.Part) -> None:
    if fares.shape != (len(part.raw),) or not np.isfinite(fares).all():
        raise NotServable(f"the model gave {fares.shape[0]} fares (some not finite) for {len(part.raw)} rows "
                          f"of {part.source}: it is broken")  # fmt: skip


def _write(stage: _Stage, written: outputs.Writer, rejected: outputs.Writer, tally: drift.Tally | None) -> None:
    """The writing thread (it also counts the rows into the drift bins: the predicting thread is the busiest)."""
    try:
        for part, fares in _consumed(stage):
            if len(fares):
                written.table(outputs.predictions(part.keys, fares))
                if tally is not None:
                    tally.add(part.columns)
            if part.rejects:
                rejected.table(outputs.rejects(part.rejects))
    except BaseException as err:  # raised by score()
        stage.error = err
        stage.stop.set()
