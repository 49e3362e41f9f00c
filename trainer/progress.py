"""The trainer's progress line: written by train.py after each chunk of steps, read back by whoever
watches the training task (`taxifare run`'s live progress). One format, defined here, TF-free."""

from __future__ import annotations

import dataclasses
import re

LINE = re.compile(
    r"step (?P<step>\d+)/(?P<total>\d+): train loss (?P<loss>[\d.]+|nan|inf), train rmse (?P<rmse>[\d.]+|nan|inf), "
    r"eval rmse (?P<eval_rmse>[\d.]+|nan|inf), (?P<rate>[\d,]+|-) examples/s, (?P<elapsed>[\d.]+)s"
)


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
        rate = f"{self.examples_per_sec:,.0f}" if self.examples_per_sec else "-"
        return (
            f"step {self.step}/{self.total}: train loss {self.loss:.3f}, train rmse {self.rmse:.3f}, "
            f"eval rmse {self.eval_rmse:.3f}, {rate} examples/s, {self.elapsed:.1f}s"
        )

    @property
    def eta(self) -> float | None:
        """Seconds left at the pace so far."""
        if not self.step or self.step >= self.total:
            return 0.0 if self.step >= self.total else None
        return self.elapsed * (self.total - self.step) / self.step


def parse(text: str) -> Progress | None:
    found = LINE.search(text)
    if not found:
        return None
    g = found.groupdict()
    rate = None if g["rate"] == "-" else float(g["rate"].replace(",", ""))
    return Progress(int(g["step"]), int(g["total"]), float(g["loss"]), float(g["rmse"]), float(g["eval_rmse"]), rate,
                    float(g["elapsed"]))  # fmt: skip
