"""A trial function for the tuner's fault tests: the study's first trial kills its worker process,
its second goes to NaN, the rest train for real (taxifare.tuning's workers import it by name)."""

from __future__ import annotations

import os

from trainer.progress import Progress


def _claim(n: int) -> bool:
    """True for exactly one caller across processes: the n-th fault is claimed once."""
    try:
        os.close(os.open(os.path.join(os.environ["TAXIFARE_TEST_FAULTS"], f"fault{n}"), os.O_CREAT | os.O_EXCL))
        return True
    except FileExistsError:
        return False


def train(cfg, progress=None, on_progress=None):
    from trainer.train import train_and_evaluate

    if _claim(0):
        os._exit(3)  # the worker dies mid-trial, as a segfault or the OOM killer would leave it
    if _claim(1):
        on_progress(Progress(100, cfg.train_steps, float("nan"), float("nan"), float("nan"), None, 0.1))
    return train_and_evaluate(cfg, progress, on_progress)
