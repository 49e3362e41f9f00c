"""Step 2 (optional), tune: the local tuner on the staged splits, or the given hyperparameters when
tune_trials is 0; its best trial's hyperparameters go to train (the work: taxifare/tuning/)."""

from typing import TYPE_CHECKING, NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent


def tune_hparams(
    train_data: Input[Dataset],
    valid_data: Input[Dataset],
    tune_trials: int,
    tune_parallel_trials: int,
    train_steps: int,
    train_batch_size: int,
    hidden_units: list,
    learning_rate: float,
    weight_decay: float,
    huber_delta: float,
    seed: int,
    study: Output[Artifact],
    tuning_report: Output[HTML],
    metrics: Output[Metrics],
) -> NamedTuple(  # type: ignore[valid-type]  # kfp reads the outputs from it (step.TUNED, in order)
    "Tuned",
    [("train_steps", int), ("train_batch_size", int), ("hidden_units", list), ("learning_rate", float),
     ("weight_decay", float), ("huber_delta", float)],
):  # fmt: skip
    """Search the hyperparameters on the staged data (tune_trials > 0) and pass on the best."""
    from components import record
    from taxifare.tuning import step
    from trainer.config import HParams

    given = HParams.from_step(
        train_steps=train_steps, train_batch_size=train_batch_size, hidden_units=hidden_units,
        learning_rate=learning_rate, weight_decay=weight_decay, huber_delta=huber_delta, seed=seed,
    )  # fmt: skip
    if tune_trials > 0:
        found = step.local_study(train_data.path, valid_data.path, tune_trials, tune_parallel_trials, given, study.path)
    else:
        found = step.given_study(given)
    record(metrics, step.metrics(found), {"headline": step.summary(found)[-1]})
    return step.handed_on(found, given, study.path, tuning_report.path)


def component(image: str) -> "PythonComponent":
    return dsl.component(tune_hparams, base_image=image, install_kfp_package=False)
