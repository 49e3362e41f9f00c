"""Step 4, deploy (only when blessed): a new registry version, then the champion alias moves."""

import json
import os
from typing import TYPE_CHECKING

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent

    from registry.vertex import ServingConfig


def check_servable(model_dir: str, deploy_target: str, serving: "ServingConfig | None") -> None:
    """The model must answer through the path that will serve it, as the Python loader does.

    Local registry and serving_container=custom: `taxifare serve` over HTTP (configured from
    the container spec Vertex AI gets); prebuilt: TF Serving's session-based loader.
    """
    from trainer import servable

    if deploy_target == "vertex" and serving is not None and serving.container == "prebuilt":
        servable.check_session_loader(model_dir)
        print("pre-flight: the model answers through TF Serving's session-based loader")
        return
    from serving import preflight

    spec = serving.container_spec("") if deploy_target == "vertex" and serving is not None else None
    preflight.check_server(model_dir, spec, servable.python_loader_fares(model_dir))
    print("pre-flight: the model answers over HTTP through `taxifare serve`" + (" as the container" if spec else ""))


def deploy_local(model_dir: str, registry: str, metadata: dict) -> str:
    """Register, then move the alias only if the champion is still the one evaluate beat."""
    from registry.local import LocalRegistry

    if not registry or not os.path.isabs(registry):
        raise ValueError(
            f"registry must be an absolute directory path for deploy_target=local, got {registry!r}; "
            "on a cluster use a shared volume's path, or deploy_target=vertex"
        )
    reg = LocalRegistry(registry)
    version = reg.register(model_dir, metadata)
    reg.promote(version.name, expected=metadata.get("replaced"))
    return version.name


def deploy_vertex(
    model_uri: str,
    metadata: dict,
    project: str,
    region: str,
    model_id: str,
    endpoint_name: str,
    serving: "ServingConfig",
    api_endpoint: str = "",
) -> str:
    from registry import vertex

    reg = vertex.VertexRegistry(project, region, model_id, api_endpoint)
    labels = {"run_id": metadata["run_id"], "data_fingerprint": metadata["data_fingerprint"]}
    description = json.dumps({k: metadata[k] for k in ("metrics", "decision", "test_rows", "run_id")}, default=str)
    done = vertex.deploy_version(
        reg, model_uri, labels, description, endpoint_name or vertex.MODEL_ID, serving, metadata.get("replaced")
    )
    print(f"deployed {done.model} to {done.endpoint} (replaced: {done.replaced}; undeployed: {done.undeployed})")
    return done.model


def deploy(
    model_dir: str,
    decision_path: str,
    fingerprint: str,
    deploy_target: str,
    registry: str,
    run_id: str,
    *,
    model_uri: str = "",
    project: str = "",
    region: str = "",
    endpoint_name: str = "",
    serving: "ServingConfig | None" = None,
    api_endpoint: str = "",
) -> str:
    """Check the blessed model serves, then register (local) or deploy (vertex) it; return the version.

    `model_dir` is a local path to the SavedModel (on Vertex AI, its /gcs/ mount); `model_uri`
    its gs:// form for Model Registry (default: `model_dir`).
    """
    with open(decision_path) as f:
        decision = json.load(f)
    if not decision.get("blessed"):
        raise ValueError("refusing to deploy a candidate the evaluation did not bless")
    if deploy_target not in ("local", "vertex"):
        raise ValueError(f"unknown deploy_target {deploy_target!r}: expected 'local' or 'vertex'")
    metadata = {
        "run_id": run_id,
        "metrics": {k: decision[k] for k in ("candidate", "baseline", "champion")},
        "test_rows": decision["test_rows"],
        "decision": decision["reason"],
        "data_fingerprint": fingerprint,
        "replaced": decision.get("champion_version"),
    }
    if deploy_target == "vertex" and serving is None:
        raise ValueError("deploy_target=vertex needs a serving configuration")
    check_servable(model_dir, deploy_target, serving)
    if deploy_target == "local":
        return deploy_local(model_dir, registry, metadata)
    assert serving is not None
    return deploy_vertex(
        model_uri or model_dir, metadata, project, region, registry, endpoint_name, serving, api_endpoint
    )


def deploy_model(
    model: Input[Model],
    decision: Input[Artifact],
    test_data: Input[Dataset],
    deploy_target: str,
    registry: str,
    run_id: str,
    project: str,
    region: str,
    endpoint_name: str,
    serving_container: str,
    serving_image: str,
    serving_machine_type: str,
    serving_min_replicas: int,
    serving_max_replicas: int,
    deploy_timeout: float,
) -> str:
    """Check the blessed model serves, register it as a new version and make it the champion.

    Args:
        deploy_target: local (a registry directory) or vertex (Model Registry and an endpoint).
        registry: the local registry directory; for vertex, the parent model id (default taxifare).
        run_id: the pipeline run that produced the model.
        project: for vertex, the Google Cloud project.
        region: for vertex, the region of the model and endpoint.
        endpoint_name: for vertex, the display name of the endpoint (created when missing).
        serving_container: for vertex, custom (this image running taxifare serve) or prebuilt (TF Serving).
        serving_image: for vertex with serving_container=custom, the image that serves.
        serving_machine_type: for vertex, the endpoint's machine type.
        serving_min_replicas: for vertex, the fewest serving machines.
        serving_max_replicas: for vertex, the most serving machines (autoscaling above min).
        deploy_timeout: for vertex, seconds each long-running operation may take.
    """
    from components.deploy import deploy

    serving = None
    if deploy_target == "vertex":
        from registry.vertex import ServingConfig

        serving = ServingConfig(
            serving_container, serving_image, serving_machine_type, serving_min_replicas, serving_max_replicas,
            deploy_timeout,
        )  # fmt: skip
    return deploy(
        model.path, decision.path, test_data.metadata.get("fingerprint", ""), deploy_target, registry, run_id,
        model_uri=model.uri, project=project, region=region, endpoint_name=endpoint_name, serving=serving,
    )  # fmt: skip


def component(image: str) -> "PythonComponent":
    return dsl.component(deploy_model, base_image=image, install_kfp_package=False)
