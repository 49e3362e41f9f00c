"""Step 3, evaluate: candidate vs the distance-rule baseline vs the champion, and the gate
(the work: taxifare/evaluation/)."""

from typing import TYPE_CHECKING

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent


def evaluate_model(
    test_data: Input[Dataset],
    train_data: Input[Dataset],
    candidate: Input[Model],
    study: Input[Artifact],
    deploy_target: str,
    registry: str,
    tolerance: float,
    allow_new_source: bool,
    project: str,
    region: str,
    metrics: Output[Metrics],
    decision: Output[Artifact],
    report: Output[HTML],
    summary: Output[Markdown],
) -> bool:
    """Score the candidate, the distance baseline and the champion on the test split and its slices; gate."""
    import json

    from components import record
    from taxifare.evaluation import gate, scoring
    from taxifare.report import evaluation
    from trainer import events

    scored = scoring.checked_score(test_data.path, train_data.path, candidate.path, deploy_target, registry,
                                   tolerance, project, region)  # fmt: skip
    lineage = {k: train_data.metadata.get(k) for k in scoring.LINEAGE}  # stage_data's, for the whole split
    result = gate.assess(scored, tolerance, lineage, allow_new_source)
    record(metrics, gate.metrics(result), result)
    decision.metadata.update({"blessed": result["blessed"], "reason": result["reason"]})
    with open(decision.path, "w") as f:
        json.dump(result, f, indent=2)
    # The run's tuning (its trials table and metric by trial) beside the evaluation, when it tuned.
    evaluation.write(result, scoring.figures(scored), report.path, summary.path, tuning=study.path)
    events.summary(*gate.summary(result))
    return result["blessed"]


def component(image: str) -> "PythonComponent":
    return dsl.component(evaluate_model, base_image=image, install_kfp_package=False)
