"""The DAG: stage_data -> train -> evaluate -> deploy (only when blessed).

`build()` returns the pipeline for an image and a target. The targets share the tasks;
on `vertex` the training step runs as a Vertex AI custom job on the machines given.
Nothing here reads the environment: project, region, bucket and data arrive as parameters.
"""

from typing import Any

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from components import deploy, evaluate, stage_data, train
from pipeline import params
from pipeline.images import DEFAULT_IMAGE
from pipeline.machines import TrainingMachines

PIPELINE_NAME = "taxifare"
DESCRIPTION = "Taxi fare: stage, train, evaluate against baseline and champion, deploy."
TARGETS = ("local", "vertex")
# Where a Kubernetes volume holding the local registry is mounted on evaluate and deploy (--registry-pvc).
REGISTRY_MOUNT = "/mnt/taxifare-registry"


def _custom_job(train_op, machines: TrainingMachines):
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


# The inputs this DAG wires itself (not pipeline parameters), described where they are wired.
WIRED_INPUTS = {
    "job_name": "the pipeline job's name (the run id when run_id is not given)",
    "serving_image": "the image that serves the version on Vertex AI with serving_container=custom",
}


def _describe_steps() -> None:
    """Each step's inputs described by their settings (written once, in pipeline/params.py's steps):
    kfp compiles a component function's Args into its inputs' descriptions."""
    from trainer import settings

    known = params.all_settings()
    for func in (stage_data.stage_data, train.train_model, evaluate.evaluate_model, deploy.deploy_model):
        settings.describe(func, known, **WIRED_INPUTS)


def _ops(image: str, target: str, machines: TrainingMachines | None) -> dict[str, tuple[Any, set[str]]]:
    """Each step's component and the inputs of our own function (what pipeline parameters feed);
    on vertex, training runs as a custom job, whose wrapper adds inputs of its own (project, ...)."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: expected one of {', '.join(TARGETS)}")
    _describe_steps()
    ops = {
        "stage": stage_data.component(image),
        "train": train.component(image),
        "evaluate": evaluate.component(image),
        "deploy": deploy.component(image),
    }
    out = {step: (op, set(op.component_spec.inputs or {})) for step, op in ops.items()}
    if target == "vertex":
        out["train"] = (_custom_job(ops["train"], machines or TrainingMachines()), out["train"][1])
    return out


def _call(step: tuple[Any, set[str]], params: dict[str, Any], **wired: Any) -> Any:
    """The step's task: the pipeline parameters named like its inputs (each passed on by name), plus `wired`."""
    op, inputs = step
    return op(**{n: v for n, v in params.items() if n in inputs}, **wired)


def _mount_registry(task: Any, pvc: str) -> None:
    if pvc:
        from kfp import kubernetes

        kubernetes.mount_pvc(task, pvc_name=pvc, mount_path=REGISTRY_MOUNT)


def _dag(ops: dict[str, tuple[Any, set[str]]], p: dict[str, Any], image: str, target: str, registry_pvc: str) -> None:
    """The tasks and their wiring: each pipeline parameter goes to the steps with an input of its name."""
    staged = _call(ops["stage"], p).set_display_name("stage data")
    # Never from a cache: the same source path may hold new rows (scheduled retraining),
    # and the champion that evaluate and deploy read is not among their inputs.
    staged.set_caching_options(False)
    split = staged.outputs
    # On vertex, the custom job's own input (gcpc's wrapper) takes the runtime service account.
    job = {"service_account": p["service_account"]} if target == "vertex" else {}
    trained = _call(ops["train"], p, train_data=split["train"], valid_data=split["valid"], **job)
    trained.set_display_name("train")
    model = trained.outputs["model"]
    evaluated = _call(ops["evaluate"], p, test_data=split["test"], train_data=split["train"], candidate=model)
    evaluated.set_display_name("evaluate")
    evaluated.set_caching_options(False)
    _mount_registry(evaluated, registry_pvc)
    # kfp's local runner resolves only a single return value ("Output") in conditions.
    with dsl.If(evaluated.outputs["Output"] == True, name="blessed"):  # noqa: E712
        wired = {"model": model, "decision": evaluated.outputs["decision"], "test_data": split["test"]}
        # The image every step runs in also serves (serving_container=custom).
        wired.update(job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER, serving_image=image)
        deployed = _call(ops["deploy"], p, **wired).set_display_name("deploy").set_caching_options(False)
        _mount_registry(deployed, registry_pvc)


def build(
    image: str = DEFAULT_IMAGE, target: str = "local", machines: TrainingMachines | None = None, registry_pvc: str = ""
) -> GraphComponent:
    """The pipeline for an image and a target; its parameters' defaults are pipeline/params.py's.

    `registry_pvc`: on a Kubeflow cluster, the PersistentVolumeClaim holding the local registry,
    mounted at REGISTRY_MOUNT on the steps that read or write it (evaluate, deploy).
    """
    ops = _ops(image, target, machines)
    d = params.defaults(target)  # each target deploys where its runs live; a parameter overrides it

    def taxifare(
        source: str = d["source"],
        train_source: str = d["train_source"],
        valid_source: str = d["valid_source"],
        test_source: str = d["test_source"],
        valid_fraction: float = d["valid_fraction"],
        test_fraction: float = d["test_fraction"],
        bq_table: str = d["bq_table"],
        bq_query: str = d["bq_query"],
        bq_sample: int = d["bq_sample"],
        train_steps: int = d["train_steps"],
        train_batch_size: int = d["train_batch_size"],
        hidden_units: list = d["hidden_units"],
        learning_rate: float = d["learning_rate"],
        weight_decay: float = d["weight_decay"],
        huber_delta: float = d["huber_delta"],
        seed: int = d["seed"],
        max_bad_fraction: float = d["max_bad_fraction"],
        tolerance: float = d["tolerance"],
        deploy_target: str = d["deploy_target"],
        registry: str = d["registry"],
        project: str = d["project"],
        region: str = d["region"],
        endpoint_name: str = d["endpoint_name"],
        serving_container: str = d["serving_container"],
        serving_machine_type: str = d["serving_machine_type"],
        serving_min_replicas: int = d["serving_min_replicas"],
        serving_max_replicas: int = d["serving_max_replicas"],
        deploy_timeout: float = d["deploy_timeout"],
        service_account: str = d["service_account"],
        run_id: str = d["run_id"],
    ):
        _dag(ops, dict(locals()), image, target, registry_pvc)  # the parameters, by name

    taxifare.__doc__ = params.docstring(DESCRIPTION)
    return dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)(taxifare)
