"""Every model's predictions on the test split: the candidate, the distance baseline, the champion."""

from __future__ import annotations

import dataclasses
import tempfile

import numpy as np

from taxifare.errors import UsageError
from trainer import baseline, settings, slices, sources
from trainer.config import Gate
from trainer.features import FEATURES, LABEL

# What a version records of its data (stage_data's outputs): a champion is judged only against
# candidates of the same source and schema.
LINEAGE = ("source", "schema", "test_fingerprint")


@dataclasses.dataclass
class Scored:
    """The test split and every model's predictions on it: what the metrics, slices and figures are made of."""

    test: dict[str, np.ndarray]
    predictions: dict[str, np.ndarray]  # candidate, baseline and (if any) champion
    champion_version: str | None
    rule: baseline.DistanceRule
    champion_lineage: dict | None = None  # where the champion's data came from (None: not recorded)


def champion_model_dir(
    deploy_target: str, registry: str, project: str = "", region: str = "", api_endpoint: str = "",
    scratch: str | None = None,
) -> tuple[str | None, str | None, dict | None]:  # fmt: skip
    """(version, SavedModel dir, lineage) of the current champion, or Nones when there is none.

    For vertex, `registry` is the parent model id and the directory is Vertex's /gcs/ mount
    of the champion's artifact, or a copy downloaded into `scratch` (the caller removes it).
    """
    if deploy_target == "vertex":
        from taxifare.registry import vertex

        reg = vertex.VertexRegistry(project, region, registry, api_endpoint)
        found = reg.champion()
        return (found.model, reg.download(found, scratch), None) if found else (None, None, None)
    if deploy_target != "local":
        raise UsageError(f"unknown deploy_target {deploy_target!r}: expected 'local' or 'vertex'")
    from taxifare.registry.local import LocalRegistry

    champion = LocalRegistry(registry).champion()
    if champion is None:
        return None, None, None
    lineage = {k: champion.metadata.get(k) for k in LINEAGE}
    return champion.name, champion.model_dir, lineage


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
        version, champion_dir, lineage = champion_model_dir(
            deploy_target, registry, project, region, api_endpoint, scratch
        )
        if champion_dir:
            predictions["champion"] = Predictor(champion_dir).predict(raw)
    return Scored(test, predictions, version, rule, lineage)


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


def slice_metrics(scored: Scored) -> list[dict]:
    """Each slice of trainer/slices.py: its row count and every model's RMSE and MAE on it."""
    truth = scored.test[LABEL]
    out = []
    masks = slices.masks(scored.test)
    for s in slices.SLICES:
        rows = masks[s.name]
        entry: dict = {"name": s.name, "dimension": s.dimension, "description": s.description, "rows": int(rows.sum()),
                       "champion": None}  # fmt: skip
        for who, pred in scored.predictions.items():
            entry[who] = baseline.regression_metrics(truth[rows], pred[rows]) if rows.any() else None
        out.append(entry)
    return out


def figures(scored: Scored) -> list[str]:
    """Predicted vs actual, and error by trip distance, as inline SVG."""
    from taxifare.report import plots

    truth, shown = scored.test[LABEL], {k: v for k, v in scored.predictions.items() if k != "baseline"}
    return [
        plots.predicted_vs_actual(truth, shown),
        plots.residuals_by_distance(slices.trip_km(scored.test), truth, scored.predictions),
    ]
