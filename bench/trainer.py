"""Section 1, the trainer: steady throughput, process start → exported model, start-up overhead, peak RSS.

Each run is `python -m trainer.task` with the default flags in a fresh process. Its log lines are
stamped as they arrive, which splits the wall time without touching the trainer:

- steady examples/s is the trainer's own figure (every chunk of steps but the first, which traces
  the graph and warms the input pipeline);
- start-up overhead is the time from process start to the end of that first chunk, less the time
  its steps take at the steady rate: interpreter and TensorFlow import, reading the data, building
  the model, tracing the step, plus the first evaluation and checkpoint.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from bench import Context, run_process
from bench.report import Section, Target, median, ratio
from trainer.config import DEFAULTS

LAB_EXAMPLES_PER_SEC = 25_000  # the lab's estimator (tf.estimator + CsvDataset) on this machine class
TARGET_EXAMPLES_PER_SEC = 400_000
TARGET_WALL_SECONDS = 15.0  # default training, process start -> exported model, on the lab's data
_LOADED = re.compile(r"loaded \d+ training rows|streaming \d+ training file")
_STEP = re.compile(r"step (\d+)/(\d+):")


def train_run(
    ctx: Context, output_dir: str, train: str, valid: str, extra: Sequence[str] = (), timeout: float = 1800.0
) -> dict[str, Any]:
    """One `python -m trainer.task` run in a fresh process, timed; returns its figures and summary."""
    argv = [
        ctx.python, "-m", "trainer.task",
        "--train_data_paths", train,
        "--eval_data_paths", valid,
        "--output_dir", output_dir,
        *extra,
    ]  # fmt: skip
    proc = run_process(argv, timeout=timeout).check()
    summary = proc.last_json()
    batch = DEFAULTS.train_batch_size
    if "--train_batch_size" in extra:
        batch = int(extra[list(extra).index("--train_batch_size") + 1])
    rate = float(summary["examples_per_sec"] or math.nan)
    loaded = next((t for t, line in proc.lines if _LOADED.search(line)), math.nan)
    first = next(((t, int(m.group(1))) for t, line in proc.lines if (m := _STEP.search(line))), None)
    startup = first[0] - first[1] * batch / rate if first else math.nan
    return {
        "command": ctx.show(argv),
        "output_dir": output_dir,
        "summary": summary,
        "examples_per_sec": rate,
        "wall_seconds": proc.seconds,
        "peak_rss_mib": proc.peak_rss_mib,
        "loaded_seconds": loaded,
        "startup_seconds": startup,
    }


def default_run(ctx: Context, label: str) -> dict[str, Any]:
    """The default run: default flags on the lab's data (or generated data), a fresh output folder."""
    train, valid, _ = ctx.training_data()
    return train_run(ctx, ctx.path("trainer", label), train, valid)


def measure(ctx: Context) -> Section:
    section = Section("trainer", "Trainer")
    _, _, data = ctx.training_data()
    runs = [default_run(ctx, f"run{i}") for i in range(ctx.settings.repeats)]
    ctx.default_runs.extend(runs)
    command = runs[0]["command"].replace("/run0", "/runN")
    rates = [r["examples_per_sec"] for r in runs]
    section.notes += [
        f"Data: {data}.",
        f"Default flags: {DEFAULTS.train_steps} steps of {DEFAULTS.train_batch_size} examples, hidden units "
        f"{' '.join(map(str, DEFAULTS.hidden_units))}, data held in memory (`--input_mode auto`).",
        "Steady throughput excludes the first chunk of steps (graph tracing, input warm-up); it is the "
        "`examples_per_sec` the trainer reports in metrics.json.",
        "Start-up overhead: process start → end of the first chunk, less that chunk's steps at the steady "
        "rate (imports, data load, model build, tracing, first evaluation and checkpoint).",
        f"Reference: the lab's estimator trains at ~{LAB_EXAMPLES_PER_SEC:,} examples/s here (a documented "
        "figure, not re-measured by this harness).",
    ]
    section.add("steady training throughput", rates, "examples/s", command, Target(">=", TARGET_EXAMPLES_PER_SEC))
    section.add(
        f"speed-up over the lab's ~{LAB_EXAMPLES_PER_SEC // 1000}k examples/s",
        [ratio(r, LAB_EXAMPLES_PER_SEC) for r in rates],
        "×",
        command,
    )
    section.add(
        "wall time, process start → exported model",
        [r["wall_seconds"] for r in runs],
        "s",
        command,
        Target("<=", TARGET_WALL_SECONDS),
    )
    section.add("start-up overhead (to the first steady step)", [r["startup_seconds"] for r in runs], "s", command)
    section.add("of which process start → data loaded", [r["loaded_seconds"] for r in runs], "s", command)
    section.add("peak RSS", [r["peak_rss_mib"] for r in runs], "MiB", command)
    section.add("eval RMSE", [float(r["summary"]["rmse"]) for r in runs], "RMSE $", command)
    if math.isnan(median(rates)):
        section.notes.append("No steady chunk was timed: the run has a single chunk of steps.")
    return section


def default_model(ctx: Context) -> str:
    """The output folder of a default training run, training one if no section has yet."""
    if not ctx.default_runs:
        ctx.default_runs.append(default_run(ctx, "default-model"))
    return str(ctx.default_runs[0]["output_dir"])
