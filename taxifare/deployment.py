"""deploy's work (only for a blessed candidate): check the model serves through the path that will
serve it, then register it locally and move the champion alias, or upload and deploy it on Vertex AI."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from taxifare.errors import UsageError
from trainer.config import DeployTarget

if TYPE_CHECKING:
    from taxifare.registry.vertex import ServingConfig


def serving(target: DeployTarget, image: str, encryption_key: str = "") -> ServingConfig:
    """How Vertex AI serves the version: the pipeline's image (custom) or TF Serving (prebuilt); the model and
    a new endpoint encrypted with `encryption_key` (Cloud KMS) when given."""
    from taxifare.registry.vertex import ServingConfig

    if target.serving_container == "custom" and not image:
        raise UsageError("serving_container=custom needs the pipeline image to serve with")
    return ServingConfig(
        target.serving_container, image, target.serving_machine_type, target.serving_min_replicas,
        target.serving_max_replicas, target.deploy_timeout, encryption_key,
    )  # fmt: skip


def check_servable(model_dir: str, deploy_target: str, config: ServingConfig | None) -> None:
    """The model must answer through the path that will serve it, as the Python loader does.

    Local registry and serving_container=custom: `taxifare serve` over HTTP (configured from
    the container spec Vertex AI gets); prebuilt: TF Serving's session-based loader.
    """
    from trainer import servable

    if deploy_target == "vertex" and config is not None and config.container == "prebuilt":
        servable.check_session_loader(model_dir)
        print("pre-flight: the model answers through TF Serving's session-based loader")
        return
    from taxifare.serving import preflight

    spec = config.container_spec("") if deploy_target == "vertex" and config is not None else None
    preflight.check_server(model_dir, spec, servable.python_loader_fares(model_dir))
    print("pre-flight: the model answers over HTTP through `taxifare serve`" + (" as the container" if spec else ""))


def deploy_local(model_dir: str, registry: str, metadata: dict) -> str:
    """Register, then move the alias only if the champion is still the one evaluate beat."""
    from taxifare.registry.local import LocalRegistry

    reg = LocalRegistry(registry)
    version = reg.register(model_dir, metadata)
    reg.promote(version.name, expected=metadata.get("replaced"))
    return version.name


def deploy_vertex(
    model_uri: str, metadata: dict, target: DeployTarget, config: ServingConfig, api_endpoint: str = "",
    decision: dict | None = None,
) -> tuple[str, dict]:  # fmt: skip
    """Upload (with its evaluation), deploy, switch, promote; return the version and what was registered."""
    from taxifare.registry import vertex

    reg = vertex.VertexRegistry(target.project, target.region, target.registry, api_endpoint)
    labels = {"run_id": metadata["run_id"], "data_fingerprint": metadata["data_fingerprint"]}
    description = json.dumps({k: metadata[k] for k in ("metrics", "decision", "test_rows", "run_id")}, default=str)
    endpoint = target.endpoint_name or vertex.MODEL_ID
    done = vertex.deploy_version(reg, model_uri, labels, description, endpoint, config, metadata.get("replaced"),
                                 decision)  # fmt: skip
    print(f"deployed {done.model} to {done.endpoint} (replaced: {done.replaced}; undeployed: {done.undeployed})")
    print(f"evaluation: {done.evaluation} with {len(done.slices)} slice(s)")
    registered = {"registry": "vertex", "model": done.model, "endpoint": done.endpoint,
                  "model_evaluation": done.evaluation, "slices": done.slices}  # fmt: skip
    return done.model, registered


def deploy(
    model_dir: str,
    decision_path: str,
    fingerprint: str,
    target: DeployTarget,
    run_id: str,
    *,
    model_uri: str = "",
    image: str = "",
    api_endpoint: str = "",
    encryption_key: str = "",
    registered_path: str = "",
) -> str:
    """Check the blessed model serves, then register (local) or deploy (vertex) it; return the version.

    `model_dir` is a local path to the SavedModel (on Vertex AI, its /gcs/ mount); `model_uri`
    its gs:// form for Model Registry (default: `model_dir`); `image` the pipeline's image,
    which serves it on Vertex AI with serving_container=custom; `encryption_key` the Cloud KMS
    key of the model and a new endpoint. `registered_path`: where to write what was registered
    (on Vertex AI the version's ModelEvaluation and its slices), as JSON.
    """
    target.check()
    with open(decision_path) as f:
        decision = json.load(f)
    if not decision.get("blessed"):
        raise UsageError("refusing to deploy a candidate the evaluation did not bless")
    metadata = {
        "run_id": run_id,
        "metrics": {k: decision[k] for k in ("candidate", "baseline", "champion")},
        "test_rows": decision["test_rows"],
        "decision": decision["reason"],
        "data_fingerprint": fingerprint,
        "replaced": decision.get("champion_version"),
    }
    config = serving(target, image, encryption_key) if target.deploy_target == "vertex" else None
    check_servable(model_dir, target.deploy_target, config)
    if config is None:
        version = deploy_local(model_dir, target.registry, metadata)
        registered = {"registry": "local", "version": version, "metrics": metadata["metrics"]}
    else:
        version, registered = deploy_vertex(model_uri or model_dir, metadata, target, config, api_endpoint, decision)
    if registered_path:
        with open(registered_path, "w") as f:
            json.dump(registered, f, indent=2, default=str)
    return version


def summary(version: str, target: DeployTarget) -> list[str]:
    if target.deploy_target == "vertex":
        return [f"deployed {version} to the {target.endpoint_name} endpoint and made it the champion"]
    return [f"registered {version} and moved the champion alias to it"]
