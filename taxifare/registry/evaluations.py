"""A model version's evaluation in Vertex AI Model Registry: what the console's Evaluate tab shows.

Every version the deploy uploads gets one ModelEvaluation (ModelService.ImportModelEvaluation) with
evaluate's regression metrics on the test split, in Vertex AI's regression schema, and the slices
of trainer/slices.py as its evaluation slices (BatchImportModelEvaluationSlices, at most 50 a call):
the candidate's figures, with the baseline's and the champion's beside them in the metadata.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

REGRESSION_SCHEMA = "gs://google-cloud-aiplatform/schema/modelevaluation/regression_metrics_1.0.0.yaml"
SLICES_PER_CALL = 50  # BatchImportModelEvaluationSlices' limit
REQUEST_TIMEOUT = 60.0


def regression_metrics(figures: Mapping[str, float] | None) -> dict[str, float]:
    """evaluate's figures under the names of Vertex AI's regression metrics schema."""
    names = {"rmse": "rootMeanSquaredError", "mae": "meanAbsoluteError"}
    return {names[k]: float(v) for k, v in (figures or {}).items() if k in names}


def slice_key(entry: Mapping[str, Any]) -> tuple[str, str]:
    """(dimension, value) of a decision's slice: ("distance", "0-2 km"), ("area", "inside manhattan")."""
    name = str(entry["name"])
    dimension = str(entry.get("dimension") or name.partition(" ")[0])
    value = name.removeprefix(dimension).strip() or name
    return dimension, value


def evaluation(decision: Mapping[str, Any], run_id: str) -> Any:
    """The ModelEvaluation of the candidate from evaluate's decision record."""
    from google.cloud.aiplatform_v1 import types

    measured = [s for s in decision.get("slices", []) if s.get("candidate")]
    metadata = {
        "runId": run_id,
        "testRows": decision.get("test_rows"),
        "decision": decision.get("reason", ""),
        "baseline": regression_metrics(decision.get("baseline")),
        "champion": regression_metrics(decision.get("champion")),
        "championVersion": decision.get("champion_version") or "",
    }
    return types.ModelEvaluation(
        display_name=f"test split of run {run_id}"[:128],
        metrics_schema_uri=REGRESSION_SCHEMA,
        metrics=regression_metrics(decision["candidate"]),
        metadata=metadata,
        slice_dimensions=sorted({slice_key(s)[0] for s in measured}),
    )


def slices(decision: Mapping[str, Any]) -> list[Any]:
    """One ModelEvaluationSlice per slice the test split has rows of."""
    from google.cloud.aiplatform_v1 import types

    out = []
    for entry in decision.get("slices", []):
        if not entry.get("candidate"):  # no rows in this split: nothing measured
            continue
        dimension, value = slice_key(entry)
        out.append(types.ModelEvaluationSlice(
            slice_=types.ModelEvaluationSlice.Slice(dimension=dimension, value=value),
            metrics_schema_uri=REGRESSION_SCHEMA,
            metrics=regression_metrics(entry["candidate"]),
        ))  # fmt: skip
    return out


def _batches(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), SLICES_PER_CALL):
        yield items[start : start + SLICES_PER_CALL]


def import_evaluation(models: Any, model: str, decision: Mapping[str, Any], run_id: str) -> tuple[str, list[str]]:
    """Attach the evaluation and its slices to `model` (a versioned name, ...models/ID@VERSION); return the
    ModelEvaluation's name and its slices' names."""
    created = models.import_model_evaluation(
        parent=model, model_evaluation=evaluation(decision, run_id), timeout=REQUEST_TIMEOUT
    )
    names: list[str] = []
    for batch in _batches(slices(decision)):
        response = models.batch_import_model_evaluation_slices(
            parent=created.name, model_evaluation_slices=batch, timeout=REQUEST_TIMEOUT
        )
        names += list(response.imported_model_evaluation_slices)
    return created.name, names
