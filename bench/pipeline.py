"""Section 3, the pipeline: `make run`'s wall time and each task's, on the default generated sample,
beside the bare trainer on the same data with the same steps.

Each run is `taxifare run` (what `make run` runs, without make's install check) with a fresh
registry, so every run trains, evaluates with no champion to beat, and deploys; the sample data is
written once before the first (as a second `make run` finds it). Each round also runs the bare
trainer (`python -m trainer.task`, default flags) on the sample's train and valid files: the ratio
of the two, taken within a round, is what the pipeline costs over the training it runs.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any

from bench import Context, run_process
from bench.report import Section, Target, ratio

TARGET_SECONDS = 10.0
TARGET_OVERHEAD = 1.3
TASKS = ("stage-data", "tune-hparams", "train-model", "evaluate-model", "deploy-model")


def sample(ctx: Context) -> str:
    """The default sample, where `taxifare run` looks for it under the bench's runs root."""
    from taxifare.runs import local

    return local.sample_data(ctx.path("pipeline", "runs"))


def one_run(ctx: Context, label: str) -> tuple[str, float, float, dict[str, Any]]:
    """(command, wall seconds, peak RSS MiB, run record) of one `taxifare run`."""
    runs = ctx.path("pipeline", "runs")
    before = set(glob.glob(os.path.join(runs, "*", "run.json")))
    argv = [
        os.path.join(ctx.bin_dir, "taxifare"), "run",
        "--runs-root", runs,
        "--registry", ctx.path("pipeline", label, "registry"),
    ]  # fmt: skip
    proc = run_process(argv, timeout=900).check()
    records = sorted(set(glob.glob(os.path.join(runs, "*", "run.json"))) - before)
    if len(records) != 1:
        raise RuntimeError(f"expected one new run record under {runs}, found {len(records)}:\n{proc.tail()}")
    with open(records[0]) as f:
        record = json.load(f)
    return ctx.show(argv), proc.seconds, proc.peak_rss_mib, record


def bare_run(ctx: Context, data: str, label: str) -> tuple[str, float]:
    """(command, wall seconds) of the trainer alone: the same train and valid files, the same steps."""
    argv = [
        ctx.python, "-m", "trainer.task",
        "--train_data_paths", os.path.join(data, "train.csv"),
        "--eval_data_paths", os.path.join(data, "valid.csv"),
        "--output_dir", ctx.path("pipeline", label, "bare"),
    ]  # fmt: skip
    proc = run_process(argv, timeout=900).check()
    return ctx.show(argv), proc.seconds


def measure(ctx: Context) -> Section:
    section = Section("pipeline", "Pipeline (`make run`)")
    data = sample(ctx)
    runs, bare = [], []
    for i in range(ctx.settings.repeats):  # back to back in each round: the ratio sees the same load
        runs.append(one_run(ctx, f"run{i}"))
        bare.append(bare_run(ctx, data, f"run{i}"))
    command = runs[0][0].replace("/run0/", "/runN/")
    failed = [record for *_, record in runs if record["status"] != "succeeded"]
    section.notes += [
        "Default sample: 20,000 generated trips (trainer.sample_data, seed 0), default hyperparameters, "
        "the subprocess runner (each task forked from one warm Python per run); each run deploys to an empty "
        "registry; the sample is written before the first run, as a second `make run` finds it.",
        "`make run` = `.venv/bin/taxifare run` once the venv is installed; wall time is from process start to exit.",
    ]
    if failed:
        section.notes.append(f"{len(failed)} run(s) did not succeed: {failed[0].get('error')}")
    section.add(
        "wall time, `taxifare run`",
        [seconds for _, seconds, _, _ in runs],
        "s",
        command,
        Target("<=", TARGET_SECONDS),
    )
    bare_command = bare[0][0].replace("/run0/", "/runN/")
    section.add("wall time, the bare trainer (same data, same steps)", [s for _, s in bare], "s", bare_command)
    section.add(
        "pipeline / bare trainer",
        [ratio(run[1], alone) for run, (_, alone) in zip(runs, bare, strict=True)],
        "ratio",
        (command, bare_command),
        Target("<=", TARGET_OVERHEAD),
    )
    for task in TASKS:
        values = [
            float(record["tasks"][task]["seconds"])
            for *_, record in runs
            if record["tasks"].get(task, {}).get("seconds") is not None
        ]
        if values:
            section.add(f"task {task}", values, "s", command)
    outside = [
        seconds - sum(float(t.get("seconds") or 0.0) for t in record["tasks"].values())
        for _, seconds, _, record in runs
    ]
    outside_label = "outside the tasks (CLI start, the warm Python importing TensorFlow, kfp set-up, summary)"
    section.add(outside_label, outside, "s", command)
    section.add("peak RSS (largest process)", [rss for _, _, rss, _ in runs], "MiB", command)
    return section
