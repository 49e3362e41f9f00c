"""deploy's work (only for a blessed candidate): check the model serves through the path that will
serve it, then register it locally and move the champion alias, or upload and deploy it on Vertex AI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING

from taxifare.errors import ChampionMoved, UsageError
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


@dataclasses.dataclass(frozen=True)
class Deployed:
    version: str
    promoted: bool
    note: str  # what happened, for a person
    registered: dict = dataclasses.field(default_factory=dict)  # what the registry holds of it (vertex: its evaluation)


def deploy_local(model_dir: str, registry: str, metadata: dict) -> Deployed:
    """Register, then move the alias only if the champion is still the one evaluate beat. An identical
    candidate (same data, parameters, seed and code) adds no version; a run that lost the race for the
    champion keeps its version registered, not promoted (its own outcome, not a failure)."""
    from taxifare.registry.local import LocalRegistry

    reg = LocalRegistry(registry)
    if same := _identical(registry, metadata):
        return same
    version = reg.register(model_dir, metadata)
    try:
        reg.promote(version.name, expected=metadata.get("replaced"), reason=metadata["decision"],
                    run_id=metadata.get("run_id"))  # fmt: skip
    except ChampionMoved as err:
        return Deployed(version.name, False, f"registered {version.name}, not promoted: {err.message}")
    return Deployed(version.name, True, f"registered {version.name} and moved the champion alias to it")


def _identical(registry: str, metadata: dict) -> Deployed | None:
    from taxifare.registry.local import LocalRegistry

    key = metadata.get("candidate_key")
    same = LocalRegistry(registry).find(key) if key else None
    if same is None:
        return None
    return Deployed(
        same.name, False, f"identical to {same.name} (same data, parameters, seed and code): no new version"
    )


def deploy_vertex(
    model_uri: str, metadata: dict, target: DeployTarget, config: ServingConfig, api_endpoint: str = "",
    decision: dict | None = None,
) -> Deployed:  # fmt: skip
    """Upload (with its evaluation), deploy, switch, promote; the version and what was registered."""
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
    note = f"deployed {done.model} to the {endpoint} endpoint and made it the champion"
    return Deployed(done.model, True, note, registered)


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
    model_info: dict | None = None,
    encryption_key: str = "",
    registered_path: str = "",
) -> Deployed:
    """Check the blessed model serves, then register (local) or deploy (vertex) it; return the version.

    `model_dir` is a local path to the SavedModel (on Vertex AI, its /gcs/ mount); `model_uri`
    its gs:// form for Model Registry (default: `model_dir`); `image` the pipeline's image,
    which serves it on Vertex AI with serving_container=custom; `model_info` the train step's
    metadata of the model (its hyperparameters and code fingerprint: the candidate's identity);
    `encryption_key` the Cloud KMS key of the model and a new endpoint. `registered_path`: where to
    write what was registered (on Vertex AI the version's ModelEvaluation and its slices), as JSON.
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
        **{k: v for k, v in (decision.get("lineage") or {}).items() if v},  # source, schema, test_fingerprint
    }
    if model_info and model_info.get("hparams") and model_info.get("code"):
        metadata["hparams"] = model_info["hparams"]
        metadata["candidate_key"] = candidate_key(fingerprint, model_info["hparams"], model_info["code"])
    config = serving(target, image, encryption_key) if target.deploy_target == "vertex" else None
    # The very same model registered already (same data, parameters, code): nothing to check or register.
    done = _identical(target.registry, metadata) if config is None else None
    if done is None:
        check_servable(model_dir, target.deploy_target, config)
        if config is None:
            done = deploy_local(model_dir, target.registry, metadata)
        else:
            done = deploy_vertex(model_uri or model_dir, metadata, target, config, api_endpoint, decision)
    if registered_path:
        with open(registered_path, "w") as f:
            json.dump(done.registered or {"registry": "local", "version": done.version, "metrics": metadata["metrics"]},
                      f, indent=2, default=str)  # fmt: skip
    return done


def candidate_key(fingerprint: str, hparams: dict, code: str) -> str:
    """A candidate's identity: the staged rows, every hyperparameter (the seed among them) and the trainer's code."""
    text = json.dumps({"data": fingerprint, "hparams": hparams, "code": code}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
