"""Section 3, the pipeline: `make run`'s wall time and each task's, on the default generated sample.

Each run is `taxifare run` (what `make run` runs, without make's install check) with a fresh runs
root and registry under the scratch folder, so every run is a first run: it writes the sample data,
trains, evaluates with no champion to beat, and deploys. Task times come from the run record.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any

from bench import Context, run_process
from bench.report import Section, Target

TARGET_SECONDS = 30.0
TASKS = ("stage-data", "tune-hparams", "train-model", "evaluate-model", "deploy-model")


def one_run(ctx: Context, label: str) -> tuple[str, float, float, dict[str, Any]]:
    """(command, wall seconds, peak RSS MiB, run record) of one `taxifare run`."""
    root = ctx.path("pipeline", label)
    argv = [
        os.path.join(ctx.bin_dir, "taxifare"), "run",
        "--runs-root", os.path.join(root, "runs"),
        "--registry", os.path.join(root, "registry"),
    ]  # fmt: skip
    proc = run_process(argv, timeout=900).check()
    records = glob.glob(os.path.join(root, "runs", "*", "run.json"))
    if len(records) != 1:
        raise RuntimeError(f"expected one run record under {root}/runs, found {len(records)}:\n{proc.tail()}")
    with open(records[0]) as f:
        record = json.load(f)
    return ctx.show(argv), proc.seconds, proc.peak_rss_mib, record


def measure(ctx: Context) -> Section:
    section = Section("pipeline", "Pipeline (`make run`)")
    runs = [one_run(ctx, f"run{i}") for i in range(ctx.settings.repeats)]
    command = runs[0][0].replace("/run0/", "/runN/")
    failed = [record for *_, record in runs if record["status"] != "succeeded"]
    section.notes += [
        "Default sample: 20,000 generated trips (trainer.sample_data, seed 0), default hyperparameters, "
        "kfp's local SubprocessRunner; each run starts from an empty runs root and registry.",
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
    section.add("outside the tasks (CLI start, kfp set-up, sample data, summary)", outside, "s", command)
    section.add("peak RSS (largest process)", [rss for _, _, rss, _ in runs], "MiB", command)
    return section
