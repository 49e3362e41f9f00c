"""The trainer's progress after each chunk of steps: sent as a structured event (trainer/events.py)
by train.py and read back by whoever watches the training task (`taxifare run`'s live display,
the local tuner's pruning). TF-free."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from trainer import events


@dataclasses.dataclass(frozen=True)
class Progress:
    step: int
    total: int
    loss: float
    rmse: float
    eval_rmse: float
    examples_per_sec: float | None  # None until a chunk after the first (the first also traces the graph)
    elapsed: float  # seconds since training started

    def line(self) -> str:
        """For a person: the trainer's log line."""
        rate = f"{self.examples_per_sec:,.0f}" if self.examples_per_sec else "-"
        return (
            f"step {self.step}/{self.total}: train loss {self.loss:.3f}, train rmse {self.rmse:.3f}, "
            f"eval rmse {self.eval_rmse:.3f}, {rate} examples/s, {self.elapsed:.1f}s"
        )

    def event(self) -> str:
        """For a program: the JSON line `parse` reads back."""
        return events.line("progress", **dataclasses.asdict(self))

    @property
    def eta(self) -> float | None:
        """Seconds left at the pace so far."""
        if not self.step or self.step >= self.total:
            return 0.0 if self.step >= self.total else None
        return self.elapsed * (self.total - self.step) / self.step


def emit(p: Progress) -> None:
    print(p.event(), flush=True)


def parse(text: str) -> Progress | None:
    """The progress event on a line of task output, or None."""
    found = events.parse(text)
    return from_event(found.fields) if found and found.kind == "progress" else None


def from_event(fields: dict[str, Any]) -> Progress | None:
    try:
        p = Progress(**fields)
    except TypeError:
        return None
    numbers = (p.step, p.total, p.loss, p.rmse, p.eval_rmse, p.elapsed)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
        return None
    if p.examples_per_sec is not None and not (isinstance(p.examples_per_sec, int | float) and
                                               math.isfinite(p.examples_per_sec)):  # fmt: skip
        return None
    return p
