"""The training pipeline: stage_data -> tune -> train -> evaluate -> deploy (only when blessed).

`build()` returns it for an image and a target. The targets share the tasks; on `vertex` the
training step runs as a Vertex AI custom job on the machines given. Nothing here reads the
environment: project, region, bucket and data arrive as parameters.

Tuning is optional (`tune_trials`, 0 = off): locally the tune step runs the local tuner (or passes
the given hyperparameters through); on `vertex` a hyperparameter tuning job runs the trials when
tune_trials > 0, its best trial is read back, and otherwise the tune step passes the given ones
(dsl.OneOf hands train whichever branch ran).
"""

from __future__ import annotations

from typing import Any

from kfp import dsl

from components import deploy, evaluate, stage_data, train, tune, tuning_job
from pipeline import params
from pipeline.images import DEFAULT_IMAGE
from pipeline.machines import TrainingMachines
from taxifare.tuning.step import TUNED
from trainer import config

NAME = "taxifare"
DESCRIPTION = "Taxi fare: stage, tune (optional), train, evaluate against baseline and champion, deploy."
TARGETS = ("local", "vertex")
STEPS: tuple[type, ...] = (config.Source, config.Tuning, config.Gate, config.DeployTarget)
# Where a Kubernetes volume holding the local registry is mounted on evaluate and deploy (--registry-pvc).
REGISTRY_MOUNT = "/mnt/taxifare-registry"
# The inputs this DAG wires itself (not pipeline parameters), described where they are wired.
WIRED_INPUTS = {
    "job_name": "the pipeline job's name (the run id when run_id is not given)",
    "serving_image": "the image that serves the version on Vertex AI with serving_container=custom",
    "image": "the pipeline's image, which every tuning trial runs",
    "machine_type": "each tuning trial's machine type (the training step's)",
    "accelerator_type": "each tuning trial's accelerator type, if any",
    "accelerator_count": "each tuning trial's accelerators",
    "boot_disk_size_gb": "each tuning trial's boot disk (GB)",
    "gcp_resources": "the tuning job, as GCPC's op names it",
}
# What the vertex target's tuning job reports and searches (the trainer's eval RMSE, the HParams spaces).
TUNING_JOB_NAME = "taxifare-tune"


def parameters() -> list[params.Setting]:
    return params.gathered(config.Source, params.hparams(), config.Tuning, config.Gate, config.DeployTarget,
                           [params.SERVICE_ACCOUNT, params.RUN_ID])  # fmt: skip


def defaults(target: str = "local") -> dict[str, Any]:
    """Every parameter's default for a compile target (the vertex target deploys to Vertex AI)."""
    return params.defaults(parameters(), {"deploy_target": "vertex"} if target == "vertex" else None)


def check(values: dict[str, Any], target: str = "local") -> dict[str, Any]:
    return params.check(values, parameters(), STEPS, defaults(target))


def _custom_job(train_op: Any, machines: TrainingMachines) -> Any:
    from google_cloud_pipeline_components.v1.custom_job import create_custom_training_job_from_component

    return create_custom_training_job_from_component(
        train_op,
        display_name="taxifare-train",
        machine_type=machines.machine_type,
        accelerator_type=machines.accelerator_type,
        accelerator_count=machines.accelerator_count or 1,
        replica_count=machines.replica_count,
        boot_disk_size_gb=machines.boot_disk_size_gb,
    )


def _vertex_tuning(p: dict[str, Any], split: Any, image: str, machines: TrainingMachines, tune_op: Any) -> dict:
    """tune_trials > 0: a Vertex AI hyperparameter tuning job and its best trial read back; else the
    tune step passes the given hyperparameters. Train gets whichever ran (dsl.OneOf)."""
    from google_cloud_pipeline_components.v1.hyperparameter_tuning_job import HyperparameterTuningJobRunOp

    from taxifare.tuning import step, vertex

    data = {"train_data": split["train"], "valid_data": split["valid"]}
    with dsl.If(p["tune_trials"] > 0, name="tune"):
        spec = params.call(
            tuning_job.spec_component(image), p, **data, image=image, machine_type=machines.machine_type,
            accelerator_type=machines.accelerator_type, accelerator_count=machines.accelerator_count,
            boot_disk_size_gb=machines.boot_disk_size_gb,
        ).set_display_name("tuning job spec")  # fmt: skip
        job = HyperparameterTuningJobRunOp(
            display_name=TUNING_JOB_NAME, project=p["project"], location=p["region"],
            base_output_directory=spec.outputs["base_output_directory"],
            worker_pool_specs=spec.outputs["worker_pool_specs"], study_spec_metrics=vertex.study_metrics(),
            study_spec_parameters=vertex.study_parameters(), max_trial_count=p["tune_trials"],
            parallel_trial_count=p["tune_parallel_trials"], service_account=p["service_account"],
            study_spec_measurement_selection_type="LAST_MEASUREMENT",
        ).set_display_name("tuning job")  # fmt: skip
        best = params.call(tuning_job.best_component(image), p, gcp_resources=job.outputs["gcp_resources"])
        best.set_display_name("best trial")
    with dsl.Else(name="given"):
        given = params.call(tune_op, p, **data).set_display_name("tune")
    return {name: dsl.OneOf(best.outputs[name], given.outputs[name]) for name in (*step.TUNED, "study")}


def _mount_registry(task: Any, pvc: str) -> None:
    if pvc:
        from kfp import kubernetes

        kubernetes.mount_pvc(task, pvc_name=pvc, mount_path=REGISTRY_MOUNT)


def build(
    image: str = DEFAULT_IMAGE, target: str = "local", machines: TrainingMachines | None = None, registry_pvc: str = ""
) -> Any:
    """The pipeline for an image and a target; its parameters' defaults are trainer/config.py's.

    `registry_pvc`: on a Kubeflow cluster, the PersistentVolumeClaim holding the local registry,
    mounted at REGISTRY_MOUNT on the steps that read or write it (evaluate, deploy).
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: expected one of {', '.join(TARGETS)}")
    funcs = (stage_data.stage_data, tune.tune_hparams, tuning_job.tuning_job_spec, tuning_job.best_trial,
             train.train_model, evaluate.evaluate_model, deploy.deploy_model)  # fmt: skip
    params.describe_steps(funcs, parameters(), **WIRED_INPUTS)
    stage_op, train_op, tune_op = stage_data.component(image), train.component(image), tune.component(image)
    evaluate_op, deploy_op = evaluate.component(image), deploy.component(image)
    train_inputs = params.inputs_of(train_op)
    if target == "vertex":
        train_op = _custom_job(train_op, machines or TrainingMachines())

    def dag(p: dict[str, Any]) -> None:
        staged = params.call(stage_op, p).set_display_name("stage data")
        # Never from a cache: the same source path may hold new rows (scheduled retraining),
        # and the champion that evaluate and deploy read is not among their inputs.
        staged.set_caching_options(False)
        split = staged.outputs
        if target == "vertex":
            tuned = _vertex_tuning(p, split, image, machines or TrainingMachines(), tune_op)
        else:
            tuning = params.call(tune_op, p, train_data=split["train"], valid_data=split["valid"])
            tuned = {name: tuning.set_display_name("tune").outputs[name] for name in (*TUNED, "study")}
        study = tuned.pop("study")
        # On vertex, the custom job's own input (gcpc's wrapper) takes the runtime service account.
        job = {"service_account": p["service_account"]} if target == "vertex" else {}
        trained = params.call(train_op, p, train_inputs, train_data=split["train"], valid_data=split["valid"],
                              **tuned, **job)  # fmt: skip
        model = trained.set_display_name("train").outputs["model"]
        evaluated = params.call(evaluate_op, p, test_data=split["test"], train_data=split["train"], candidate=model,
                                study=study)  # fmt: skip
        evaluated.set_display_name("evaluate").set_caching_options(False)
        _mount_registry(evaluated, registry_pvc)
        # kfp's local runner resolves only a single return value ("Output") in conditions.
        with dsl.If(evaluated.outputs["Output"] == True, name="blessed"):  # noqa: E712
            deployed = params.call(
                deploy_op, p, model=model, decision=evaluated.outputs["decision"], test_data=split["test"],
                # The image every step runs in also serves (serving_container=custom).
                job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER, serving_image=image,
            )  # fmt: skip
            deployed.set_display_name("deploy").set_caching_options(False)
            _mount_registry(deployed, registry_pvc)

    return params.as_pipeline(NAME, DESCRIPTION, parameters(), defaults(target), dag)
