"""`taxifare setup`: the bucket the pipeline uses, and who may read and write it.

Grants are bucket-level IAM bindings only (no project-wide roles): the Vertex AI service
agent (which reads model artifacts for serving) and the service account the pipeline runs as
get object read/write on this one bucket. Running it again changes nothing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from taxifare.cloud import access, names, reach
from taxifare.errors import CloudError, UsageError

# Read, write, list and delete objects; and read the bucket's own metadata, which gcsfuse
# (Vertex's /gcs/ mount) and the storage clients ask for.
BUCKET_ROLES = ("roles/storage.objectUser", "roles/storage.legacyBucketReader")


@dataclasses.dataclass
class Report:
    bucket: str
    changed: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    findings: list[access.Finding] = dataclasses.field(default_factory=list)
    tensorboard: str = ""  # the Vertex AI TensorBoard's resource name, when one was asked for

    @property
    def missing(self) -> list[access.Finding]:
        return [f for f in self.findings if not f.present and not f.granted]

    def lines(self) -> list[str]:
        out = [f"changed: {c}" for c in self.changed] + [f"already in place: {u}" for u in self.unchanged]
        out += [f"granted: {f.what}" for f in self.findings if f.granted]
        out += [f"already in place: {f.what}" for f in self.findings if f.present]
        out += [f"missing: {f.what}\n    fix: {f.fix}" for f in self.missing]
        return out


def vertex_service_agent(project_number: str) -> str:
    return f"serviceAccount:service-{project_number}@gcp-sa-aiplatform.iam.gserviceaccount.com"


def custom_code_agent(project_number: str) -> str:
    """Vertex AI's Custom Code Service Agent: training jobs and the pipeline's steps pull their images as it."""
    return f"serviceAccount:service-{project_number}@gcp-sa-aiplatform-cc.iam.gserviceaccount.com"


def default_pipeline_account(project_number: str) -> str:
    """Vertex AI Pipelines runs as the Compute Engine default service account unless told otherwise."""
    return f"serviceAccount:{project_number}-compute@developer.gserviceaccount.com"


def member(service_account: str) -> str:
    return service_account if ":" in service_account else f"serviceAccount:{service_account}"


def check_bucket_name(name: str) -> str:
    return names.bucket(name)


def project_number(project: str, client_options: Any = None, credentials: Any = None) -> str:
    """The project's number (the service agents are named after it), from Resource Manager."""
    from google.cloud import resourcemanager_v3

    client = resourcemanager_v3.ProjectsClient(credentials=credentials, transport="rest", client_options=client_options)
    name = client.get_project(name=f"projects/{project}").name
    return name.rsplit("/", 1)[-1]


def ensure_bucket(client: Any, name: str, location: str, report: Report) -> Any:
    from google.api_core import exceptions

    try:
        bucket = client.get_bucket(name)
    except exceptions.NotFound:
        bucket = client.bucket(name)
        bucket.iam_configuration.uniform_bucket_level_access_enabled = True
        bucket = client.create_bucket(bucket, location=location)
        report.changed.append(f"created bucket gs://{name} in {location} with uniform bucket-level access")
        return bucket
    except exceptions.Forbidden as err:
        raise UsageError(
            f"bucket gs://{name} exists but this account cannot read it (it may belong to another project): "
            "pick another name with --bucket"
        ) from err
    where = (bucket.location or "").lower()
    note = "" if where == location.lower() else f" (in {where}, not {location}: left as it is)"
    report.unchanged.append(f"bucket gs://{name}{note}")
    return bucket


# Cloud Storage may refuse a binding that names a service agent for a while after the agent is
# created; a first `setup --grant` waits this long (doubling pauses) before saying to rerun.
AGENT_PATIENCE_S = 120.0


def ensure_access(
    bucket: Any,
    members: list[str],
    report: Report,
    project: str = "PROJECT",
    *,
    new_agent: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Add each member to each of BUCKET_ROLES on this bucket; one policy write at most (more only
    while Cloud Storage does not know `new_agent`, just created, yet)."""
    policy = bucket.get_iam_policy(requested_policy_version=3)
    missing: list[tuple[str, str]] = []
    for role in BUCKET_ROLES:
        binding = next((b for b in policy.bindings if b["role"] == role and not b.get("condition")), None)
        present = set(binding["members"]) if binding else set()
        for who in members:
            if who in present:
                report.unchanged.append(f"{role} for {who} on gs://{bucket.name}")
            else:
                missing.append((role, who))
    if not missing:
        return
    for role in BUCKET_ROLES:
        new = [who for r, who in missing if r == role]
        if not new:
            continue
        binding = next((b for b in policy.bindings if b["role"] == role and not b.get("condition")), None)
        if binding is None:
            policy.bindings.append({"role": role, "members": set(new)})
        else:
            binding["members"] = set(binding["members"]) | set(new)
    agent = next((who for _, who in missing if "gcp-sa-aiplatform" in who), "")
    _set_policy(bucket, policy, agent, project, waiting=agent == new_agent and bool(agent), sleep=sleep)
    report.changed.extend(f"granted {role} to {who} on gs://{bucket.name}" for role, who in missing)


def _set_policy(bucket: Any, policy: Any, agent: str, project: str, *, waiting: bool,
                sleep: Callable[[float], None]) -> None:  # fmt: skip
    """Write the policy; the policy carries its etag, so a concurrent change fails this write
    rather than being lost. A refusal naming the agent is waited out only if it was just created."""
    from google.api_core import exceptions

    email = agent.removeprefix("serviceAccount:")
    waited, pause = 0.0, 2.0
    while True:
        try:
            bucket.set_iam_policy(policy)
            return
        except exceptions.BadRequest as err:
            # GCS names the member it does not know: only a refusal naming the agent is about it
            # (a mistyped --service-account is refused the same way, and is not waited for).
            if not (agent and "does not exist" in str(err) and email in str(err)):
                raise
            if not waiting:  # a new project: Vertex AI's agent appears at first use
                raise CloudError(
                    f"the Vertex AI service agent {email} does not exist yet",
                    "rerun with --grant (it creates it), or: " + access.SERVICE_AGENT_FIX.format(project=project),
                ) from err
            if waited >= AGENT_PATIENCE_S:
                raise CloudError(
                    f"the Vertex AI service agent {email} was created, but Cloud Storage still does not know it "
                    f"after {waited:.0f} s",
                    "wait a minute and rerun the same `taxifare setup` command: nothing is lost",
                ) from err
            pause = min(pause, AGENT_PATIENCE_S - waited)
            sleep(pause)
            waited, pause = waited + pause, pause * 2


TENSORBOARD_TIMEOUT = 300.0


def ensure_tensorboard(project: str, region: str, display_name: str, endpoints: access.Endpoints, report: Report,
                       credentials: Any = None) -> str:  # fmt: skip
    """The Vertex AI TensorBoard instance with this display name in the region, created when missing."""
    from google.api_core.client_options import ClientOptions
    from google.cloud.aiplatform_v1 import TensorboardServiceClient, types

    api = endpoints.vertex or f"{region}-aiplatform.googleapis.com"
    client = TensorboardServiceClient(credentials=credentials, client_options=ClientOptions(api_endpoint=api),
                                      transport="rest" if api.startswith("http://") else None)  # fmt: skip
    parent = f"projects/{project}/locations/{region}"
    listed = client.list_tensorboards(request=types.ListTensorboardsRequest(
        parent=parent, filter=f'display_name="{display_name}"'), timeout=TENSORBOARD_TIMEOUT)  # fmt: skip
    found = [t.name for t in listed]
    if len(found) > 1:
        one = found[0].rsplit("/", 1)[-1]
        raise CloudError(f"{len(found)} TensorBoards are named {display_name!r} in {region}",
                         f"pass one of them to submit by its id: --tensorboard {one}")  # fmt: skip
    if found:
        report.unchanged.append(f"Vertex AI TensorBoard {display_name} ({found[0]})")
        return found[0]
    board = types.Tensorboard(display_name=display_name)
    operation = client.create_tensorboard(parent=parent, tensorboard=board, timeout=TENSORBOARD_TIMEOUT)
    name = str(operation.result(timeout=TENSORBOARD_TIMEOUT).name)
    report.changed.append(f"created Vertex AI TensorBoard {display_name} ({name})")
    return name


def setup(
    project: str,
    region: str,
    bucket: str = "",
    service_account: str = "",
    *,
    grant: bool = False,
    bigquery: bool = False,
    caller: str = "",
    images: tuple[str, ...] = (),
    tensorboard: str = "",
    number: str = "",
    storage_client: Any = None,
    endpoints: access.Endpoints | None = None,
    credentials: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """Everything a first run needs, idempotently; return what changed, what was there and what is missing.

    Always: the bucket (created when missing) and its bucket-level read/write for the Vertex AI
    service agent and the pipeline's account. Checked, and granted only with `grant`: the
    project's APIs, the pipeline account's project roles, and the caller's right to act as it
    (taxifare/cloud/access.py). `region` is a Vertex AI region or a multi-region for the bucket.
    """
    names.project(project)
    names.region(region, multi_region=not tensorboard)  # a TensorBoard lives in a Vertex AI region
    name = names.bucket(bucket or project)
    endpoints = endpoints or access.Endpoints()
    if not endpoints.local:
        extra = [endpoints.artifact_registry] if images else []
        reach.check_all([*endpoints.google(), "https://storage.googleapis.com", f"https://{reach.TOKEN_HOST}", *extra])
    options, credentials = _local_credentials(endpoints, credentials)
    number = number or project_number(project, options, credentials)
    checks = access.Access(project, number, endpoints, credentials)
    report = Report(bucket=name)
    report.findings += checks.services((*access.SERVICES, *([access.BIGQUERY_SERVICE] if bigquery else [])), grant)
    if report.missing:
        return report  # the calls below need those APIs
    if storage_client is None:
        from trainer import gcs

        storage_client = gcs.client(project)
    location = region.upper() if region.lower() in names.MULTI_REGIONS else region
    handle = ensure_bucket(storage_client, name, location, report)
    agent, account = vertex_service_agent(number), member(service_account or default_pipeline_account(number))
    if grant:
        report.findings.append(checks.create_service_agent(agent))
    ensure_access(handle, [agent, account], report, project, new_agent=agent if grant else "", sleep=sleep)
    roles = [access.PIPELINE_ROLE, *([access.BIGQUERY_ROLE] if bigquery else [])]
    report.findings += checks.project_roles(account, roles, grant)
    report.findings.append(checks.act_as(account, caller, access.caller_identity(credentials), grant))
    # gcpc's custom job runs as the account it is given; with none given it runs as Vertex AI's
    # Custom Code Service Agent (which reads and writes the project's buckets), and needs no actAs.
    if service_account:
        report.findings.append(checks.self_act_as(account, grant))
    for image in dict.fromkeys(images):  # the agents that pull it: for serving, and for training and the steps
        report.findings += checks.image_readers(image, [agent, custom_code_agent(number)], grant)
    if tensorboard:
        report.tensorboard = ensure_tensorboard(project, region, tensorboard, endpoints, report, credentials)
    return report


def _local_credentials(endpoints: access.Endpoints, credentials: Any) -> tuple[Any, Any]:
    """(Resource Manager's client options, credentials): anonymous against a local recorder."""
    if not endpoints.local:
        return None, credentials
    from google.auth.credentials import AnonymousCredentials

    return {"api_endpoint": endpoints.resource_manager}, credentials or AnonymousCredentials()
