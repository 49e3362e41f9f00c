"""The benchmark harness behind `make bench`: `python -m bench.run` writes BENCHMARKS.md.

One module per section (trainer, streaming, pipeline, serving, quality), each a `measure(ctx)`
returning a `report.Section`; this module holds what they share: the settings of a full or quick
run, the run's context (scratch folder, data, the default model) and `run_process`, which times a
fresh subprocess, takes its peak RSS from wait4 and stamps each output line as it arrives.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
LAB_TRAIN = os.path.join(SHARED_DATA, "taxi-train.csv")
LAB_VALID = os.path.join(SHARED_DATA, "taxi-valid.csv")


@dataclasses.dataclass(frozen=True)
class Settings:
    """How much to measure: `full()` for BENCHMARKS.md, `quick_mode()` to check the harness in < 2 minutes."""

    quick: bool
    repeats: int  # runs per figure for the long measurements (a training run, a pipeline run)
    short_repeats: int  # runs per figure for the short ones (a load test)
    streaming_rows: tuple[int, ...]  # training rows per streaming size
    streaming_rows_per_shard: int
    load_seconds: float
    folds: int  # held-out folds trained in the quality section (of 5)
    seeds: int  # seeds of the default model in the quality section (from the default --seed on)

    @classmethod
    def full(cls) -> Settings:
        return cls(False, 3, 5, (1_000_000, 10_000_000), 250_000, 10.0, 5, 5)

    @classmethod
    def quick_mode(cls) -> Settings:
        return cls(True, 1, 1, (200_000, 600_000), 100_000, 3.0, 1, 1)


@dataclasses.dataclass
class Context:
    """What the sections share within one harness run."""

    settings: Settings
    scratch: str  # a folder under /tmp, never the repo
    python: str = sys.executable
    # The default training runs on the lab data (the trainer section fills it; others reuse it).
    default_runs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # Each figure's median so far, as "section: figure name" (a later section may compare with it).
    results: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def bin_dir(self) -> str:
        return os.path.dirname(self.python)

    def path(self, *parts: str) -> str:
        out = os.path.join(self.scratch, *parts)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        return out

    def show(self, argv: Sequence[str]) -> str:
        """A command as the report prints it: paths relative to the repo, the scratch folder as $TMP."""
        words = []
        for word in argv:
            if word.startswith(self.scratch):
                word = "$TMP" + word[len(self.scratch) :]
            elif os.path.isabs(word) and os.path.commonpath([word, os.path.dirname(REPO)]) == os.path.dirname(REPO):
                word = os.path.relpath(word, REPO)
            words.append(word)
        return " ".join(words)

    def training_data(self) -> tuple[str, str, str]:
        """(train, valid, description): the lab's CSVs when ../shared/data has them, else generated sample data."""
        if os.path.isfile(LAB_TRAIN) and os.path.isfile(LAB_VALID):
            return LAB_TRAIN, LAB_VALID, "the lab's data: ../shared/data/taxi-train.csv, taxi-valid.csv"
        out = os.path.join(self.scratch, "sample-data")
        if not os.path.isdir(out):
            from trainer import sample_data

            sample_data.write_splits(out, rows=20_000, seed=0)
        return (
            os.path.join(out, "train.csv"),
            os.path.join(out, "valid.csv"),
            "generated data (../shared/data absent): trainer.sample_data, 20,000 rows, seed 0",
        )


@dataclasses.dataclass
class Process:
    """A finished subprocess: wall seconds from start to exit, peak RSS, output lines with arrival times."""

    argv: list[str]
    returncode: int
    seconds: float
    peak_rss_mib: float
    lines: list[tuple[float, str]]  # (seconds since start, line) of stdout and stderr merged

    @property
    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def last_json(self) -> dict[str, Any]:
        """The last line that parses as a JSON object (the trainer's summary line)."""
        for _, line in reversed(self.lines):
            if line.startswith("{"):
                try:
                    return dict(json.loads(line))
                except ValueError:
                    continue
        raise RuntimeError(f"no JSON summary in the output of {' '.join(self.argv)}:\n{self.tail()}")

    def tail(self, n: int = 20) -> str:
        return "\n".join(line for _, line in self.lines[-n:])

    def check(self) -> Process:
        if self.returncode != 0:
            raise RuntimeError(f"{' '.join(self.argv)} exited with {self.returncode}:\n{self.tail()}")
        return self


def run_process(argv: Sequence[str], timeout: float = 900.0, cwd: str = REPO) -> Process:
    """Run `argv` to completion in a fresh process; peak RSS comes from wait4 for this child alone."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    lines: list[tuple[float, str]] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.perf_counter() - started, line.rstrip("\n")))
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode < 0 and seconds >= timeout:
        lines.append((seconds, f"[bench] killed after the {timeout:.0f} s timeout"))
    return Process(list(argv), proc.returncode, seconds, usage.ru_maxrss / 1024, lines)
