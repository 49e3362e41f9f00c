"""The tuning stage on Vertex AI, around GCPC's HyperparameterTuningJobRunOp (the work:
taxifare/tuning/vertex.py): `tuning_job_spec` gives the job its trials' worker pool (the pipeline's
image running the trainer on the staged splits, written under its own output's folder);
`best_trial` reads the finished job back and passes its best trial's hyperparameters to train."""

from typing import TYPE_CHECKING, NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent


def tuning_job_spec(
    train_data: Input[Dataset],
    valid_data: Input[Dataset],
    image: str,
    machine_type: str,
    accelerator_type: str,
    accelerator_count: int,
    boot_disk_size_gb: int,
    train_steps: int,
    seed: int,
    trials: Output[Artifact],
) -> NamedTuple("TuningJob", [("worker_pool_specs", list), ("base_output_directory", str)]):  # type: ignore[valid-type]
    """The tuning job's trial spec: the trainer in the pipeline's image on the staged splits."""
    from taxifare.tuning import vertex

    args = vertex.trial_args(train_data.uri, valid_data.uri, {"train_steps": train_steps, "seed": seed})
    pools = vertex.worker_pool_specs(image, args, machine_type, accelerator_type, accelerator_count, boot_disk_size_gb)
    trials.metadata["trials_under"] = trials.uri  # each trial writes to <this>/<trial id>/ (its AIP_MODEL_DIR)
    return (pools, trials.uri)


def best_trial(
    gcp_resources: str,
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
) -> NamedTuple(  # type: ignore[valid-type]  # the same outputs as tune_hparams (step.TUNED, in order)
    "Tuned",
    [("train_steps", int), ("train_batch_size", int), ("hidden_units", list), ("learning_rate", float),
     ("weight_decay", float), ("huber_delta", float)],
):  # fmt: skip
    """Read the finished tuning job back and pass on its best trial's hyperparameters."""
    import dataclasses

    from components import record
    from taxifare.tuning import step, vertex
    from trainer.config import HParams

    given = HParams.from_step(
        train_steps=train_steps, train_batch_size=train_batch_size, hidden_units=hidden_units,
        learning_rate=learning_rate, weight_decay=weight_decay, huber_delta=huber_delta, seed=seed,
    )  # fmt: skip
    found = vertex.best_trial(gcp_resources, dataclasses.asdict(given))
    record(metrics, step.metrics(found), {"headline": step.summary(found)[-1], "job": found.data.get("job")})
    return step.handed_on(found, given, study.path, tuning_report.path)


def spec_component(image: str) -> "PythonComponent":
    return dsl.component(tuning_job_spec, base_image=image, install_kfp_package=False)


def best_component(image: str) -> "PythonComponent":
    return dsl.component(best_trial, base_image=image, install_kfp_package=False)
