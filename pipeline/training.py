"""The training pipeline: stage_data -> tune -> train -> evaluate -> deploy (only when blessed), then,
whatever happened, notify (an exit handler: a failed run is told to notify_webhook; on vertex, notify_emails).

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

from components import deploy, evaluate, notify, stage_data, train, tune, tuning_job
from pipeline import images, params
from pipeline.images import DEFAULT_IMAGE
from pipeline.machines import TrainingMachines
from taxifare.tuning.step import TUNED
from trainer import config

NAME = "taxifare"
DESCRIPTION = "Taxi fare: stage, tune (optional), train, evaluate against baseline and champion, deploy."
TARGETS = ("local", "vertex")
STEPS: tuple[type, ...] = (
    config.Source, config.Tuning, config.Gate, config.DeployTarget, config.Notify, config.VertexJob, config.Drift
)  # fmt: skip
# Where a Kubernetes volume holding the local registry is mounted on stage_data, evaluate and deploy (--registry-pvc).
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
    "status": "how the run ended (Vertex AI and kfp fill it in for an exit handler's task)",
}
# What the vertex target's tuning job reports and searches (the trainer's eval RMSE, the HParams spaces).
TUNING_JOB_NAME = "taxifare-tune"


def parameters() -> list[params.Setting]:
    return params.gathered(config.Source, params.hparams(), config.Tuning, config.Gate, config.DeployTarget,
                           config.Drift, [params.SERVICE_ACCOUNT, params.RUN_ID], config.Notify,
                           config.VertexJob)  # fmt: skip


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


# Every step's function: kfp compiles their Args into their inputs' descriptions (describe_steps).
FUNCS = (stage_data.stage_data, tune.tune_hparams, tuning_job.tuning_job_spec, tuning_job.best_trial,
         train.train_model, evaluate.evaluate_model, deploy.deploy_model, notify.notify_failure)  # fmt: skip


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
    params.describe_steps(FUNCS, parameters(), **WIRED_INPUTS)
    stage_op, train_op = stage_data.component(image), train.component(images.for_training(image, gpu_image))
    tune_op, evaluate_op, deploy_op = tune.component(image), evaluate.component(image), deploy.component(image)
    notify_op = notify.component(image)
    train_inputs = params.inputs_of(train_op)
    if target == "vertex":
        train_op = _custom_job(train_op, machines or TrainingMachines())

    def steps(p: dict[str, Any]) -> None:
        staged = params.call(stage_op, p).set_display_name("stage data")
        # Never from a cache: the same source path may hold new rows (scheduled retraining),
        # and the champion that evaluate and deploy read is not among their inputs.
        staged.set_caching_options(False)
        _mount_registry(staged, registry_pvc)  # it compares the new data with the champion's
        split = staged.outputs
        if target == "vertex":
            tuned = _vertex_tuning(p, split, image, machines or TrainingMachines(), tune_op)
        else:
            tuning = params.call(tune_op, p, train_data=split["train"], valid_data=split["valid"])
            tuned = {name: tuning.set_display_name("tune").outputs[name] for name in (*TUNED, "study")}
        study = tuned.pop("study")
        job = _job_options(p) if target == "vertex" else {}
        trained = params.call(train_op, p, train_inputs, train_data=split["train"], valid_data=split["valid"],
                              **tuned, **job)  # fmt: skip
        # Nor train: its inputs are the splits stage_data writes anew every run, so its key never repeats.
        model = trained.set_display_name("train").set_caching_options(False).outputs["model"]
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
