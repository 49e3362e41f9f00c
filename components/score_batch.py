"""Batch step 3 (local runs), score_batch: every row of the input scored, or rejected with its reason
(the work: taxifare/batch/scoring.py)."""

from typing import TYPE_CHECKING

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent


def score_batch(
    chosen: Input[Model],
    input: str,
    output_format: str,
    predictions: Output[Dataset],
    rejected: Output[Dataset],
    metrics: Output[Metrics],
):
    """Score the input with the model, in input order; rejected rows apart, with their row and reason."""
    from components import record
    from taxifare.batch import inputs, scoring
    from trainer import events, logs

    logs.quiet_tensorflow(False)
    from trainer.predict import Predictor

    name = chosen.metadata.get("name", "")
    result = scoring.score(inputs.expand(input), predictions.path, Predictor(chosen.path).predict,
                           fmt=output_format, errors=rejected.path, model=name)  # fmt: skip
    predictions.metadata.update({"rows": result.scored, "format": output_format})
    rejected.metadata.update({"rows": sum(result.rejected.values())})
    record(metrics, scoring.metrics(result), result.as_dict())
    events.summary(*result.summary())


def component(image: str) -> "PythonComponent":
    return dsl.component(score_batch, base_image=image, install_kfp_package=False)
