"""Step 2, train: the trainer on the staged splits; the SavedModel becomes the Model artifact."""

import dataclasses
import json
import os
from typing import TYPE_CHECKING

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent

from trainer.features import HParams


def run(
    train_path: str, valid_path: str, model_dir: str, tensorboard_dir: str, work_dir: str, hparams: HParams
) -> dict:
    from trainer import train

    cfg = train.TrainConfig(
        train_data_paths=train_path,
        eval_data_paths=valid_path,
        output_dir=work_dir,
        model_dir=model_dir,
        tensorboard_dir=tensorboard_dir,
        **dataclasses.asdict(hparams),
    )
    return train.train_and_evaluate(cfg, progress=print)


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
    import os

    from components.train import record, run
    from trainer.features import HParams

    # A list parameter's numbers arrive as floats (protobuf Values): 64.0 means 64; 64.5 fails the check.
    units = tuple(int(u) if isinstance(u, float) and u.is_integer() else u for u in hidden_units)
    hparams = HParams(
        train_steps=train_steps, train_batch_size=train_batch_size, hidden_units=units,
        learning_rate=learning_rate, weight_decay=weight_decay, huber_delta=huber_delta, seed=seed,
    )  # fmt: skip
    work_dir = os.path.join(os.path.dirname(model.path), "trainer-output")
    result = run(train_data.path, valid_data.path, model.path, tensorboard.path, work_dir, hparams)
    if result.get("export_dir") is None:
        # A non-chief replica of a multi-worker custom job: leave the step's outputs (and
        # kfp's executor output, written on return) to the chief alone.
        os._exit(0)
    record(result, model, metrics, tensorboard)


def record(result: dict, model: Model, metrics: Metrics, tensorboard: Artifact) -> None:
    model.metadata.update({"framework": "tensorflow", "valid_rmse": result["rmse"], "signature": "serving_default"})
    tensorboard.metadata["log_dir"] = tensorboard.uri
    for name in ("rmse", "mae", "steps", "examples_per_sec", "wall_seconds"):
        if result.get(name) is not None:
            metrics.log_metric(f"valid_{name}" if name in ("rmse", "mae") else name, result[name])
    with open(metrics.path, "w") as f:
        json.dump({k: v for k, v in result.items() if k != "config"}, f, indent=2, default=str)
    os.makedirs(tensorboard.path, exist_ok=True)


def component(image: str) -> "PythonComponent":
    return dsl.component(train_model, base_image=image, install_kfp_package=False)
