"""Step 2, train: the trainer on the staged splits; the SavedModel becomes the Model artifact."""

from typing import TYPE_CHECKING

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent


def train_model(
    train_data: Input[Dataset],
    valid_data: Input[Dataset],
    train_steps: int,
    train_batch_size: int,
    hidden_units: list,
    learning_rate: float,
    weight_decay: float,
    huber_delta: float,
    seed: int,
    model: Output[Model],
    metrics: Output[Metrics],
    tensorboard: Output[Artifact],
):
    """Train the taxi-fare model on the staged data and export it."""
    import dataclasses
    import os

    from components import record
    from trainer import events, progress, train
    from trainer.config import HParams

    hparams = HParams.from_step(
        train_steps=train_steps, train_batch_size=train_batch_size, hidden_units=hidden_units,
        learning_rate=learning_rate, weight_decay=weight_decay, huber_delta=huber_delta, seed=seed,
    )  # fmt: skip
    work_dir = os.path.join(os.path.dirname(model.path), "trainer-output")
    # On Vertex AI, the custom job's base_output_directory makes AIP_TENSORBOARD_LOG_DIR: with a TensorBoard
    # instance given, Vertex AI uploads what is written there to it as the training goes.
    log_dir = os.environ.get("AIP_TENSORBOARD_LOG_DIR") or tensorboard.path
    cfg = train.TrainConfig.of(hparams, train_data.path, valid_data.path, work_dir, model.path, log_dir)
    result = train.train_and_evaluate(cfg, progress=print, on_progress=progress.emit)
    if result.get("export_dir") is None:
        # A non-chief replica of a multi-worker custom job: leave the step's outputs (and
        # kfp's executor output, written on return) to the chief alone.
        os._exit(0)
    model.metadata.update({"framework": "tensorflow", "valid_rmse": result["rmse"], "signature": "serving_default",
                           "hparams": dataclasses.asdict(hparams), "code": train.code_fingerprint()})  # fmt: skip
    tensorboard.metadata["log_dir"] = tensorboard.uri if log_dir == tensorboard.path else log_dir
    os.makedirs(tensorboard.path, exist_ok=True)
    record(metrics, train.metrics(result), {k: v for k, v in result.items() if k != "config"})
    events.summary(*train.summary(result))


def component(image: str) -> "PythonComponent":
    return dsl.component(train_model, base_image=image, install_kfp_package=False)
