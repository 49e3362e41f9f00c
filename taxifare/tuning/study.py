"""A local study: N trials of the trainer, `parallel` at a time, searched by Optuna's TPE and pruned
by its median pruner, every trial recorded in the study's folder.

    <folder>/study.json      the record (records.py): space, settings, every trial, the best
    <folder>/config.json     what the workers read
    <folder>/journal.log     Optuna's storage (append-only: a killed study keeps finished trials)
    <folder>/workers/N.log   each worker's output
    <folder>/folds/          the key-hash folds' CSVs, with folds

Workers are processes of their own (worker.py) that die with this one. The trials are scored on
the validation split, or with `folds` on K key-hash folds of train + valid together (each trial
trains K times; its metric is the mean). Nothing a trial trains is kept: the best trial's settings
are the study's result, trained by whoever asked (the pipeline's train step).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from taxifare.errors import UsageError
from taxifare.tuning import records, worker
from taxifare.tuning.space import Param
from trainer.config import TUNING_METRIC, HParams

POLL_SECONDS = 0.5
MAX_WORKER_RESTARTS = 10  # workers that die (a trial that kills its process) are replaced up to this
STOP_GRACE = 5.0


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """What a study searches, on what, and how much."""

    train: str  # training CSV(s)
    valid: str  # validation CSV(s)
    params: Sequence[Param]
    base: HParams = dataclasses.field(default_factory=HParams)  # the settings not searched
    trials: int = 20
    parallel: int = 2
    folds: int = 0  # 0: score on valid; K >= 2: K key-hash folds of train + valid
    prune: bool = True
    seed: int = 0  # the sampler's
    given_first: bool = True  # trial 0 trains the given settings (when the space holds them): the bar
    train_function: str = worker.TRAIN

    def check(self) -> StudyConfig:
        from trainer.config import MAX_PARALLEL_TRIALS, MAX_TRIALS

        if not 1 <= self.trials <= MAX_TRIALS:
            raise UsageError(f"--trials must be from 1 to {MAX_TRIALS}, got {self.trials}")
        if not 1 <= self.parallel <= MAX_PARALLEL_TRIALS:
            raise UsageError(f"--parallel must be from 1 to {MAX_PARALLEL_TRIALS}, got {self.parallel}")
        if self.folds == 1 or not 0 <= self.folds <= 20:
            raise UsageError(f"--folds must be 0 (score on the validation data) or 2 to 20, got {self.folds}")
        return self


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _splits(cfg: StudyConfig, folder: str) -> list[tuple[str, str]]:
    if not cfg.folds:
        return [(cfg.train, cfg.valid)]
    from taxifare.tuning import folds

    return folds.write(cfg.train, cfg.valid, cfg.folds, os.path.join(folder, "folds"))


def prepare(cfg: StudyConfig, folder: str, study_id: str) -> records.Study:
    """The study's folder: its config for the workers, Optuna's storage, the first record."""
    import optuna

    os.makedirs(os.path.join(folder, "workers"), exist_ok=True)
    workers = min(cfg.parallel, cfg.trials)
    config = {
        "study_id": study_id, "trials": cfg.trials, "parallel": workers, "prune": cfg.prune, "seed": cfg.seed,
        "space": {p.name: p.text for p in cfg.params}, "fixed": dataclasses.asdict(cfg.base),
        "splits": _splits(cfg, folder), "threads": max(1, cores() // workers), "train": cfg.train_function,
    }  # fmt: skip
    with open(os.path.join(folder, worker.CONFIG), "w") as f:
        json.dump(config, f, indent=2)
    worker._quiet_optuna()
    created = optuna.create_study(study_name=study_id, storage=worker.storage(folder), direction="minimize")
    if cfg.given_first and (given := _given(cfg)):
        created.enqueue_trial(given, user_attrs={"given": True})  # trial 0: what tuning has to beat
    searched = {p.name for p in cfg.params}
    study = records.Study(
        study_id=study_id, started=time.time(), metric=TUNING_METRIC, trials_wanted=cfg.trials, parallel=workers,
        scored_on=f"{cfg.folds} key-hash folds of train + valid" if cfg.folds else "validation",
        space=[p.describe() for p in cfg.params], data={"train": cfg.train, "valid": cfg.valid},
        fixed={k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg.base).items()
               if k not in searched},
        pid=os.getpid(),
    )  # fmt: skip
    records.save(study, folder)
    return study


def _given(cfg: StudyConfig) -> dict[str, Any]:
    """The base settings as a point of the space ({} when the space does not hold them)."""
    from taxifare.tuning.space import label

    point: dict[str, Any] = {}
    for p in cfg.params:
        value = getattr(cfg.base, p.name)
        if p.search.values:
            if label(value) not in p.labels:
                return {}
            point[p.name] = label(value)
        elif not (p.search.low or 0) <= value <= (p.search.high or 0):
            return {}
        else:
            point[p.name] = value
    return point


def _die_with_parent() -> None:
    """In the worker, before exec: SIGKILL when the study's process dies, however it dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _start_worker(folder: str, index: int) -> subprocess.Popen:
    log = open(os.path.join(folder, "workers", f"{index}.log"), "a")  # noqa: SIM115 - the child holds it
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "taxifare.tuning.worker", folder, str(index)], stdout=log,
                            stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)  # fmt: skip
    log.close()
    return proc


def trial_record(t: Any) -> records.Trial:
    """An Optuna trial as the study records it."""
    attrs = t.user_attrs
    state = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}.get(t.state.name, "running")
    return records.Trial(
        number=t.number, state=state, params=attrs.get("values") or dict(t.params),
        value=float(t.value) if state == "complete" and t.value is not None else None,
        fold_values=attrs.get("fold_values", []), curve=attrs.get("curve", []),
        seconds=attrs.get("seconds") or (t.duration.total_seconds() if t.duration else None), error=attrs.get("error"),
        given=bool(attrs.get("given")),
    )  # fmt: skip


class _Workers:
    """The worker processes: started, replaced when one dies with trials left, stopped."""

    def __init__(self, folder: str, count: int):
        self.folder = folder
        self.procs = {i: _start_worker(folder, i) for i in range(count)}
        self.restarts = 0

    def reap(self, fail: Callable[[int, str], None], more: bool) -> bool:
        """Handle workers that ended; True while any runs."""
        for i, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.procs[i]
            current = os.path.join(self.folder, "workers", f"{i}.current")
            if code != 0 and os.path.isfile(current):
                with open(current) as f:
                    fail(int(f.read().strip() or -1), f"its worker process died (exit {code}); see workers/{i}.log")
                os.remove(current)
            if code != 0 and more and self.restarts < MAX_WORKER_RESTARTS:
                self.restarts += 1
                self.procs[i] = _start_worker(self.folder, i)
        return bool(self.procs)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for proc in self.procs.values():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _fail(optuna_study: Any, number: int, why: str) -> None:
    import optuna

    for t in optuna_study.get_trials(deepcopy=False):
        if t.number == number and t.state == optuna.trial.TrialState.RUNNING:
            optuna_study._storage.set_trial_user_attr(t._trial_id, "error", why)
            optuna_study.tell(number, state=optuna.trial.TrialState.FAIL)


def _refresh(study: records.Study, optuna_study: Any, folder: str, seen: dict[int, str],
             on_trial: Callable[[records.Trial], None]) -> None:  # fmt: skip
    study.trials = [trial_record(t) for t in optuna_study.get_trials(deepcopy=False)]
    changed = False
    for t in study.trials:
        if t.state != "running" and seen.get(t.number) != t.state:
            seen[t.number] = t.state
            changed = True
            on_trial(t)
    if changed:
        records.save(study, folder)


def run(cfg: StudyConfig, runs_root: str, on_trial: Callable[[records.Trial], None] | None = None,
        folder: str | None = None) -> tuple[str, records.Study]:  # fmt: skip
    """Run a study to its end (or until interrupted); (its folder, its record).

    `folder`: where (default: a new one under <runs_root>/studies/). KeyboardInterrupt and SIGTERM
    stop the workers, fail their running trials as interrupted, save the record, then propagate.
    """
    cfg.check()
    study_id = records.new_id()
    folder = folder or os.path.join(records.studies_root(runs_root), study_id)
    study = prepare(cfg, folder, study_id)
    with open(os.path.join(folder, worker.CONFIG)) as f:
        optuna_study = worker.load_study(folder, json.load(f), 0)
    workers = _Workers(folder, study.parallel)
    seen: dict[int, str] = {}
    shown = on_trial or (lambda _t: None)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
    try:
        while workers.reap(lambda n, why: _fail(optuna_study, n, why), more=_more(optuna_study, cfg.trials)):
            _refresh(study, optuna_study, folder, seen, shown)
            time.sleep(POLL_SECONDS)
        study.status = "finished"
    except KeyboardInterrupt:
        workers.stop()
        study.status = "interrupted"
        for t in optuna_study.get_trials(deepcopy=False):
            if t.state.name == "RUNNING":
                _fail(optuna_study, t.number, "interrupted: the study was stopped")
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        _refresh(study, optuna_study, folder, seen, shown)
        study.seconds, study.pid = time.time() - study.started, None
        if study.status == "finished" and not study.best:
            study.status, study.error = "failed", "no trial completed"
        records.save(study, folder)
    return folder, study


def _more(optuna_study: Any, wanted: int) -> bool:
    done = [t for t in optuna_study.get_trials(deepcopy=False) if t.state.name != "RUNNING"]
    return len(done) < wanted


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
