"""The batch prediction pipeline: resolve the model -> check the input's drift -> score -> write.

    resolve_model   the registry's champion (default), a version, or an export folder, copied into the run
    check_drift     the input against the model's training statistics: PSI per feature, flagged past
                    drift_threshold (the run goes on, flagged: scoring is what was asked for)
    local target:   score_batch (taxifare/batch/scoring.py) -> write_predictions (to `output`, marked complete)
    vertex target:  batch_predict: a Vertex AI batch prediction job on this pipeline's image, serving as it
                    serves online (taxifare/serving/container.py), from Cloud Storage files or a BigQuery
                    table to Cloud Storage JSON lines or BigQuery

Compiled for Vertex AI into pipeline-batch.yaml (tests/test_compile.py keeps it current). Nothing
here reads the environment: project, region, input and output arrive as parameters.
"""

from __future__ import annotations

from typing import Any

from kfp import dsl

from components import batch_predict, check_drift, resolve_model, score_batch, write_predictions
from pipeline import params
from pipeline.images import DEFAULT_IMAGE
from pipeline.machines import TrainingMachines
from pipeline.training import REGISTRY_MOUNT
from taxifare.batch import outputs
from taxifare.errors import UsageError
from trainer import config, settings

NAME = "taxifare-batch"
DESCRIPTION = "Taxi fare batch prediction: resolve the model, check the input's drift, score, write."
TARGETS = ("local", "vertex")
STEPS: tuple[type, ...] = (config.BatchJob, config.Drift, config.BatchMachines)
REGISTRY = ("registry", "project", "region")  # DeployTarget's: where the model comes from
WIRED_INPUTS = {
    "registry_kind": "where the model comes from: local (a registry directory) or vertex (Model Registry)",
    "serving_image": "the image that serves the model to the batch prediction job (this pipeline's)",
    "job_name": "the pipeline job's name (it names the batch prediction job)",
}
PREFIXES = {"local": ("gs://", "https://", "http://"), "vertex": ("gs://", "bq://")}
NAMED = (".csv", ".jsonl", ".json", ".ndjson")  # an output file's name that says its format
SERVICE_ACCOUNT = params.Setting(
    "service_account", str, "",
    "vertex: the service account the batch prediction job runs as (it reads the input and writes the output; "
    "taxifare submit sets the pipeline's own)",
    None,
)  # fmt: skip


def parameters() -> list[params.Setting]:
    model_source = [s for s in settings.settings_of(config.DeployTarget) if s.name in REGISTRY]
    return params.gathered(config.BatchJob, model_source, config.Drift, config.BatchMachines, [SERVICE_ACCOUNT])


def defaults(target: str = "local") -> dict[str, Any]:
    return params.defaults(parameters())


def check(values: dict[str, Any], target: str = "local") -> dict[str, Any]:
    """The parameters, checked for the target: what each side can read from and write to."""
    given = params.check(values, parameters(), STEPS, defaults(target))
    full = {**defaults(target), **given}
    found = []
    remote = [p for p in full["input"].split(",") if "://" in p]
    if target == "vertex":
        if not (full["project"] and full["region"]):
            found.append("a batch run on Vertex AI needs the project and region parameters")
        local_files = [p for p in full["input"].split(",") if p and "://" not in p]
        if local_files or any(not p.startswith(PREFIXES["vertex"]) for p in remote):
            found.append("input: on Vertex AI give gs:// files or a bq://PROJECT.DATASET.TABLE")
        if full["output"] and not full["output"].startswith(PREFIXES["vertex"]):
            found.append("output: on Vertex AI give a gs:// folder or bq://PROJECT[.DATASET]")
    else:
        if any(not p.startswith(PREFIXES["local"]) for p in remote):
            found.append("input: a local run reads files (local, gs://, https://); BigQuery tables need Vertex AI")
        if "://" in full["output"]:
            found.append("output: a local run writes a local file")
        named = outputs.format_of(full["output"]) if full["output"].lower().endswith(NAMED) else full["output_format"]
        if named != full["output_format"]:
            found.append(f"output {full['output']!r} is named as {named} but output_format is {full['output_format']}")
        if not full["model"] and not full["registry"].startswith("/"):
            found.append(f"registry must be an absolute path to take the champion from, got {full['registry']!r}")
    if found:
        raise UsageError("; ".join(found))
    return given


def _mount_registry(task: Any, pvc: str) -> None:
    if pvc:
        from kfp import kubernetes

        kubernetes.mount_pvc(task, pvc_name=pvc, mount_path=REGISTRY_MOUNT)


def build(
    image: str = DEFAULT_IMAGE, target: str = "local", machines: TrainingMachines | None = None, registry_pvc: str = ""
) -> Any:
    """The pipeline for an image and a target (`machines` are the training pipeline's: not used here)."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: expected one of {', '.join(TARGETS)}")
    funcs: list[Any] = [resolve_model.resolve_model, check_drift.check_drift, score_batch.score_batch,
                        write_predictions.write_predictions, batch_predict.batch_predict]  # fmt: skip
    params.describe_steps(funcs, parameters(), **WIRED_INPUTS)
    resolve_op, drift_op = resolve_model.component(image), check_drift.component(image)

    def dag(p: dict[str, Any]) -> None:
        # Never from a cache: the champion and the rows behind an input path change between runs.
        chosen = params.call(resolve_op, p, registry_kind=target).set_display_name("resolve model")
        chosen.set_caching_options(False)
        _mount_registry(chosen, registry_pvc)
        model = chosen.outputs["chosen"]
        checked = params.call(drift_op, p, chosen=model).set_display_name("check drift").set_caching_options(False)
        report = checked.outputs["drift"]
        if target == "vertex":
            job = params.call(batch_predict.component(image), p, chosen=model, drift=report, serving_image=image,
                              job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER)  # fmt: skip
            job.set_display_name("batch predict").set_caching_options(False)
            return
        scored = params.call(score_batch.component(image), p, chosen=model)
        scored.set_display_name("score").set_caching_options(False).after(checked)  # the order the report reads
        outputs = scored.outputs
        written = params.call(write_predictions.component(image), p, predictions=outputs["predictions"],
                              rejected=outputs["rejected"], drift=report)  # fmt: skip
        written.set_display_name("write").set_caching_options(False)

    return params.as_pipeline(NAME, DESCRIPTION, parameters(), defaults(target), dag)
