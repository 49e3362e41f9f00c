"""Vertex AI Model Registry and Endpoints as the deploy target.

Every blessed model becomes a new *version* of one parent model (`taxifare`). By default it
is served by this project's own image running `taxifare serve` (serving/container.py: the
server the tests run is the server Vertex AI runs); `serving_container=prebuilt` picks
Vertex's TF2 container (TF Serving) instead. Deploying goes:

    champion still the one evaluate beat? -> endpoint (created when missing; one that serves
    other models is refused) -> upload version -> import its evaluation (registry/evaluations.py)
    -> deploy it with 0% traffic (100% on an empty endpoint) -> read the endpoint's etag, then check
    the champion again -> all traffic to the new version, guarded by that etag -> move the
    `champion` alias -> undeploy the previous deployed model(s), which take no traffic by then

A failure before the switch leaves the previous version serving and the alias where it was:
the new deployment is undeployed again. The etag makes the switch a compare-and-set against
every change to the endpoint since the second champion check. Vertex AI has no compare-and-set
for aliases: two runs switching the same endpoint within seconds can end with the alias on the
one that lost the traffic (schedules run one at a time by default, `max_concurrent=1`). The
alias moves as soon as the new version takes the traffic, so `champion` (and `default`) names
the version that serves; evaluate compares the candidate against it. A failed undeploy
afterwards only leaves an idle old deployment to clean up. Every long-running operation waits
at most `ServingConfig.timeout_seconds`. Calls go through the aiplatform_v1 clients over REST.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Mapping
from typing import Any

from taxifare.errors import ChampionMoved, CloudError
from trainer.config import DEFAULT_DEPLOY_TIMEOUT

MODEL_ID = "taxifare"
CHAMPION = "champion"
# The newest TF2 serving image the SDK lists (Google ends its support in January 2027); the
# export loads in it (tests/test_servable.py runs it under TF 2.15), but it is the option.
SERVING_TF_VERSION = "2-15"


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """How a deployed version is served (checked where it is set: trainer.config.DeployTarget)."""

    container: str  # custom: the pipeline image running `taxifare serve`; prebuilt: TF Serving
    image: str  # the pipeline image, for container=custom
    machine_type: str
    min_replicas: int
    max_replicas: int
    timeout_seconds: float
    encryption_key: str = ""  # a Cloud KMS key: the uploaded model and a created endpoint are encrypted with it

    def container_spec(self, region: str) -> dict[str, Any]:
        if self.container == "prebuilt":
            return {"image_uri": serving_image(region)}
        from taxifare.serving import container

        return container.container_spec(self.image)


@dataclasses.dataclass(frozen=True)
class Champion:
    version_id: str
    model: str  # projects/P/locations/R/models/ID@VERSION
    artifact_uri: str


@dataclasses.dataclass
class Deployment:
    model: str
    version_id: str
    endpoint: str
    deployed_model_id: str
    undeployed: list[str] = dataclasses.field(default_factory=list)
    replaced: str | None = None
    evaluation: str = ""  # the version's ModelEvaluation
    slices: list[str] = dataclasses.field(default_factory=list)


def serving_image(region: str) -> str:
    """Vertex's prebuilt TF2 CPU prediction image from the Artifact Registry nearest the region."""
    area = region.split("-")[0]
    area = area if area in ("us", "europe", "asia") else "us"
    return f"{area}-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.{SERVING_TF_VERSION}:latest"


def label_value(text: str) -> str:
    """Vertex label values: lowercase letters, digits, '-' and '_', at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


def gcs_uri(path: str) -> str:
    """gs:// form of a model location; Vertex mounts gs://B/P at /gcs/B/P inside each step."""
    if path.startswith("gs://"):
        return path
    if path.startswith("/gcs/"):
        return "gs://" + path[len("/gcs/") :]
    raise CloudError(
        f"the model is at {path!r}, not on Cloud Storage: the vertex deploy target needs a gs:// pipeline "
        "root (run the pipeline on Vertex AI with `taxifare submit`)"
    )


class VertexRegistry:
    def __init__(
        self,
        project: str,
        region: str,
        model_id: str = MODEL_ID,
        api_endpoint: str = "",
        credentials: Any = None,
    ):
        if not project or not region:
            raise CloudError("the vertex deploy target needs the project and region pipeline parameters")
        self.project, self.region, self.model_id = project, region, model_id or MODEL_ID
        self.parent = f"projects/{project}/locations/{region}"
        self.model_name = f"{self.parent}/models/{self.model_id}"
        self._api_endpoint = api_endpoint or f"{region}-aiplatform.googleapis.com"
        if credentials is None and self._api_endpoint.startswith("http://"):
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()  # a local recorder or gateway: no Google credentials
        self._credentials = credentials
        self._models: Any = None
        self._endpoints: Any = None

    def _client_args(self) -> dict[str, Any]:
        from google.api_core.client_options import ClientOptions

        return {
            "credentials": self._credentials,
            "transport": "rest",
            "client_options": ClientOptions(api_endpoint=self._api_endpoint),
        }

    @property
    def models(self) -> Any:
        if self._models is None:
            from google.cloud.aiplatform_v1 import ModelServiceClient

            self._models = ModelServiceClient(**self._client_args())
        return self._models

    @property
    def endpoints(self) -> Any:
        if self._endpoints is None:
            from google.cloud.aiplatform_v1 import EndpointServiceClient

            self._endpoints = EndpointServiceClient(**self._client_args())
        return self._endpoints

    # --- Model Registry -------------------------------------------------------------------

    def champion(self) -> Champion | None:
        from google.api_core import exceptions

        try:
            model = self.models.get_model(name=f"{self.model_name}@{CHAMPION}")
        except exceptions.NotFound:
            return None
        return Champion(model.version_id, f"{self.model_name}@{model.version_id}", model.artifact_uri)

    def upload(
        self, artifact_uri: str, labels: Mapping[str, str], description: str, spec: Mapping[str, Any], timeout: float,
        encryption_key: str = "",
    ) -> tuple[str, str]:  # fmt: skip
        """Upload a SavedModel as a new version of the parent model; return (versioned name, version id)."""
        from google.api_core import exceptions
        from google.cloud.aiplatform_v1 import types

        model = types.Model(
            display_name=self.model_id,
            artifact_uri=gcs_uri(artifact_uri),
            container_spec=types.ModelContainerSpec(**spec),
            labels={k: label_value(v) for k, v in labels.items() if v},
            version_description=description[:1000],
            encryption_spec=_encryption(encryption_key),
        )
        request = types.UploadModelRequest(parent=self.parent, model=model)
        try:
            self.models.get_model(name=self.model_name)
            request.parent_model = self.model_name
        except exceptions.NotFound:
            request.model_id = self.model_id  # the first version names the parent model
        response = _wait(self.models.upload_model(request=request), timeout, "uploading the model version")
        version = response.model_version_id
        return f"{self.model_name}@{version}", version

    def set_champion(self, version_id: str) -> None:
        """Move `champion` (and `default`, which the bare model name resolves to) to this version."""
        self.models.merge_version_aliases(name=f"{self.model_name}@{version_id}", version_aliases=[CHAMPION, "default"])

    def download(self, champion: Champion, local_dir: str | None = None) -> str:
        """A local directory holding the champion's SavedModel: Vertex's /gcs/ mount, or a copy."""
        bucket, prefix = _split(champion.artifact_uri)
        mounted = f"/gcs/{bucket}/{prefix}".rstrip("/")
        if os.path.isfile(os.path.join(mounted, "saved_model.pb")):
            return mounted
        from trainer import gcs

        target = local_dir or tempfile.mkdtemp(prefix="champion-")
        if not gcs.download_dir(champion.artifact_uri, target):
            raise CloudError(f"champion {champion.model} points at {champion.artifact_uri}, which holds no files")
        return target

    # --- Endpoints --------------------------------------------------------------------------

    def endpoint(self, display_name: str, timeout: float = DEFAULT_DEPLOY_TIMEOUT, encryption_key: str = "") -> str:
        """The endpoint with this display name, created when missing (encrypted with `encryption_key`)."""
        from google.cloud.aiplatform_v1 import types

        found = [
            e.name for e in self.endpoints.list_endpoints(
                request=types.ListEndpointsRequest(parent=self.parent, filter=f'display_name="{display_name}"')
            )
        ]  # fmt: skip
        if len(found) > 1:
            raise CloudError(f"{len(found)} endpoints are named {display_name!r}: give a unique endpoint_name")
        if found:
            return found[0]
        endpoint = types.Endpoint(display_name=display_name, encryption_spec=_encryption(encryption_key))
        operation = self.endpoints.create_endpoint(parent=self.parent, endpoint=endpoint)
        return _wait(operation, timeout, f"creating endpoint {display_name!r}").name

    def deploy(self, endpoint: str, model: str, serving: ServingConfig) -> tuple[str, list[str]]:
        """Deploy `model` beside what serves; return its deployed id and the ids deployed before it.

        On an endpoint that already serves, the new model gets 0% of the traffic: `shift_traffic`
        moves it once the champion is known not to have changed. On an empty endpoint it gets all.
        """
        from google.cloud.aiplatform_v1 import types

        current = self.endpoints.get_endpoint(name=endpoint)
        self._refuse_foreign(endpoint, current)
        before = [d.id for d in current.deployed_models]
        # "0" is the model being deployed; the others keep what they have.
        split = {"0": 100} if not before else {"0": 0, **dict(current.traffic_split)}
        deployed = types.DeployedModel(
            model=model,
            display_name=self.model_id,
            dedicated_resources=types.DedicatedResources(
                machine_spec=types.MachineSpec(machine_type=serving.machine_type),
                min_replica_count=serving.min_replicas,
                max_replica_count=serving.max_replicas,
            ),
        )
        operation = self.endpoints.deploy_model(endpoint=endpoint, deployed_model=deployed, traffic_split=split)
        result = _wait(operation, serving.timeout_seconds, f"deploying {model} to {endpoint}")
        return result.deployed_model.id, [old for old in before if old != result.deployed_model.id]

    def check_endpoint(self, endpoint: str) -> None:
        self._refuse_foreign(endpoint, self.endpoints.get_endpoint(name=endpoint))

    def _refuse_foreign(self, endpoint: str, current: Any) -> None:
        """An endpoint that also serves other models is not ours to take the traffic of, or to empty."""
        ours = (self.model_name, f"{self.model_name}@")
        foreign = [d.model for d in current.deployed_models if not (d.model == ours[0] or d.model.startswith(ours[1]))]
        if foreign:
            raise CloudError(
                f"{endpoint} also serves {', '.join(sorted(set(foreign)))}, not versions of {self.model_name}",
                "give endpoint_name an endpoint only this model uses (it is created when missing)",
            )

    def etag(self, endpoint: str) -> str:
        return str(self.endpoints.get_endpoint(name=endpoint).etag)

    def shift_traffic(self, endpoint: str, deployed_id: str, etag: str) -> None:
        """All traffic to `deployed_id`, only if the endpoint has not changed since `etag` was read."""
        from google.api_core import exceptions
        from google.cloud.aiplatform_v1 import types
        from google.protobuf import field_mask_pb2

        now = self.endpoints.get_endpoint(name=endpoint)
        if now.traffic_split.get(deployed_id) != 100:
            update = types.Endpoint(name=endpoint, traffic_split={deployed_id: 100}, etag=etag)
            try:
                self.endpoints.update_endpoint(
                    endpoint=update, update_mask=field_mask_pb2.FieldMask(paths=["traffic_split"])
                )
            except (exceptions.Aborted, exceptions.FailedPrecondition, exceptions.Conflict) as err:
                raise ChampionMoved(
                    f"{endpoint} changed while this run deployed (etag {etag!r} is stale: {err.message}); "
                    "the traffic was left as it is"
                ) from err
        after = self.endpoints.get_endpoint(name=endpoint)
        if after.traffic_split.get(deployed_id) != 100:
            raise CloudError(
                f"{deployed_id} was deployed to {endpoint} but does not take all traffic "
                f"({dict(after.traffic_split)}): left the previous deployment in place"
            )

    def undeploy(self, endpoint: str, old_ids: list[str], timeout: float, left: str) -> list[str]:
        """Undeploy `old_ids`, which take no traffic: no traffic_split is sent, so a concurrent
        run's split is never overwritten."""
        for old in old_ids:
            operation = self.endpoints.undeploy_model(endpoint=endpoint, deployed_model_id=old)
            _wait(operation, timeout, f"undeploying {old} from {endpoint}", left=left)
        return old_ids

    def check_champion(self, expected: str | None) -> Champion | None:
        """The champion, if it is still `expected` (a versioned name, or None for none); else ChampionMoved."""
        found = self.champion()
        if (found.model if found else None) != expected:
            raise ChampionMoved(
                f"the champion is now {found.model if found else 'none'}, but this run was evaluated against "
                f"{expected or 'no champion'}: another run or a person moved it. Nothing was promoted and "
                "the traffic was left as it is; rerun the pipeline to evaluate against the new champion"
            )
        return found


BEFORE_SWITCH_LEFT = "The previous deployment still takes all the traffic and the champion alias did not move"
UNDEPLOY_LEFT = "The new version takes all the traffic and is the champion; an idle old deployment may be left"


def _encryption(key: str) -> Any:
    from google.cloud.aiplatform_v1 import types

    return types.EncryptionSpec(kms_key_name=key) if key else None


def _wait(operation: Any, timeout: float, what: str, left: str = BEFORE_SWITCH_LEFT) -> Any:
    """The operation's result, or a CloudError saying what is still running and what state is left."""
    import concurrent.futures

    try:
        return operation.result(timeout=timeout)
    except concurrent.futures.TimeoutError as err:
        name = getattr(getattr(operation, "operation", None), "name", "?")
        raise CloudError(
            f"{what} did not finish within {timeout:.0f}s (deploy_timeout); operation {name} is still running. "
            f"{left}. Check the operation in the console, then rerun or raise deploy_timeout"
        ) from err


def deploy_version(
    registry: VertexRegistry,
    artifact_uri: str,
    labels: Mapping[str, str],
    description: str,
    endpoint_name: str,
    serving: ServingConfig,
    expected_champion: str | None,
    decision: Mapping[str, Any] | None = None,
) -> Deployment:
    """Check, upload (with its evaluation, from evaluate's `decision`), deploy beside, switch, promote; see
    the module docstring for the order and why."""
    from taxifare.registry import evaluations

    replaced = registry.check_champion(expected_champion)
    endpoint = registry.endpoint(endpoint_name, serving.timeout_seconds, serving.encryption_key)
    registry.check_endpoint(endpoint)  # before anything is uploaded
    model, version = registry.upload(
        artifact_uri, labels, description, serving.container_spec(registry.region), serving.timeout_seconds,
        serving.encryption_key,
    )  # fmt: skip
    # Every uploaded version gets its evaluation at once, before it serves: the console's Evaluate tab.
    evaluation, slices = ("", []) if decision is None else evaluations.import_evaluation(
        registry.models, model, decision, labels.get("run_id", "")
    )  # fmt: skip
    deployed_id, previous = registry.deploy(endpoint, model, serving)
    try:
        # The etag first, then the champion: any change to the endpoint after this check fails the switch.
        etag = registry.etag(endpoint)
        registry.check_champion(expected_champion)
        registry.shift_traffic(endpoint, deployed_id, etag)
    except Exception as err:
        # Take the new one away again (on an empty endpoint it was serving alone): as before the deploy.
        try:
            registry.undeploy(endpoint, [deployed_id], serving.timeout_seconds, BEFORE_SWITCH_LEFT)
        except Exception as cleanup:  # the reason to stop matters more than the clean-up
            err.add_note(f"undeploying the unused {deployed_id} from {endpoint} also failed: {cleanup}")
        raise
    registry.set_champion(version)
    undeployed = registry.undeploy(endpoint, previous, serving.timeout_seconds, UNDEPLOY_LEFT)
    return Deployment(model, version, endpoint, deployed_id, undeployed, replaced.model if replaced else None,
                      evaluation, slices)  # fmt: skip


def _split(uri: str) -> tuple[str, str]:
    from trainer import gcs

    return gcs.split(gcs_uri(uri))
