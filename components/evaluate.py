"""Step 3, evaluate: candidate vs the distance-rule baseline vs the champion, and the gate."""

import dataclasses
import json
from typing import TYPE_CHECKING

import numpy as np
from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent

from taxifare.errors import UsageError
from trainer import baseline, settings, sources
from trainer.features import CHAMPION_TOLERANCE, FEATURES, LABEL
from trainer.settings import below_one, setting


@dataclasses.dataclass(frozen=True)
class Gate:
    """When a candidate deploys: the step's setting, checked once."""

    tolerance: float = setting(
        CHAMPION_TOLERANCE,
        "how much worse (relative RMSE) than the champion a candidate may be and still deploy",
        below_one,
    )


def champion_model_dir(
    deploy_target: str, registry: str, project: str = "", region: str = "", api_endpoint: str = ""
) -> tuple[str | None, str | None]:
    """(version, SavedModel dir) of the current champion, or (None, None) when there is none.

    For vertex, `registry` is the parent model id and the directory is Vertex's /gcs/ mount
    of the champion's artifact, or a downloaded copy.
    """
    if deploy_target == "vertex":
        from taxifare.registry import vertex

        reg = vertex.VertexRegistry(project, region, registry, api_endpoint)
        found = reg.champion()
        return (found.model, reg.download(found)) if found else (None, None)
    if deploy_target != "local":
        raise UsageError(f"unknown deploy_target {deploy_target!r}: expected 'local' or 'vertex'")
    from taxifare.registry.local import LocalRegistry

    champion = LocalRegistry(registry).champion()
    return (champion.name, champion.model_dir) if champion else (None, None)


def decide(
    candidate: dict[str, float], baseline_metrics: dict[str, float], champion: dict[str, float] | None, tolerance: float
) -> tuple[bool, str]:
    """Bless the candidate only if it beats the baseline and is not worse than the champion beyond tolerance."""
    c, b = candidate["rmse"], baseline_metrics["rmse"]
    if not c < b:
        return False, f"candidate RMSE {c:.3f} does not beat the distance baseline {b:.3f}"
    if champion is None:
        return True, f"candidate RMSE {c:.3f} beats the baseline {b:.3f}; no champion yet"
    limit = champion["rmse"] * (1 + tolerance)
    if c > limit:
        return False, (
            f"candidate RMSE {c:.3f} is worse than the champion's {champion['rmse']:.3f} "
            f"beyond the {tolerance:.0%} tolerance (limit {limit:.3f})"
        )
    return True, (
        f"candidate RMSE {c:.3f} beats the baseline {b:.3f} and is within {tolerance:.0%} of "
        f"the champion's {champion['rmse']:.3f}"
    )


def evaluate(
    test_path: str,
    train_path: str,
    candidate_dir: str,
    deploy_target: str,
    registry: str,
    tolerance: float,
    project: str = "",
    region: str = "",
    api_endpoint: str = "",
) -> dict:
    from trainer.predict import Predictor

    settings.check(Gate(tolerance))
    test, _ = sources.read_columns(test_path)
    train, _ = sources.read_columns(train_path)
    truth = test[LABEL]
    raw = np.stack([test[name] for name in FEATURES], axis=1).astype(np.float32)
    rule = baseline.fit(train)
    candidate = Predictor(candidate_dir).predict(raw)
    candidate_metrics = baseline.regression_metrics(truth, candidate)
    baseline_metrics = baseline.regression_metrics(truth, rule.predict(test))
    champion_metrics = None
    version, champion_dir = champion_model_dir(deploy_target, registry, project, region, api_endpoint)
    champion_pred = None
    if champion_dir:
        champion_pred = Predictor(champion_dir).predict(raw)
        champion_metrics = baseline.regression_metrics(truth, champion_pred)
    blessed, reason = decide(candidate_metrics, baseline_metrics, champion_metrics, tolerance)
    sample = {name: float(test[name][0]) for name in FEATURES}
    return {
        "candidate": candidate_metrics,
        "baseline": baseline_metrics,
        "champion": champion_metrics,
        "champion_version": version,
        "blessed": blessed,
        "reason": reason,
        "test_rows": len(truth),
        "baseline_rule": {"intercept": rule.intercept, "rate_per_degree": rule.rate_per_degree},
        "sample": {
            "instance": sample,
            "fare_amount": float(truth[0]),
            "candidate": float(candidate[0]),
            "champion": None if champion_pred is None else float(champion_pred[0]),
        },
    }


def evaluate_model(
    test_data: Input[Dataset],
    train_data: Input[Dataset],
    candidate: Input[Model],
    deploy_target: str,
    registry: str,
    tolerance: float,
    project: str,
    region: str,
    metrics: Output[Metrics],
    decision: Output[Artifact],
) -> bool:
    """Score the candidate, the distance baseline and the champion on the test split; gate.

    Args:
        deploy_target: where the champion lives: local or vertex.
        registry: the local registry directory holding the champion; for vertex, the parent model id.
        tolerance: how much worse than the champion (relative RMSE) a candidate may be.
        project: for vertex, the Google Cloud project of the Model Registry.
        region: for vertex, the region of the Model Registry.
    """
    from components.evaluate import evaluate, record

    result = evaluate(
        test_data.path, train_data.path, candidate.path, deploy_target, registry, tolerance, project, region
    )
    record(result, metrics, decision)
    return result["blessed"]


def record(result: dict, metrics: Metrics, decision: Artifact) -> None:
    for who in ("candidate", "baseline", "champion"):
        for name, value in (result[who] or {}).items():
            metrics.log_metric(f"{who}_{name}", value)
    metrics.log_metric("blessed", int(result["blessed"]))
    decision.metadata.update({"blessed": result["blessed"], "reason": result["reason"]})
    with open(metrics.path, "w") as f:
        json.dump(result, f, indent=2)
    with open(decision.path, "w") as f:
        json.dump(result, f, indent=2)


def component(image: str) -> "PythonComponent":
    return dsl.component(evaluate_model, base_image=image, install_kfp_package=False)
