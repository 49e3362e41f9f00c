"""`taxifare run`'s live display: the run's id and log first, each task as it starts and ends, and
the training's progress (step, loss, eval RMSE, speed, time left).

On a terminal the training is one updating bar (rich, which keras already brings, draws it);
anywhere else (CI logs, a pipe, cron) plain lines, at most one per `every` seconds plus the last,
so a log file stays readable and small however long the training runs.
"""

from __future__ import annotations

import time
from typing import IO, Any

from taxifare.cli import render
from taxifare.runs.records import RunRecord
from trainer.progress import Progress


def watcher(stream: IO[str], every: float = 30.0) -> PlainLines | LiveBar:
    """The display for `stream`: a live bar on a terminal that can redraw (not TERM=dumb), plain
    lines elsewhere."""
    from rich.console import Console

    console = Console(file=stream, highlight=False)
    return LiveBar(console) if console.is_interactive else PlainLines(stream, every)


def _details(p: Progress) -> str:
    rate = f"{p.examples_per_sec:,.0f} ex/s" if p.examples_per_sec else "warming up"
    return f"loss {p.loss:.3f}  train rmse {p.rmse:.3f}  eval rmse {p.eval_rmse:.3f}  {rate}"


def _short(p: Progress) -> str:
    """The bar's text, most useful first: a narrow terminal cuts it from the right."""
    rate = f"{p.examples_per_sec / 1000:,.0f}k ex/s" if p.examples_per_sec else "warming up"
    return f"eval rmse {p.eval_rmse:.3f} · loss {p.loss:.3f} · {rate}"


def _eta(p: Progress) -> str:
    left = p.eta
    return "" if left is None else f", {left:.0f}s left"


class PlainLines:
    """One line per event; training progress throttled to one line per `every` seconds."""

    def __init__(self, stream: IO[str], every: float, clock: Any = time.monotonic):
        self.stream, self.every, self.clock = stream, every, clock
        self.last: float | None = None

    def _say(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def started(self, record: RunRecord, log_path: str) -> None:
        self._say(f"run {record.run_id}: log {log_path}")

    def task(self, task: Any) -> None:
        if task.state == "running":
            self._say(f"  … {task.name} started")
        else:
            self._say("  " + render.task_line(task.name, task.state, task.seconds))

    def training(self, p: Progress) -> None:
        now = self.clock()
        if p.step < p.total and self.last is not None and now - self.last < self.every:
            return
        self.last = now
        self._say(f"    step {p.step}/{p.total}: {_details(p)}{_eta(p)}")

    def close(self) -> None:
        pass


class LiveBar:
    """Task lines scroll; while training runs, one bar below them updates in place."""

    def __init__(self, console: Any):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar
        from rich.table import Column

        self.console = console
        self.bar = Bar(
            TextColumn("    training"),
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            # Step count and time left stay whole at 80 columns; this text is what gets cut.
            TextColumn("{task.fields[details]}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
            console=self.console,
            # The run's stdout is the log file (taxifare/runs/local.py): rich must not swap it for its own.
            redirect_stdout=False,
            redirect_stderr=False,
            transient=True,  # the bar goes when training ends; the task's line says how it went
        )
        self.bar_task: Any = None

    def started(self, record: RunRecord, log_path: str) -> None:
        self.console.print(f"run {record.run_id}: log {log_path}")

    def task(self, task: Any) -> None:
        if task.state == "running":
            self.console.print(f"  … {task.name} started")
            return
        if self.bar_task is not None:  # the training task ended (or the run moved on)
            self._stop_bar()
        self.console.print("  " + render.task_line(task.name, task.state, task.seconds))

    def training(self, p: Progress) -> None:
        if self.bar_task is None:
            self.bar.start()
            self.bar_task = self.bar.add_task("training", total=p.total, details="")
        self.bar.update(self.bar_task, completed=p.step, total=p.total, details=_short(p))

    def _stop_bar(self) -> None:
        self.bar.stop()
        self.bar.remove_task(self.bar_task)
        self.bar_task = None

    def close(self) -> None:
        if self.bar_task is not None:
            self._stop_bar()
