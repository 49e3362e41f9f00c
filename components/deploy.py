"""Step 4, deploy (only when blessed): a new registry version, then the champion alias moves."""

import json
import os
from typing import TYPE_CHECKING

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent


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
    model_uri: str, metadata: dict, project: str, region: str, model_id: str, endpoint_name: str, api_endpoint: str = ""
) -> str:
    from registry import vertex

    reg = vertex.VertexRegistry(project, region, model_id, api_endpoint)
    labels = {"run_id": metadata["run_id"], "data_fingerprint": metadata["data_fingerprint"]}
    description = json.dumps({k: metadata[k] for k in ("metrics", "decision", "test_rows", "run_id")}, default=str)
    done = vertex.deploy_version(reg, model_uri, labels, description, endpoint_name or vertex.MODEL_ID)
    print(f"deployed {done.model} to {done.endpoint} (replaced: {done.replaced}; undeployed: {done.undeployed})")
    return done.model


def deploy(
    model_dir: str,
    decision_path: str,
    fingerprint: str,
    deploy_target: str,
    registry: str,
    run_id: str,
    project: str = "",
    region: str = "",
    endpoint_name: str = "",
    api_endpoint: str = "",
) -> str:
    with open(decision_path) as f:
        decision = json.load(f)
    if not decision.get("blessed"):
        raise ValueError("refusing to deploy a candidate the evaluation did not bless")
    metadata = {
        "run_id": run_id,
        "metrics": {k: decision[k] for k in ("candidate", "baseline", "champion")},
        "test_rows": decision["test_rows"],
        "decision": decision["reason"],
        "data_fingerprint": fingerprint,
        "replaced": decision.get("champion_version"),
    }
    if deploy_target == "local":
        return deploy_local(model_dir, registry, metadata)
    if deploy_target == "vertex":
        return deploy_vertex(model_dir, metadata, project, region, registry, endpoint_name, api_endpoint)
    raise ValueError(f"unknown deploy_target {deploy_target!r}: expected 'local' or 'vertex'")


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
) -> str:
    """Register the blessed model as a new version and make it the champion.

    Args:
        deploy_target: local (a registry directory) or vertex (Model Registry and an endpoint).
        registry: the local registry directory; for vertex, the parent model id (default taxifare).
        run_id: the pipeline run that produced the model.
        project: for vertex, the Google Cloud project.
        region: for vertex, the region of the model and endpoint.
        endpoint_name: for vertex, the display name of the endpoint (created when missing).
    """
    from components.deploy import deploy

    return deploy(
        model.uri if deploy_target == "vertex" else model.path,
        decision.path, test_data.metadata.get("fingerprint", ""), deploy_target, registry, run_id,
        project, region, endpoint_name,
    )  # fmt: skip


def component(image: str) -> "PythonComponent":
    return dsl.component(deploy_model, base_image=image, install_kfp_package=False)
