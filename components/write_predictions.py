"""Batch step 4 (local runs), write_predictions: the predictions where they were asked for, marked
complete once they are all there (the work: taxifare/batch/outputs.py)."""

from typing import TYPE_CHECKING

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent


def write_predictions(
    predictions: Input[Dataset], rejected: Input[Dataset], drift: Input[Artifact], output: str, output_format: str
) -> str:
    """Copy the predictions (and the rejected rows, beside them) to `output`, then mark them complete."""
    from taxifare.batch import outputs
    from trainer import events

    where = predictions.path
    if output:
        where = outputs.publish(predictions.path, rejected.path, output, output_format)
    lines = [f"predictions: {where} ({int(predictions.metadata.get('rows', 0)):,} rows)"]
    if drift.metadata.get("flagged"):
        psi = drift.metadata["max_psi"]
        lines.append(f"flagged: the input drifted from the model's training data (max PSI {psi:.2f})")
    events.summary(*lines)
    return where


def component(image: str) -> "PythonComponent":
    return dsl.component(write_predictions, base_image=image, install_kfp_package=False)
