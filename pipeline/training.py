"""The training pipeline: stage_data -> train -> evaluate -> deploy (only when blessed).

`build()` returns it for an image and a target. The targets share the tasks; on `vertex` the
training step runs as a Vertex AI custom job on the machines given. Nothing here reads the
environment: project, region, bucket and data arrive as parameters.
"""

from __future__ import annotations

from typing import Any

from kfp import dsl

from components import deploy, evaluate, stage_data, train
from pipeline import params
from pipeline.images import DEFAULT_IMAGE
from pipeline.machines import TrainingMachines
from trainer import config

NAME = "taxifare"
DESCRIPTION = "Taxi fare: stage, train, evaluate against baseline and champion, deploy."
TARGETS = ("local", "vertex")
STEPS: tuple[type, ...] = (config.Source, config.Gate, config.DeployTarget, config.Drift)
# Where a Kubernetes volume holding the local registry is mounted on stage_data, evaluate and deploy (--registry-pvc).
REGISTRY_MOUNT = "/mnt/taxifare-registry"
# The inputs this DAG wires itself (not pipeline parameters), described where they are wired.
WIRED_INPUTS = {
    "job_name": "the pipeline job's name (the run id when run_id is not given)",
    "serving_image": "the image that serves the version on Vertex AI with serving_container=custom",
}


def parameters() -> list[params.Setting]:
    return params.gathered(config.Source, params.hparams(), config.Gate, config.DeployTarget, config.Drift,
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
    funcs = (stage_data.stage_data, train.train_model, evaluate.evaluate_model, deploy.deploy_model)
    params.describe_steps(funcs, parameters(), **WIRED_INPUTS)
    stage_op, train_op = stage_data.component(image), train.component(image)
    evaluate_op, deploy_op = evaluate.component(image), deploy.component(image)
    train_inputs = params.inputs_of(train_op)
    if target == "vertex":
        train_op = _custom_job(train_op, machines or TrainingMachines())

    def dag(p: dict[str, Any]) -> None:
        staged = params.call(stage_op, p).set_display_name("stage data")
        # Never from a cache: the same source path may hold new rows (scheduled retraining),
        # and the champion that evaluate and deploy read is not among their inputs.
        staged.set_caching_options(False)
        _mount_registry(staged, registry_pvc)  # it compares the new data with the champion's
        split = staged.outputs
        # On vertex, the custom job's own input (gcpc's wrapper) takes the runtime service account.
        job = {"service_account": p["service_account"]} if target == "vertex" else {}
        trained = params.call(train_op, p, train_inputs, train_data=split["train"], valid_data=split["valid"], **job)
        model = trained.set_display_name("train").outputs["model"]
        evaluated = params.call(evaluate_op, p, test_data=split["test"], train_data=split["train"], candidate=model)
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
