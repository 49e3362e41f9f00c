"""The DAG: stage_data -> train -> evaluate -> deploy (only when blessed).

`build()` returns the pipeline for an image and a target. The targets share the tasks;
on `vertex` the training step runs as a Vertex AI custom job on the machines given.
Nothing here reads the environment: project, region, bucket and data arrive as parameters.
"""

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from components import deploy, evaluate, stage_data, train
from pipeline.images import DEFAULT_IMAGE
from pipeline.machines import TrainingMachines
from registry.vertex import DEFAULT_DEPLOY_TIMEOUT, DEFAULT_MACHINE_TYPE
from trainer.features import CHAMPION_TOLERANCE, DEFAULT_MAX_BAD_FRACTION, DEFAULTS, TEST_FRACTION, VALID_FRACTION

PIPELINE_NAME = "taxifare"
TARGETS = ("local", "vertex")


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
        service_account=machines.service_account,
    )


def build(
    image: str = DEFAULT_IMAGE, target: str = "local", machines: TrainingMachines | None = None
) -> GraphComponent:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: expected one of {', '.join(TARGETS)}")
    # Each target deploys where its runs live; a parameter overrides it.
    default_deploy_target = "vertex" if target == "vertex" else "local"
    stage_op = stage_data.component(image)
    train_op = train.component(image)
    if target == "vertex":
        train_op = _custom_job(train_op, machines or TrainingMachines())

    evaluate_op = evaluate.component(image)
    deploy_op = deploy.component(image)

    @dsl.pipeline(
        name=PIPELINE_NAME, description="Taxi fare: stage, train, evaluate against baseline and champion, deploy."
    )
    def taxifare(
        source: str = "",
        train_source: str = "",
        valid_source: str = "",
        test_source: str = "",
        valid_fraction: float = VALID_FRACTION,
        test_fraction: float = TEST_FRACTION,
        max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
        train_steps: int = DEFAULTS.train_steps,
        train_batch_size: int = DEFAULTS.train_batch_size,
        hidden_units: list = list(DEFAULTS.hidden_units),  # noqa: B006 - kfp reads the default
        learning_rate: float = DEFAULTS.learning_rate,
        weight_decay: float = DEFAULTS.weight_decay,
        huber_delta: float = DEFAULTS.huber_delta,
        seed: int = DEFAULTS.seed,
        tolerance: float = CHAMPION_TOLERANCE,
        deploy_target: str = default_deploy_target,
        registry: str = "",
        bq_table: str = "",
        bq_query: str = "",
        bq_sample: int = 0,
        project: str = "",
        region: str = "",
        endpoint_name: str = "taxifare",
        serving_container: str = "custom",
        serving_machine_type: str = DEFAULT_MACHINE_TYPE,
        serving_min_replicas: int = 1,
        serving_max_replicas: int = 1,
        deploy_timeout: float = DEFAULT_DEPLOY_TIMEOUT,
    ):
        staged = stage_op(
            source=source,
            train_source=train_source,
            valid_source=valid_source,
            test_source=test_source,
            valid_fraction=valid_fraction,
            test_fraction=test_fraction,
            max_bad_fraction=max_bad_fraction,
            bq_table=bq_table,
            bq_query=bq_query,
            bq_sample=bq_sample,
            project=project,
        ).set_display_name("stage data")
        # Never from a cache: the same source path may hold new rows (scheduled retraining),
        # and the champion that evaluate and deploy read is not among their inputs.
        staged.set_caching_options(False)
        trained = train_op(
            train_data=staged.outputs["train"],
            valid_data=staged.outputs["valid"],
            train_steps=train_steps,
            train_batch_size=train_batch_size,
            hidden_units=hidden_units,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            huber_delta=huber_delta,
            seed=seed,
        ).set_display_name("train")
        evaluated = evaluate_op(
            test_data=staged.outputs["test"],
            train_data=staged.outputs["train"],
            candidate=trained.outputs["model"],
            deploy_target=deploy_target,
            registry=registry,
            tolerance=tolerance,
            project=project,
            region=region,
        ).set_display_name("evaluate")
        evaluated.set_caching_options(False)
        # kfp's local runner resolves only a single return value ("Output") in conditions.
        with dsl.If(evaluated.outputs["Output"] == True, name="blessed"):  # noqa: E712
            deploy_op(
                model=trained.outputs["model"],
                decision=evaluated.outputs["decision"],
                test_data=staged.outputs["test"],
                deploy_target=deploy_target,
                registry=registry,
                run_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                project=project,
                region=region,
                endpoint_name=endpoint_name,
                serving_container=serving_container,
                serving_image=image,  # the image every step runs in also serves (serving_container=custom)
                serving_machine_type=serving_machine_type,
                serving_min_replicas=serving_min_replicas,
                serving_max_replicas=serving_max_replicas,
                deploy_timeout=deploy_timeout,
            ).set_display_name("deploy").set_caching_options(False)

    return taxifare
