"""What the pipeline's tuning steps do (components/tune.py, components/tuning_job.py call these):
run or read back a study, and hand the train step its hyperparameters, the tuned or the given.

A step's outputs: the study record (a folder with study.json), its HTML page (the trials table and
the metric by trial; the run report and evaluate's artifact embed it), and the hyperparameters
train takes (`TUNED`: every setting with a search space, searched or not).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from typing import Any

from taxifare.tuning import records
from trainer.config import TUNING_METRIC, HParams

# The hyperparameters a tuning step hands to train (NamedTuple outputs of the same names).
TUNED = ("train_steps", "train_batch_size", "hidden_units", "learning_rate", "weight_decay", "huber_delta")


def given_study(hparams: HParams, why: str = "tune_trials is 0") -> records.Study:
    """The record of a stage that did not tune: no trials, the given settings."""
    return records.Study(study_id="not-tuned", started=time.time(), status="off", error=why, metric=TUNING_METRIC,
                         fixed=_plain(dataclasses.asdict(hparams)))  # fmt: skip


def local_study(train_path: str, valid_path: str, trials: int, parallel: int, hparams: HParams,
                folder: str) -> records.Study:  # fmt: skip
    """A local study on the staged splits (scored on valid), at most the machine's cores at once."""
    from taxifare.tuning import space, study

    cfg = study.StudyConfig(train=train_path, valid=valid_path, params=space.build(), base=hparams, trials=trials,
                            parallel=max(1, min(parallel, study.cores(), trials)))  # fmt: skip
    _, result = study.run(cfg, "", lambda t: print(_trial_line(t), flush=True), folder)
    if result.best is None:
        from taxifare.errors import TaxifareError

        raise TaxifareError(f"tuning: none of the {len(result.trials)} trials completed",
                            f"see their errors in {folder}/study.json and its workers/ logs")  # fmt: skip
    return result


def _trial_line(t: records.Trial) -> str:
    from taxifare.report.tuning import trial_line

    return trial_line(t)


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def chosen(study: records.Study, hparams: HParams) -> dict[str, Any]:
    """The TUNED values train gets: the best trial's where it has them, else the given ones."""
    best = study.best.params if study.best else {}
    given = _plain(dataclasses.asdict(hparams))
    return {name: best.get(name, given[name]) for name in TUNED}


def handed_on(study: records.Study, given: HParams, study_dir: str, report_path: str) -> tuple[Any, ...]:
    """A tuning step's end: its artifacts written, its lines said, and the TUNED values train gets, in order."""
    from trainer import events

    write(study, study_dir, report_path)
    events.summary(*summary(study))
    values = chosen(study, given)
    return tuple(values[name] for name in TUNED)


def write(study: records.Study, study_dir: str, report_path: str) -> None:
    """The step's artifacts: the study's folder (its record) and its HTML page."""
    from taxifare.report import tuning as report

    os.makedirs(study_dir, exist_ok=True)
    records.save(study, study_dir)
    with open(report_path, "w") as f:
        f.write(report.html_page(study))


def summary(study: records.Study, limit: int = 15) -> list[str]:
    """The step's lines (`taxifare runs show` lists them): the trials (at most `limit`, best first),
    then the headline."""
    from taxifare.report import tuning as report

    if not study.trials:
        return [f"tuning off ({study.error}): the given hyperparameters"]
    ranked = sorted(study.trials, key=lambda t: (t.value is None, t.value or 0.0, t.number))
    shown = [report.trial_line(t, study.metric) for t in ranked[:limit]]
    if len(ranked) > limit:
        shown.append(f"... {len(ranked) - limit} more in the study's record")
    return [*shown, report.best_line(study), report.headline(study)]


def metrics(study: records.Study) -> dict[str, float]:
    best = study.best
    out = {"trials": float(len(study.trials)), "trials_complete": float(study.count("complete")),
           "trials_pruned": float(study.count("pruned")), "trials_failed": float(study.count("failed"))}  # fmt: skip
    if best is not None and best.value is not None:
        out[f"best_{study.metric}"] = best.value
    return out


def read(study_dir: str) -> records.Study | None:
    """The study a step wrote (None when the folder holds none: an older run, a missing artifact)."""
    from taxifare.errors import RecordError

    try:
        return records.read(os.path.join(study_dir, records.STUDY_FILE))
    except RecordError:
        return None
