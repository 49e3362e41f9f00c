"""The training pipeline: stage_data -> train -> evaluate -> deploy (only when blessed), then, whatever
happened, notify (an exit handler: a failed run is told to notify_webhook; on vertex, notify_emails).

`build()` returns it for an image and a target. The targets share the tasks; on `vertex` the
training step runs as a Vertex AI custom job on the machines given. Nothing here reads the
environment: project, region, bucket and data arrive as parameters.
"""

from __future__ import annotations

from typing import Any

from kfp import dsl

from components import deploy, evaluate, notify, stage_data, train
from pipeline import images, params
from pipeline.images import DEFAULT_IMAGE
from pipeline.machines import TrainingMachines
from trainer import config

NAME = "taxifare"
DESCRIPTION = "Taxi fare: stage, train, evaluate against baseline and champion, deploy."
TARGETS = ("local", "vertex")
STEPS: tuple[type, ...] = (config.Source, config.Gate, config.DeployTarget, config.Notify, config.VertexJob)
# Where a Kubernetes volume holding the local registry is mounted on evaluate and deploy (--registry-pvc).
REGISTRY_MOUNT = "/mnt/taxifare-registry"
# The inputs this DAG wires itself (not pipeline parameters), described where they are wired.
WIRED_INPUTS = {
    "job_name": "the pipeline job's name (the run id when run_id is not given)",
    "serving_image": "the image that serves the version on Vertex AI with serving_container=custom",
    "status": "how the run ended (Vertex AI and kfp fill it in for an exit handler's task)",
}


def parameters() -> list[params.Setting]:
    return params.gathered(config.Source, params.hparams(), config.Gate, config.DeployTarget,
                           [params.SERVICE_ACCOUNT, params.RUN_ID], config.Notify, config.VertexJob)  # fmt: skip


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


def _job_options(p: dict[str, Any]) -> dict[str, Any]:
    """The training custom job's own inputs (gcpc's wrapper): its account, TensorBoard, key and network, and
    where Vertex AI points AIP_TENSORBOARD_LOG_DIR (the run's own folder under the pipeline root)."""
    return {
        "service_account": p["service_account"],
        "tensorboard": p["tensorboard"],
        "encryption_spec_key_name": p["encryption_key"],
        "network": p["network"],
        "base_output_directory": f"{dsl.PIPELINE_ROOT_PLACEHOLDER}/custom-jobs/{dsl.PIPELINE_JOB_ID_PLACEHOLDER}",
    }


def _on_exit(notify_op: Any, p: dict[str, Any], steps: Any) -> None:
    """`steps()` inside an exit handler whose task tells notify_webhook when the run failed."""
    hook = params.call(notify_op, p, job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER).set_display_name("notify")
    hook.set_caching_options(False)
    with dsl.ExitHandler(hook, name="run"):
        steps()


def _emailed(inner: Any, values: dict[str, Any], required: tuple[str, ...]) -> Any:
    """Vertex AI's notification email after `inner` (the whole run, its own exit handler included): kfp
    allows one exit handler per pipeline body, so the run is a sub-pipeline of this one."""
    from google_cloud_pipeline_components.v1.vertex_notification_email import VertexNotificationEmailOp

    def outer(p: dict[str, Any]) -> None:
        mail = VertexNotificationEmailOp(recipients=p["notify_emails"]).set_display_name("email")
        with dsl.ExitHandler(mail, name="emailed"):
            params.call(inner, p).set_display_name("run")

    return params.as_pipeline(NAME, DESCRIPTION, parameters(), values, outer, required)


def _mount_registry(task: Any, pvc: str) -> None:
    if pvc:
        from kfp import kubernetes

        kubernetes.mount_pvc(task, pvc_name=pvc, mount_path=REGISTRY_MOUNT)


def build(
    image: str = DEFAULT_IMAGE,
    target: str = "local",
    machines: TrainingMachines | None = None,
    registry_pvc: str = "",
    gpu_image: str = "",
    webhook: bool = True,
    email: bool = False,
) -> Any:
    """The pipeline for an image and a target; its parameters' defaults are trainer/config.py's.

    `registry_pvc`: on a Kubeflow cluster, the PersistentVolumeClaim holding the local registry,
    mounted at REGISTRY_MOUNT on the steps that read or write it (evaluate, deploy).
    `gpu_image`: TensorFlow's CUDA build, for the training step only (pipeline/images.py).
    `webhook`: the exit handler that tells notify_webhook of a failed run (a Kubeflow backend must know
    PipelineTaskFinalStatus); `email`, on vertex: Vertex AI's notification email to notify_emails too.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: expected one of {', '.join(TARGETS)}")
    funcs = (stage_data.stage_data, train.train_model, evaluate.evaluate_model, deploy.deploy_model,
             notify.notify_failure)  # fmt: skip
    params.describe_steps(funcs, parameters(), **WIRED_INPUTS)
    stage_op, train_op = stage_data.component(image), train.component(images.for_training(image, gpu_image))
    evaluate_op, deploy_op, notify_op = evaluate.component(image), deploy.component(image), notify.component(image)
    train_inputs = params.inputs_of(train_op)
    if target == "vertex":
        train_op = _custom_job(train_op, machines or TrainingMachines())

    def steps(p: dict[str, Any]) -> None:
        staged = params.call(stage_op, p).set_display_name("stage data")
        # Never from a cache: the same source path may hold new rows (scheduled retraining),
        # and the champion that evaluate and deploy read is not among their inputs.
        staged.set_caching_options(False)
        split = staged.outputs
        job = _job_options(p) if target == "vertex" else {}
        trained = params.call(train_op, p, train_inputs, train_data=split["train"], valid_data=split["valid"], **job)
        # Nor train: its inputs are the splits stage_data writes anew every run, so its key never repeats.
        model = trained.set_display_name("train").set_caching_options(False).outputs["model"]
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

    return _assembled(steps, notify_op if webhook else None, target, email)


def _assembled(steps: Any, notify_op: Any, target: str, email: bool) -> Any:
    """The pipeline of `steps`: inside the exit handler of `notify_op` (when given), and on vertex with
    `email` inside Vertex AI's email's too. On vertex, project and region have no default: a run started
    from pipeline.yaml must give them."""

    def dag(p: dict[str, Any]) -> None:
        if notify_op is not None:
            _on_exit(notify_op, p, lambda: steps(p))
        else:
            steps(p)

    required = ("project", "region") if target == "vertex" else ()
    if target == "vertex" and email:
        run = params.as_pipeline(f"{NAME}-run", DESCRIPTION, parameters(), defaults(target), dag, required)
        return _emailed(run, defaults(target), required)
    return params.as_pipeline(NAME, DESCRIPTION, parameters(), defaults(target), dag, required)
