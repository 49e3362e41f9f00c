"""`python -m taxifare.tuning.worker STUDY_DIR INDEX`: one of a study's worker processes.

Each worker imports TensorFlow once and runs trials one after another until the study has as many
as were asked for (a file lock makes "count, then ask for a trial" atomic across workers). A
trial trains on its data (or on each key-hash fold), reports the eval RMSE of every chunk of steps
to Optuna, and is stopped there when the pruner says it is unpromising; it is scored, told and its
folder removed: nothing a trial trains becomes a model. A trial that raises (a bad value, NaN) is
failed with its reason, and the worker goes on; one that kills the worker is failed by the study.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import math
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from taxifare.errors import Diverged, TaxifareError
from taxifare.tuning import space as spaces
from trainer.config import HParams

CONFIG = "config.json"
TRAIN = "trainer.train:train_and_evaluate"  # the trial's training function (tests point at others)
STEPS_PER_FOLD = 1000  # Optuna's step for a report: (fold + done/total steps) * STEPS_PER_FOLD


def storage(folder: str) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(os.path.join(folder, "journal.log")))


def sampler(config: dict[str, Any], index: int) -> Any:
    import optuna

    # TPE; with parallel workers the "constant liar" keeps them from asking for the same point.
    startup = max(4, min(10, config["trials"] // 3))
    return optuna.samplers.TPESampler(seed=config["seed"] + index, n_startup_trials=startup, constant_liar=True)


def pruner(config: dict[str, Any]) -> Any:
    import optuna

    if not config["prune"]:
        return optuna.pruners.NopPruner()
    # A trial is stopped when its eval RMSE is worse than the median of the trials before it at the
    # same point of training, from 30% of the first fold on, once a few trials have finished.
    return optuna.pruners.MedianPruner(
        n_startup_trials=max(3, config["parallel"]), n_warmup_steps=int(0.3 * STEPS_PER_FOLD)
    )


def load_study(folder: str, config: dict[str, Any], index: int) -> Any:
    import optuna

    return optuna.load_study(
        study_name=config["study_id"], storage=storage(folder), sampler=sampler(config, index), pruner=pruner(config)
    )


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _trainer(name: str) -> Callable[..., dict]:
    module, _, func = name.partition(":")
    return getattr(importlib.import_module(module), func)


class _Trial:
    """One trial's run: its progress reports, its curve, and what stopped it."""

    def __init__(self, trial: Any, folds: int):
        self.trial, self.folds = trial, folds
        self.curve: list[list[float]] = []
        self.fold = 0

    def on_progress(self, p: Any) -> None:
        import optuna

        if not math.isfinite(p.eval_rmse):
            raise Diverged(f"diverged at step {p.step}: eval rmse {p.eval_rmse}", "")
        at = self.fold + p.step / p.total
        self.curve.append([round(at, 4), p.eval_rmse])
        self.trial.report(p.eval_rmse, round(at * STEPS_PER_FOLD))
        last = self.fold == self.folds - 1 and p.step >= p.total  # done: scored, not pruned
        if not last and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {p.step} of fold {self.fold}: eval rmse {p.eval_rmse:.3f}")


def run_trial(trial: Any, config: dict[str, Any], folder: str) -> tuple[str, float | None, dict[str, Any]]:
    """Train the trial's hyperparameters on each split; (state, value, user attributes)."""
    import optuna

    from trainer.train import TrainConfig

    params = spaces.build(list(config["space"]), config["space"])
    values = spaces.suggest(trial, params)
    attrs: dict[str, Any] = {"values": {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}}
    trial.set_user_attr("values", attrs["values"])  # now: a trial that kills its worker keeps them too
    started = time.perf_counter()
    run = _Trial(trial, len(config["splits"]))
    out_dir = os.path.join(folder, "trials", str(trial.number))
    train = _trainer(config.get("train", TRAIN))
    folds: list[float] = []
    state, value = "complete", None
    try:
        hp = spaces.hparams(HParams(**_tupled(config["fixed"])), values)
        for k, (train_path, valid_path) in enumerate(config["splits"]):
            run.fold = k
            cfg = TrainConfig(train_data_paths=train_path, eval_data_paths=valid_path, export=False,
                              output_dir=os.path.join(out_dir, f"fold{k}"), **_as_dict(hp))  # fmt: skip
            result = train(cfg, progress=lambda _line: None, on_progress=run.on_progress)
            if not math.isfinite(result["rmse"]):
                raise Diverged(f"diverged: final eval rmse {result['rmse']}", "")
            folds.append(float(result["rmse"]))
        value = sum(folds) / len(folds)
    except optuna.TrialPruned as err:
        state, attrs["error"] = "pruned", str(err)
    except TaxifareError as err:
        state, attrs["error"] = "failed", err.message.splitlines()[0]
    except Exception as err:  # a crash of the trial, not of the study: failed, its reason kept
        state, attrs["error"] = "failed", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        traceback.print_exc()
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    attrs.update(curve=run.curve, fold_values=folds, seconds=time.perf_counter() - started)
    return state, value, attrs


def _tupled(values: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _as_dict(hp: HParams) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(hp)


def _tell(study: Any, trial: Any, state: str, value: float | None, attrs: dict[str, Any]) -> None:
    import optuna

    for key, val in attrs.items():
        trial.set_user_attr(key, val)
    states = {"complete": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED}
    if state == "complete":
        study.tell(trial, value)
    else:
        study.tell(trial, state=states.get(state, optuna.trial.TrialState.FAIL))


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def work(folder: str, index: int) -> int:
    """Run trials until the study has as many as asked for; the number this worker ran."""
    with open(os.path.join(folder, CONFIG)) as f:
        config = json.load(f)
    _quiet_optuna()
    import tensorflow as tf

    threads = max(1, int(config.get("threads", 1)))
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    study = load_study(folder, config, index)
    current = os.path.join(folder, "workers", f"{index}.current")
    ran = 0
    while True:
        with _locked(os.path.join(folder, "claim.lock")):
            if len(study.get_trials(deepcopy=False)) >= config["trials"]:
                return ran
            trial = study.ask()
        with open(current, "w") as f:
            f.write(str(trial.number))
        state, value, attrs = run_trial(trial, config, folder)
        _tell(study, trial, state, value, attrs)
        os.remove(current)
        print(f"trial {trial.number}: {state} {value if value is not None else attrs.get('error', '')}", flush=True)
        ran += 1


def main(argv: list[str]) -> int:
    from trainer import logs

    logs.quiet_tensorflow(False)
    work(argv[0], int(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
