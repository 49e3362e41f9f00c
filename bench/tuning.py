"""Section 6, tuning: how many trials of the default budget the local tuner runs per hour.

Each run is `taxifare tune` in a fresh process on the trainer section's data (the lab's CSVs when
../shared/data has them), scored on its validation file: N trials of the default budget (3000
steps), as many at a time as there are cores, TPE search, median pruning, trial 0 the defaults.
Wall time is from process start to exit (study set-up, worker start-up, every trial, the table).
Trials per hour = trials / wall time. The figures depend on how many trials the pruner stops: the
trials that finished, were pruned or failed are counted per run.
"""

from __future__ import annotations

import glob
import json
import os

from bench import Context, run_process
from bench.report import Section, Target
from trainer.config import DEFAULTS

TARGET_SECONDS = 300.0  # 20 trials of the default budget on 2 cores
# The study the defaults were chosen from (trainer/config.py): measured once, not rerun here.
DEFAULTS_STUDY = (
    "The defaults' study (not rerun here): `taxifare tune --trials 60 --folds 3 --train-data taxi-train.csv "
    "--valid-data taxi-valid.csv` with the previous defaults as flags: 60 trials on 3 key-hash folds of train + valid "
    "(each trial trains 3 times), 22 complete, 38 pruned, 0 failed, in 1,228 s on the 2 shared cores (load average "
    "6-9: about 176 trials/h of 3 trainings each). Its best, 4.069 mean fold RMSE, trains with a batch of 1024: twice "
    "the examples of the default budget. The defaults are its best within the budget's examples (trial 26, 4.077: "
    "batch 256, 64 64 64 units, learning rate 0.00034, weight decay 0.0018, Huber delta 8, rounded). Its folds are "
    "not section 5's, but they hold the same rows: section 5's gain over the previous defaults carries some of the "
    "study's selection."
)
FULL_TRIALS, QUICK_TRIALS = 20, 4


def one_study(ctx: Context, label: str, trials: int) -> tuple[str, float, float, dict]:
    """(command, wall seconds, peak RSS MiB, study record) of one `taxifare tune`."""
    train, valid, _ = ctx.training_data()
    root = ctx.path("tuning", label)
    argv = [
        os.path.join(ctx.bin_dir, "taxifare"), "tune", "--trials", str(trials),
        "--train-data", train, "--valid-data", valid, "--runs-root", root,
    ]  # fmt: skip
    proc = run_process(argv, timeout=1800).check()
    found = glob.glob(os.path.join(root, "studies", "*", "study.json"))
    if len(found) != 1:
        raise RuntimeError(f"expected one study under {root}/studies, found {len(found)}:\n{proc.tail()}")
    with open(found[0]) as f:
        return ctx.show(argv), proc.seconds, proc.peak_rss_mib, json.load(f)


def _count(study: dict, state: str) -> float:
    return float(sum(t["state"] == state for t in study["trials"]))


def measure(ctx: Context) -> Section:
    section = Section("tuning", "Tuning (`taxifare tune`)")
    trials = QUICK_TRIALS if ctx.settings.quick else FULL_TRIALS
    runs = [one_study(ctx, f"run{i}", trials) for i in range(min(ctx.settings.repeats, 2))]
    command = runs[0][0].replace("/run0", "/runN")
    _, _, data = ctx.training_data()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    section.notes += [
        f"Data: {data}; each trial trains on the training file and is scored on the validation file.",
        f"{trials} trials of the default budget ({DEFAULTS.train_steps} steps), {cores} at a time (the cores), "
        "Optuna's TPE (trial 0 the default settings) and median pruning (from 30% of training on, after 3 finished "
        "trials).",
        "Wall time: process start → exit, including the study's set-up and each worker's TensorFlow start-up.",
        DEFAULTS_STUDY,
    ]
    if ctx.settings.quick:
        section.notes.append(f"**Quick run**: {trials} trials, not {FULL_TRIALS}; the target is not judged on it.")
    target = None if ctx.settings.quick else Target("<=", TARGET_SECONDS)
    section.add(f"wall time, {trials} trials", [s for _, s, _, _ in runs], "s", command, target)
    section.add("trials per hour", [trials * 3600 / s for _, s, _, _ in runs], "trials/h", command)
    for state in ("complete", "pruned", "failed"):
        section.add(f"trials {state}", [_count(study, state) for *_, study in runs], "trials", command)
    seconds = [t["seconds"] for *_, study in runs for t in study["trials"] if t["state"] == "complete"]
    section.add("a completed trial's seconds (each, all runs)", seconds, "s", command)
    best = [min(t["value"] for t in study["trials"] if t["state"] == "complete") for *_, study in runs]
    given = [t["value"] for *_, study in runs for t in study["trials"] if t.get("given") and t["value"] is not None]
    section.add("best trial's validation RMSE", best, "RMSE $", command)
    section.add("trial 0 (the defaults): validation RMSE", given, "RMSE $", command)
    section.add("peak RSS (largest process: a worker)", [rss for _, _, rss, _ in runs], "MiB", command)
    return section
