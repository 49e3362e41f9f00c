"""Step 4, deploy (only when blessed): a new registry version, then the champion alias moves
(the work: taxifare/deployment.py)."""

from typing import TYPE_CHECKING

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent


def deploy_model(
    model: Input[Model],
    decision: Input[Artifact],
    test_data: Input[Dataset],
    deploy_target: str,
    registry: str,
    run_id: str,
    job_name: str,
    project: str,
    region: str,
    endpoint_name: str,
    serving_container: str,
    serving_image: str,
    serving_machine_type: str,
    serving_min_replicas: int,
    serving_max_replicas: int,
    deploy_timeout: float,
    encryption_key: str,
    registered: Output[Artifact],
) -> str:
    """Check the blessed model serves, register it as a new version and make it the champion (on Vertex AI
    the version gets its evaluation: a ModelEvaluation with the test split's metrics and slices)."""
    import json

    from taxifare import deployment
    from trainer import events
    from trainer.config import DeployTarget

    target = DeployTarget(
        deploy_target, registry, project, region, endpoint_name, serving_container, serving_machine_type,
        serving_min_replicas, serving_max_replicas, deploy_timeout,
    )  # fmt: skip
    fingerprint = test_data.metadata.get("fingerprint", "")
    done = deployment.deploy(model.path, decision.path, fingerprint, target, run_id or job_name,
                             model_uri=model.uri, image=serving_image, model_info=dict(model.metadata),
                             encryption_key=encryption_key, registered_path=registered.path)  # fmt: skip
    with open(registered.path) as f:  # the console shows an artifact's metadata: the ModelEvaluation's name too
        registered.metadata.update({**json.load(f), "version": done.version})
    events.summary(done.note)
    return done.version


def component(image: str) -> "PythonComponent":
    return dsl.component(deploy_model, base_image=image, install_kfp_package=False)
