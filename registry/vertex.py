"""Vertex AI Model Registry and Endpoints as the deploy target.

Every blessed model becomes a new *version* of one parent model (`taxifare`), served by
Vertex's prebuilt TensorFlow 2 container. Deploying goes:

    upload version -> endpoint (created when missing) -> deploy with 100% traffic
    -> move the `champion` alias -> undeploy the previous deployed model(s)

A failure before the traffic moves leaves the previous version serving and the alias where
it was. The alias moves as soon as the new version takes the traffic, so the `champion`
(and `default`) alias always names the version that serves; evaluate compares the candidate
against it. A failed undeploy afterwards only leaves an idle old deployment to clean up.
Calls go through the aiplatform_v1 clients over REST.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Mapping
from typing import Any

MODEL_ID = "taxifare"
CHAMPION = "champion"
DEFAULT_MACHINE_TYPE = "n1-standard-2"
# The newest TF2 serving image the SDK lists; a SavedModel of plain ops loads in it.
SERVING_TF_VERSION = "2-15"


class VertexError(RuntimeError):
    """A Vertex AI state the deploy cannot proceed from; the previous deployment is untouched."""


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
    raise VertexError(
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
            raise VertexError("the vertex deploy target needs the project and region pipeline parameters")
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
        self, artifact_uri: str, labels: Mapping[str, str], description: str, image: str = ""
    ) -> tuple[str, str]:
        """Upload a SavedModel as a new version of the parent model; return (versioned name, version id)."""
        from google.api_core import exceptions
        from google.cloud.aiplatform_v1 import types

        model = types.Model(
            display_name=self.model_id,
            artifact_uri=gcs_uri(artifact_uri),
            container_spec=types.ModelContainerSpec(image_uri=image or serving_image(self.region)),
            labels={k: label_value(v) for k, v in labels.items() if v},
            version_description=description[:1000],
        )
        request = types.UploadModelRequest(parent=self.parent, model=model)
        try:
            self.models.get_model(name=self.model_name)
            request.parent_model = self.model_name
        except exceptions.NotFound:
            request.model_id = self.model_id  # the first version names the parent model
        response = self.models.upload_model(request=request).result()
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
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        found = False
        for blob in gcs.client(self.project).list_blobs(bucket, prefix=prefix):
            if blob.name.endswith("/"):
                continue
            path = os.path.join(target, blob.name[len(prefix) :])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            blob.download_to_filename(path)
            found = True
        if not found:
            raise VertexError(f"champion {champion.model} points at {champion.artifact_uri}, which holds no files")
        return target

    # --- Endpoints --------------------------------------------------------------------------

    def endpoint(self, display_name: str) -> str:
        """The endpoint with this display name, created when missing."""
        from google.cloud.aiplatform_v1 import types

        found = [
            e.name for e in self.endpoints.list_endpoints(
                request=types.ListEndpointsRequest(parent=self.parent, filter=f'display_name="{display_name}"')
            )
        ]  # fmt: skip
        if len(found) > 1:
            raise VertexError(f"{len(found)} endpoints are named {display_name!r}: give a unique endpoint_name")
        if found:
            return found[0]
        operation = self.endpoints.create_endpoint(
            parent=self.parent, endpoint=types.Endpoint(display_name=display_name)
        )
        return operation.result().name

    def deploy(self, endpoint: str, model: str, machine_type: str = DEFAULT_MACHINE_TYPE) -> tuple[str, list[str]]:
        """Deploy `model` with all traffic; return its deployed id and the ids deployed before it."""
        from google.cloud.aiplatform_v1 import types

        before = [d.id for d in self.endpoints.get_endpoint(name=endpoint).deployed_models]
        deployed = types.DeployedModel(
            model=model,
            display_name=self.model_id,
            dedicated_resources=types.DedicatedResources(
                machine_spec=types.MachineSpec(machine_type=machine_type), min_replica_count=1, max_replica_count=1
            ),
        )
        # "0" is the model being deployed: it takes all traffic once it is ready.
        result = self.endpoints.deploy_model(
            endpoint=endpoint, deployed_model=deployed, traffic_split={"0": 100}
        ).result()
        new_id = result.deployed_model.id
        now = self.endpoints.get_endpoint(name=endpoint)
        if new_id not in {d.id for d in now.deployed_models} or now.traffic_split.get(new_id) != 100:
            raise VertexError(
                f"{model} was deployed to {endpoint} as {new_id!r} but does not take all traffic "
                f"({dict(now.traffic_split)}): left the previous deployment in place"
            )
        return new_id, [old for old in before if old != new_id]

    def undeploy(self, endpoint: str, keep: str, old_ids: list[str]) -> list[str]:
        """Undeploy the models that served before `keep` took all the traffic."""
        for old in old_ids:
            self.endpoints.undeploy_model(endpoint=endpoint, deployed_model_id=old, traffic_split={keep: 100}).result()
        return old_ids


def deploy_version(
    registry: VertexRegistry,
    artifact_uri: str,
    labels: Mapping[str, str],
    description: str,
    endpoint_name: str,
    machine_type: str = DEFAULT_MACHINE_TYPE,
    image: str = "",
) -> Deployment:
    """Upload, serve, then promote; see the module docstring for the order and why."""
    replaced = registry.champion()
    model, version = registry.upload(artifact_uri, labels, description, image)
    endpoint = registry.endpoint(endpoint_name)
    deployed_id, previous = registry.deploy(endpoint, model, machine_type)
    registry.set_champion(version)
    undeployed = registry.undeploy(endpoint, deployed_id, previous)
    return Deployment(model, version, endpoint, deployed_id, undeployed, replaced.model if replaced else None)


def _split(uri: str) -> tuple[str, str]:
    from trainer import gcs

    return gcs.split(gcs_uri(uri))
