"""A study's record: what was searched, every trial (parameters, curve, metric, time, state) and the best.

`study.json` in the study's folder, rewritten whole (atomically) after every trial, so a study that
is killed keeps every trial that finished. Read back with msgspec into these types: a damaged or
foreign file is one line naming it (a record is untrusted input, like a run's).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import msgspec

from taxifare.errors import RecordError
from taxifare.files import pid_alive

STUDY_FILE = "study.json"
VERSION = 1
MAX_BYTES = 16 << 20
STATES = ("complete", "pruned", "failed", "running")
FIX = "`taxifare tune` starts a new study"


class Trial(msgspec.Struct, kw_only=True):
    number: int
    state: str  # complete, pruned, failed (crashed, diverged, interrupted), running
    params: dict[str, Any] = {}  # the tuned settings' values (a layout as a list)
    value: float | None = None  # the metric (RMSE; the mean over folds with folds): complete trials only
    fold_values: list[float] = []
    curve: list[list[float]] = []  # [progress, eval RMSE]: progress = fold + step/steps (0..folds)
    seconds: float | None = None
    error: str | None = None  # why it failed or was pruned
    given: bool = False  # the settings the study was given (its trial 0): the bar tuning has to beat


class Study(msgspec.Struct, kw_only=True):
    version: int = VERSION
    study_id: str
    started: float
    seconds: float | None = None
    status: str = "running"  # running, finished, interrupted, failed
    where: str = "local"  # local (taxifare's tuner) or vertex (a hyperparameter tuning job)
    metric: str = "rmse"
    scored_on: str = "validation"  # validation, or "K key-hash folds"
    trials_wanted: int = 0
    parallel: int = 1
    space: list[str] = []  # each searched setting's space, as said
    fixed: dict[str, Any] = {}  # the settings not searched (the base hyperparameters)
    data: dict[str, str] = {}
    trials: list[Trial] = []
    error: str | None = None
    pid: int | None = None  # the study's process while it runs (a record still running without it was killed)

    @property
    def best(self) -> Trial | None:
        done = [t for t in self.trials if t.state == "complete" and t.value is not None and math.isfinite(t.value)]
        return min(done, key=lambda t: (t.value, t.number)) if done else None

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials)

    def best_hparams(self) -> dict[str, Any]:
        """The fixed settings with the best trial's values: what `taxifare run --hparams` reuses."""
        best = self.best
        return {**self.fixed, **(best.params if best else {})}


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Study)


def save(study: Study, folder: str) -> str:
    path = os.path.join(folder, STUDY_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(msgspec.json.format(_encoder.encode(study), indent=2))
    os.replace(tmp, path)
    return path


def read(path: str) -> Study:
    """A study record from its file (or its folder); RecordError naming the file if it cannot be trusted."""
    from taxifare.runs.records import read_regular

    if os.path.isdir(path):
        path = os.path.join(path, STUDY_FILE)
    raw = read_regular(path, MAX_BYTES, RecordError, FIX)
    try:
        study = _decoder.decode(raw)
    except msgspec.ValidationError as err:
        raise RecordError(f"{path} does not hold a study record ({err})", FIX) from None
    except msgspec.DecodeError:
        raise RecordError(f"{path} is not valid JSON (damaged or truncated)", FIX) from None
    if study.version != VERSION:
        raise RecordError(f"{path} is a version {study.version} study; this taxifare reads version {VERSION}", FIX)
    return settled(study)


def settled(study: Study) -> Study:
    """A study whose process is gone while its record says running was killed: interrupted, and its
    running trials failed as such (what finished stays as it was)."""
    if study.status != "running" or study.pid is None or pid_alive(study.pid):
        return study
    study.status = "interrupted"
    for t in study.trials:
        if t.state == "running":
            t.state, t.error = "failed", "interrupted: the study was killed"
    return study


def new_id() -> str:
    import secrets

    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def studies_root(runs_root: str) -> str:
    return os.path.join(runs_root, "studies")


def list_studies(runs_root: str) -> list[tuple[str, Study]]:
    """(folder, study) of every readable study under the runs root, newest first."""
    root = studies_root(runs_root)
    found = []
    for name in sorted(os.listdir(root) if os.path.isdir(root) else [], reverse=True):
        folder = os.path.join(root, name)
        try:
            found.append((folder, read(folder)))
        except RecordError:
            continue
    return found
