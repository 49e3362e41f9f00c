"""Cross-request batching: one prediction thread; whatever queued while it was busy becomes its next batch.

Under load many requests share one SavedModel call. A batch keeps the model it started with,
so a hot swap fails no request and every answer names the model that computed it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from taxifare.serving.model import LoadedModel


class Batcher:
    """Rows in, (fares, model) out: `submit` returns a future resolved on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, current: Callable[[], LoadedModel | None], max_rows: int):
        self.loop, self.current, self.max_rows = loop, current, max_rows
        self.queue: list[tuple[np.ndarray, asyncio.Future]] = []
        self.running = 0
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="taxifare-predict")

    def submit(self, raw: np.ndarray) -> asyncio.Future:
        future = self.loop.create_future()
        self.queue.append((raw, future))
        if not self.running:
            self.dispatch()
        return future

    @property
    def idle(self) -> bool:
        return not (self.running or self.queue)

    def dispatch(self) -> None:
        """Start the next batch (up to max_rows, at least one request) when a model is loaded."""
        model = self.current()
        if model is None or self.running or not self.queue:
            return
        rows, take = 0, 0
        for raw, _ in self.queue:
            if take and rows + len(raw) > self.max_rows:
                break
            rows, take = rows + len(raw), take + 1
        batch, self.queue = self.queue[:take], self.queue[take:]
        self.running += 1
        arrays = [raw for raw, _ in batch]
        done = self.loop.run_in_executor(self.executor, _predict_batch, model, arrays)
        done.add_done_callback(partial(self._finished, model, batch))

    def _finished(self, model: LoadedModel, batch: list, done: asyncio.Future) -> None:
        self.running -= 1
        error = done.exception()
        start = 0
        for raw, future in batch:
            begin, start = start, start + len(raw)
            if future.done():  # its client went away
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result((done.result()[begin:start], model))
        self.dispatch()

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False)


def _predict_batch(model: LoadedModel, arrays: list[np.ndarray]) -> np.ndarray:
    return model.predict(arrays[0] if len(arrays) == 1 else np.concatenate(arrays))
