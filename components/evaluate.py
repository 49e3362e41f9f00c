"""Step 3, evaluate: candidate vs the distance-rule baseline vs the champion, and the gate."""

import dataclasses
import json
import tempfile
from typing import TYPE_CHECKING

import numpy as np
from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent

from taxifare.errors import UsageError
from trainer import baseline, settings, slices, sources
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
    deploy_target: str, registry: str, project: str = "", region: str = "", api_endpoint: str = "",
    scratch: str | None = None,
) -> tuple[str | None, str | None]:  # fmt: skip
    """(version, SavedModel dir) of the current champion, or (None, None) when there is none.

    For vertex, `registry` is the parent model id and the directory is Vertex's /gcs/ mount
    of the champion's artifact, or a copy downloaded into `scratch` (the caller removes it).
    """
    if deploy_target == "vertex":
        from taxifare.registry import vertex

        reg = vertex.VertexRegistry(project, region, registry, api_endpoint)
        found = reg.champion()
        return (found.model, reg.download(found, scratch)) if found else (None, None)
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
    best, limit = champion["rmse"], champion["rmse"] * (1 + tolerance)
    change = abs(c - best) / best if best else 0.0
    if c > limit:
        return False, (
            f"candidate RMSE {c:.3f} is {change:.1%} worse than the champion's {best:.3f}, "
            f"beyond the {tolerance:.0%} tolerance (limit {limit:.3f})"
        )
    if c == best:
        return True, f"candidate RMSE {c:.3f} beats the baseline {b:.3f} and equals the champion's"
    if c < best:
        return True, f"candidate RMSE {c:.3f} beats the baseline {b:.3f} and the champion's {best:.3f} by {change:.1%}"
    return True, (
        f"candidate RMSE {c:.3f} beats the baseline {b:.3f}; it is {change:.1%} worse than the champion's "
        f"{best:.3f}, within the {tolerance:.0%} tolerance"
    )


@dataclasses.dataclass
class Scored:
    """The test split and every model's predictions on it: what the metrics, slices and figures are made of."""

    test: dict[str, np.ndarray]
    predictions: dict[str, np.ndarray]  # candidate, baseline and (if any) champion
    champion_version: str | None
    rule: baseline.DistanceRule


def score(
    test_path: str, train_path: str, candidate_dir: str, deploy_target: str, registry: str, project: str = "",
    region: str = "", api_endpoint: str = "",
) -> Scored:  # fmt: skip
    from trainer.predict import Predictor

    test, _ = sources.read_columns(test_path)
    train, _ = sources.read_columns(train_path)
    raw = np.stack([test[name] for name in FEATURES], axis=1).astype(np.float32)
    rule = baseline.fit(train)
    predictions = {"candidate": Predictor(candidate_dir).predict(raw), "baseline": rule.predict(test)}
    with tempfile.TemporaryDirectory(prefix="champion-") as scratch:
        version, champion_dir = champion_model_dir(deploy_target, registry, project, region, api_endpoint, scratch)
        if champion_dir:
            predictions["champion"] = Predictor(champion_dir).predict(raw)
    return Scored(test, predictions, version, rule)


def slice_metrics(scored: Scored) -> list[dict]:
    """Each slice of trainer/slices.py: its row count and every model's RMSE and MAE on it."""
    truth = scored.test[LABEL]
    out = []
    masks = slices.masks(scored.test)
    for s in slices.SLICES:
        rows = masks[s.name]
        entry: dict = {"name": s.name, "description": s.description, "rows": int(rows.sum()), "champion": None}
        for who, pred in scored.predictions.items():
            entry[who] = baseline.regression_metrics(truth[rows], pred[rows]) if rows.any() else None
        out.append(entry)
    return out


def assess(scored: Scored, tolerance: float) -> dict:
    """The decision record: metrics, slices, the gate's verdict and a sample prediction."""
    truth = scored.test[LABEL]
    metrics = {who: baseline.regression_metrics(truth, pred) for who, pred in scored.predictions.items()}
    blessed, reason = decide(metrics["candidate"], metrics["baseline"], metrics.get("champion"), tolerance)
    champion = scored.predictions.get("champion")
    return {
        "candidate": metrics["candidate"],
        "baseline": metrics["baseline"],
        "champion": metrics.get("champion"),
        "champion_version": scored.champion_version,
        "blessed": blessed,
        "reason": reason,
        "test_rows": len(truth),
        "slices": slice_metrics(scored),
        "baseline_rule": {"intercept": scored.rule.intercept, "rate_per_degree": scored.rule.rate_per_degree},
        "sample": {
            "instance": {name: float(scored.test[name][0]) for name in FEATURES},
            "fare_amount": float(truth[0]),
            "candidate": float(scored.predictions["candidate"][0]),
            "champion": None if champion is None else float(champion[0]),
        },
    }


def checked_score(
    test_path: str,
    train_path: str,
    candidate_dir: str,
    deploy_target: str,
    registry: str,
    tolerance: float,
    project: str = "",
    region: str = "",
    api_endpoint: str = "",
) -> Scored:
    """`score`, once the gate's settings are valid and the registry deploy will write is writable."""
    settings.check(Gate(tolerance))
    if deploy_target == "local":  # deploy will write it: say so now if it cannot, not after the gate
        from taxifare.registry.local import LocalRegistry

        LocalRegistry(registry).check_writable()
    return score(test_path, train_path, candidate_dir, deploy_target, registry, project, region, api_endpoint)


def figures(scored: Scored) -> list[str]:
    """Predicted vs actual, and error by trip distance, as inline SVG."""
    from taxifare.report import plots

    truth, shown = scored.test[LABEL], {k: v for k, v in scored.predictions.items() if k != "baseline"}
    return [
        plots.predicted_vs_actual(truth, shown),
        plots.residuals_by_distance(slices.trip_km(scored.test), truth, scored.predictions),
    ]


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
    report: Output[HTML],
    summary: Output[Markdown],
) -> bool:
    """Score the candidate, the distance baseline and the champion on the test split and its slices; gate."""
    from components.evaluate import assess, checked_score, figures, record, write_visuals

    scored = checked_score(test_data.path, train_data.path, candidate.path, deploy_target, registry, tolerance,
                           project, region)  # fmt: skip
    result = assess(scored, tolerance)
    record(result, metrics, decision)
    write_visuals(result, figures(scored), report.path, summary.path)
    return result["blessed"]


def record(result: dict, metrics: Metrics, decision: Artifact) -> None:
    for who in ("candidate", "baseline", "champion"):
        for name, value in (result[who] or {}).items():
            metrics.log_metric(f"{who}_{name}", value)
    for s in result.get("slices", []):
        key = s["name"].replace(" ", "_")
        for who in ("candidate", "baseline", "champion"):
            if s.get(who):
                metrics.log_metric(f"slice_{key}_{who}_rmse", s[who]["rmse"])
    metrics.log_metric("blessed", int(result["blessed"]))
    decision.metadata.update({"blessed": result["blessed"], "reason": result["reason"]})
    with open(metrics.path, "w") as f:
        json.dump(result, f, indent=2)
    with open(decision.path, "w") as f:
        json.dump(result, f, indent=2)


def write_visuals(result: dict, svgs: list[str], html_path: str, markdown_path: str) -> None:
    """The HTML artifact (rendered on the evaluate node) and its Markdown twin; self-contained."""
    from taxifare.report import evaluation

    with open(html_path, "w") as f:
        f.write(evaluation.html_page(result, svgs))
    with open(markdown_path, "w") as f:
        f.write(evaluation.markdown(result))


def component(image: str) -> "PythonComponent":
    return dsl.component(evaluate_model, base_image=image, install_kfp_package=False)
