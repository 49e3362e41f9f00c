"""Batch step 2, check_drift: the input against the model's training statistics, feature by feature
(the work: taxifare/batch/drift.py, trainer/drift.py)."""

from typing import TYPE_CHECKING

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Metrics, Model, Output

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent


def check_drift(
    chosen: Input[Model],
    input: str,
    project: str,
    drift_threshold: float,
    metrics: Output[Metrics],
    drift: Output[Artifact],
    report: Output[Markdown],
) -> bool:
    """Compare the input with what the model was trained on; flag the run past the threshold."""
    from components import record
    from taxifare.batch import drift as checks
    from trainer import drift as profiles
    from trainer import events

    found = checks.check_input(chosen.path, input, drift_threshold, project)
    name = chosen.metadata.get("name", "the model")
    record(metrics, profiles.metrics(found) if found else {}, found or {"checked": False})
    with open(drift.path, "w") as f:
        f.write(profiles.dumps(found or {"checked": False}))
    drift.metadata.update({"flagged": bool(found and found["flagged"]), "max_psi": found["max_psi"] if found else 0})
    with open(report.path, "w") as f:
        f.write(checks.markdown(found, name))
    events.summary(*profiles.summary(found, name))
    return bool(found and found["flagged"])


def component(image: str) -> "PythonComponent":
    return dsl.component(check_drift, base_image=image, install_kfp_package=False)
