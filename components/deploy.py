"""Step 4, deploy (only when blessed): a new registry version, then the champion alias moves."""

import dataclasses
import json
import os
from typing import TYPE_CHECKING

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent

    from taxifare.registry.vertex import ServingConfig

from taxifare.errors import UsageError
from taxifare.registry.vertex import DEFAULT_DEPLOY_TIMEOUT, DEFAULT_MACHINE_TYPE, SERVING_CONTAINERS
from trainer import settings
from trainer.settings import positive, setting


@dataclasses.dataclass(frozen=True)
class DeployTarget:
    """Where blessed models go and how Vertex AI serves them: the step's settings, checked once."""

    deploy_target: str = setting(
        "local", "where blessed models go: local (a registry directory) or vertex (Model Registry and an endpoint)",
        choices=("local", "vertex"),
    )  # fmt: skip
    registry: str = setting(
        "", "the local registry directory (an absolute path); for vertex, the parent model id (default taxifare)"
    )
    project: str = setting("", "the Google Cloud project of Vertex AI's Model Registry (and of BigQuery jobs)")
    region: str = setting("", "for vertex: the region of the model and the endpoint")
    endpoint_name: str = setting("taxifare", "for vertex: the endpoint's display name (created when missing)")
    serving_container: str = setting(
        "custom", "for vertex: custom (the pipeline's image runs `taxifare serve`) or prebuilt (TF Serving 2.15)",
        choices=SERVING_CONTAINERS,
    )  # fmt: skip
    serving_machine_type: str = setting(DEFAULT_MACHINE_TYPE, "for vertex: the endpoint's machine type")
    serving_min_replicas: int = setting(1, "for vertex: the fewest serving machines", positive)
    serving_max_replicas: int = setting(1, "for vertex: the most serving machines (autoscaling above min)", positive)
    deploy_timeout: float = setting(
        DEFAULT_DEPLOY_TIMEOUT,
        "for vertex: seconds each deploy operation (upload, deploy, undeploy) may take",
        positive,
    )

    def problems(self) -> list[str]:
        found = settings.problems(self)
        if not found and self.serving_min_replicas > self.serving_max_replicas:
            found.append(
                f"serving_min_replicas ({self.serving_min_replicas}) must not exceed "
                f"serving_max_replicas ({self.serving_max_replicas})"
            )
        if self.deploy_target == "local" and not os.path.isabs(self.registry):
            found.append(
                f"deploy_target=local needs registry=/an/absolute/path, got {self.registry!r}: say where blessed "
                "models go (on a Kubeflow cluster a shared volume's path, or deploy_target=vertex with project "
                "and region)"
            )
        if self.deploy_target == "vertex" and not (self.project and self.region):
            found.append("deploy_target=vertex needs the project and region parameters")
        return found

    def check(self) -> "DeployTarget":
        if found := self.problems():
            raise UsageError("; ".join(found))
        return self

    def serving(self, image: str) -> "ServingConfig":
        from taxifare.registry.vertex import ServingConfig

        if self.serving_container == "custom" and not image:
            raise UsageError("serving_container=custom needs the pipeline image to serve with")
        return ServingConfig(
            self.serving_container, image, self.serving_machine_type, self.serving_min_replicas,
            self.serving_max_replicas, self.deploy_timeout,
        )  # fmt: skip


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
    from taxifare.serving import preflight

    spec = serving.container_spec("") if deploy_target == "vertex" and serving is not None else None
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
    model_uri: str, metadata: dict, target: DeployTarget, serving: "ServingConfig", api_endpoint: str = ""
) -> str:
    from taxifare.registry import vertex

    reg = vertex.VertexRegistry(target.project, target.region, target.registry, api_endpoint)
    labels = {"run_id": metadata["run_id"], "data_fingerprint": metadata["data_fingerprint"]}
    description = json.dumps({k: metadata[k] for k in ("metrics", "decision", "test_rows", "run_id")}, default=str)
    endpoint = target.endpoint_name or vertex.MODEL_ID
    done = vertex.deploy_version(reg, model_uri, labels, description, endpoint, serving, metadata.get("replaced"))
    print(f"deployed {done.model} to {done.endpoint} (replaced: {done.replaced}; undeployed: {done.undeployed})")
    return done.model


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
) -> str:
    """Check the blessed model serves, then register (local) or deploy (vertex) it; return the version.

    `model_dir` is a local path to the SavedModel (on Vertex AI, its /gcs/ mount); `model_uri`
    its gs:// form for Model Registry (default: `model_dir`); `image` the pipeline's image,
    which serves it on Vertex AI with serving_container=custom.
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
    serving = target.serving(image) if target.deploy_target == "vertex" else None
    check_servable(model_dir, target.deploy_target, serving)
    if serving is None:
        return deploy_local(model_dir, target.registry, metadata)
    return deploy_vertex(model_uri or model_dir, metadata, target, serving, api_endpoint)


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
) -> str:
    """Check the blessed model serves, register it as a new version and make it the champion."""
    from components.deploy import DeployTarget, deploy

    target = DeployTarget(
        deploy_target, registry, project, region, endpoint_name, serving_container, serving_machine_type,
        serving_min_replicas, serving_max_replicas, deploy_timeout,
    )  # fmt: skip
    fingerprint = test_data.metadata.get("fingerprint", "")
    return deploy(model.path, decision.path, fingerprint, target, run_id or job_name, model_uri=model.uri,
                  image=serving_image)  # fmt: skip


def component(image: str) -> "PythonComponent":
    return dsl.component(deploy_model, base_image=image, install_kfp_package=False)
