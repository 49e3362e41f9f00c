"""What a first run needs beyond the bucket, checked (and with `grant`, granted) before it dies of it.

1. The APIs enabled in the project (Service Usage): Vertex AI, Cloud Storage, Artifact Registry
   (the image), Resource Manager and IAM (these checks), and BigQuery when asked for.
2. The pipeline's service account may use Vertex AI: project-level `roles/aiplatform.user`, and
   `roles/bigquery.jobUser` when BigQuery is the source. Roles that include them (Owner,
   Editor, Vertex AI Administrator) count as present; none of them is ever granted.
3. The caller may act as that account (`iam.serviceAccounts.actAs`), and so may the account
   itself: the training custom job runs as the pipeline's account, and Vertex AI asks whoever
   creates a job (the pipeline, as that account) for actAs on the job's account, even when it is
   the same one. Granted as `roles/iam.serviceAccountUser` on that one service account's own
   policy, never project-wide. For the credentials' own identity it is checked with
   testIamPermissions (which answers for whoever calls, groups and custom roles included); for
   anyone else (`--caller`, the account itself) from the project's and the account's policies,
   where a grant through a group is not seen (the finding then says missing; the fix is harmless).
4. With `--image`, the service agents that pull images (Vertex AI's, for serving, and its Custom Code
   Service Agent, for training and the pipeline's steps) may read an image kept in another project's
   Artifact Registry: `roles/artifactregistry.reader` on the repository (read from its own policy: a
   grant on that project is not seen from here). An image in the run's project needs nothing.
5. The Vertex AI service agent exists: a new project's appears only when Vertex AI is first
   used, and a bucket binding naming it fails until then. With `grant` it is created
   (Service Usage's generateServiceIdentity, which returns the existing one if there is one).

Every read-modify-write of a policy carries its etag, so a concurrent change fails the write
instead of being lost. Service Usage and IAM are called over REST with an authorized session
(google-cloud-resource-manager is the only client library the project has for these).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any

from taxifare.errors import CloudError

SERVICES = (
    "aiplatform.googleapis.com",
    "storage.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "iam.googleapis.com",
)
BIGQUERY_SERVICE = "bigquery.googleapis.com"
PIPELINE_ROLE = "roles/aiplatform.user"
BIGQUERY_ROLE = "roles/bigquery.jobUser"
ACT_AS_ROLE = "roles/iam.serviceAccountUser"
ACT_AS = "iam.serviceAccounts.actAs"
ACT_AS_COVERS = ("roles/owner", "roles/editor", ACT_AS_ROLE)  # roles that include actAs
VERTEX_SERVICE = "aiplatform.googleapis.com"
SERVICE_AGENT_FIX = f"gcloud beta services identity create --service={VERTEX_SERVICE} --project={{project}}"
# Roles that already hold what PIPELINE_ROLE / BIGQUERY_ROLE give (never granted by us).
COVERS = {
    PIPELINE_ROLE: ("roles/owner", "roles/editor", "roles/aiplatform.admin", PIPELINE_ROLE),
    BIGQUERY_ROLE: ("roles/owner", "roles/editor", "roles/bigquery.admin", "roles/bigquery.user", BIGQUERY_ROLE),
}
ENABLE_TIMEOUT = 300.0
IMAGE_READER = "roles/artifactregistry.reader"
IMAGE_READ_COVERS = ("roles/owner", "roles/editor", "roles/viewer", IMAGE_READER, "roles/artifactregistry.writer",
                     "roles/artifactregistry.repoAdmin", "roles/artifactregistry.admin")  # fmt: skip
# Artifact Registry's gcr.io repositories: the host names the location, and is the repository's name.
GCR_LOCATIONS = {"gcr.io": "us", "us.gcr.io": "us", "eu.gcr.io": "europe", "asia.gcr.io": "asia"}


def repository_of(image: str) -> tuple[str, str, str] | None:
    """(project, location, repository) of an Artifact Registry image, None for any other registry."""
    host, _, path = image.partition("/")
    parts = path.split("/")
    if host.endswith("-docker.pkg.dev") and len(parts) >= 3:
        return parts[0], host.removesuffix("-docker.pkg.dev"), parts[1]
    if host in GCR_LOCATIONS and len(parts) >= 2:
        return parts[0], GCR_LOCATIONS[host], host
    return None


@dataclasses.dataclass(frozen=True)
class Endpoints:
    """Where the REST calls go; the tests point them at a recorder."""

    resource_manager: str = "https://cloudresourcemanager.googleapis.com"
    service_usage: str = "https://serviceusage.googleapis.com"
    iam: str = "https://iam.googleapis.com"
    artifact_registry: str = "https://artifactregistry.googleapis.com"
    vertex: str = ""  # the Vertex AI API (TensorBoard): "" is the region's own endpoint

    def google(self) -> list[str]:
        """The hosts every `setup` asks."""
        return [self.resource_manager, self.service_usage, self.iam]

    @property
    def local(self) -> bool:
        return self.service_usage.startswith("http://")


@dataclasses.dataclass
class Finding:
    what: str  # what is needed
    present: bool
    fix: str  # the command that makes it present
    granted: bool = False


class Access:
    """The project's APIs and the IAM the run needs, over one authorized session."""

    def __init__(self, project: str, number: str, endpoints: Endpoints, credentials: Any = None):
        self.project, self.number, self.endpoints = project, number, endpoints
        self._session = _session(credentials, endpoints)

    def _call(self, method: str, url: str, body: Any = None) -> Any:
        response = self._session.request(method, url, json=body, timeout=60)
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:300]
            raise CloudError(f"{method} {url.split('?')[0]} answered {response.status_code}: {message}")
        return response.json() if response.content else {}

    # --- APIs ---------------------------------------------------------------------------------

    def services(self, wanted: Iterable[str], grant: bool) -> list[Finding]:
        base = f"{self.endpoints.service_usage}/v1/projects/{self.number}"
        findings, disabled = [], []
        for name in wanted:
            state = self._call("GET", f"{base}/services/{name}").get("state")
            fix = f"gcloud services enable {name} --project {self.project}"
            findings.append(Finding(f"API {name} enabled", state == "ENABLED", fix))
            if state != "ENABLED":
                disabled.append(name)
        if grant and disabled:
            operation = self._call("POST", f"{base}/services:batchEnable", {"serviceIds": disabled})
            self._wait(operation)
            for f in findings:
                f.granted = not f.present
        return findings

    def _wait(self, operation: dict, what: str = "enabling APIs", version: str = "v1") -> dict:
        deadline = time.monotonic() + ENABLE_TIMEOUT
        while not operation.get("done"):
            if time.monotonic() > deadline:
                raise CloudError(f"{what} did not finish in {ENABLE_TIMEOUT:.0f} s: {operation.get('name')}")
            time.sleep(2)
            operation = self._call("GET", f"{self.endpoints.service_usage}/{version}/{operation['name']}")
        if operation.get("error"):
            raise CloudError(f"{what} failed: {operation['error'].get('message')}")
        return operation

    def create_service_agent(self, agent: str) -> Finding:
        """Vertex AI's service agent, created if it does not exist yet (`grant` only: without it, the
        bucket binding that names the agent is what finds out, and says this)."""
        url = f"{self.endpoints.service_usage}/v1beta1/projects/{self.number}/services/{VERTEX_SERVICE}"
        done = self._wait(self._call("POST", f"{url}:generateServiceIdentity"), "creating the Vertex AI service agent",
                          "v1beta1")  # fmt: skip
        email = (done.get("response") or {}).get("email", "")
        expected = agent.removeprefix("serviceAccount:")
        if email != expected:
            raise CloudError(f"Vertex AI's service agent is {email or 'not named'}, not {expected} as expected",
                             "report this: the bucket grants name the expected one")  # fmt: skip
        return Finding(f"the Vertex AI service agent {email}", True, SERVICE_AGENT_FIX.format(project=self.project))

    # --- the pipeline account's project roles -------------------------------------------------

    def project_roles(self, account: str, roles: Iterable[str], grant: bool) -> list[Finding]:
        url = f"{self.endpoints.resource_manager}/v3/projects/{self.project}"
        policy = self._call("POST", f"{url}:getIamPolicy", {"options": {"requestedPolicyVersion": 3}})
        held = {b["role"] for b in policy.get("bindings", []) if account in b.get("members", [])}
        findings = []
        for role in roles:
            fix = f"gcloud projects add-iam-policy-binding {self.project} --member={account} --role={role}"
            findings.append(Finding(f"{role} for {account} on project {self.project}", bool(held & set(COVERS[role])),
                                    fix))  # fmt: skip
        missing = [f for f in findings if not f.present]
        if grant and missing:
            for f in missing:
                _add_member(policy, f.what.split()[0], account)
                f.granted = True
            self._call("POST", f"{url}:setIamPolicy", {"policy": policy})
        return findings

    # --- images in another project's Artifact Registry -----------------------------------------

    def image_readers(self, image: str, agents: Iterable[str], grant: bool) -> list[Finding]:
        """The agents that pull `image` may read its repository, when it is in another project."""
        where = repository_of(image)
        if where is None or where[0] == self.project:
            return []
        project, location, repository = where
        url = f"{self.endpoints.artifact_registry}/v1/projects/{project}/locations/{location}/repositories/{repository}"
        policy = self._call("GET", f"{url}:getIamPolicy?options.requestedPolicyVersion=3")
        findings: dict[str, Finding] = {}
        for agent in agents:
            held = any(b["role"] in IMAGE_READ_COVERS and agent in b.get("members", []) and not b.get("condition")
                       for b in policy.get("bindings", []))  # fmt: skip
            fix = (f"gcloud artifacts repositories add-iam-policy-binding {repository} --project={project} "
                   f"--location={location} --member={agent} --role={IMAGE_READER}")  # fmt: skip
            what = f"{IMAGE_READER} for {agent} on {location}-docker.pkg.dev/{project}/{repository} (it pulls {image})"
            findings[agent] = Finding(what, held, fix)
        missing = {agent: f for agent, f in findings.items() if not f.present}
        if grant and missing:
            for agent, f in missing.items():
                _add_member(policy, IMAGE_READER, agent)
                f.granted = True
            self._call("POST", f"{url}:setIamPolicy", {"policy": policy})
        return list(findings.values())

    # --- the caller, and the account itself, may act as the pipeline account -------------------

    def act_as(self, account: str, caller: str, identity: str, grant: bool) -> Finding:
        """`caller` (default: `identity`, the credentials' own) may act as `account` (submit runs as it)."""
        email = account.removeprefix("serviceAccount:")
        who = caller or identity
        if not caller or caller == identity:  # asked as the caller: the permission it really has
            url = f"{self._account_url(email)}:testIamPermissions"
            present = ACT_AS in self._call("POST", url, {"permissions": [ACT_AS]}).get("permissions", [])
            label = f"{who or 'these credentials'} (checked as them)"
        else:
            present, label = self._bound(caller, email), f"{caller} (from the policies)"
        member = who or "user:YOU@example.com"
        finding = Finding(f"{ACT_AS_ROLE} for {label} on {email} (to submit runs as it)", present,
                          self._act_as_fix(email, member))  # fmt: skip
        if grant and not present:
            if not who:
                raise CloudError("cannot tell who submits the runs", "pass --caller user:YOU@example.com")
            self._grant_act_as(email, who)
            finding.granted = True
        return finding

    def self_act_as(self, account: str, grant: bool) -> Finding:
        """The pipeline's account may act as itself: its training job runs as it."""
        email = account.removeprefix("serviceAccount:")
        member = f"serviceAccount:{email}"
        finding = Finding(f"{ACT_AS_ROLE} for {email} on itself (the training job runs as it)",
                          self._bound(member, email), self._act_as_fix(email, member))  # fmt: skip
        if grant and not finding.present:
            self._grant_act_as(email, member)
            finding.granted = True
        return finding

    def _account_url(self, email: str) -> str:
        # `-` lets IAM find the account's project: it may live in another project than the runs.
        return f"{self.endpoints.iam}/v1/projects/-/serviceAccounts/{email}"

    @staticmethod
    def _act_as_fix(email: str, member: str) -> str:
        return f"gcloud iam service-accounts add-iam-policy-binding {email} --member={member} --role={ACT_AS_ROLE}"

    def _bound(self, member: str, email: str) -> bool:
        """`member` holds a role with actAs on the project or on the account itself (direct grants only)."""
        project = self._call("POST", f"{self.endpoints.resource_manager}/v3/projects/{self.project}:getIamPolicy",
                             {"options": {"requestedPolicyVersion": 3}})  # fmt: skip
        own = self._call("POST", f"{self._account_url(email)}:getIamPolicy", {"options": {"requestedPolicyVersion": 3}})
        bindings = project.get("bindings", []) + own.get("bindings", [])
        return any(b["role"] in ACT_AS_COVERS and member in b.get("members", []) and not b.get("condition")
                   for b in bindings)  # fmt: skip

    def _grant_act_as(self, email: str, member: str) -> None:
        url = self._account_url(email)
        policy = self._call("POST", f"{url}:getIamPolicy", {"options": {"requestedPolicyVersion": 3}})
        _add_member(policy, ACT_AS_ROLE, member)
        self._call("POST", f"{url}:setIamPolicy", {"policy": policy})


def _add_member(policy: dict, role: str, member: str) -> None:
    bindings = policy.setdefault("bindings", [])
    binding = next((b for b in bindings if b["role"] == role and not b.get("condition")), None)
    if binding is None:
        bindings.append({"role": role, "members": [member]})
    elif member not in binding["members"]:
        binding["members"].append(member)


def _session(credentials: Any, endpoints: Endpoints) -> Any:
    if endpoints.local:  # a local recorder: no Google credentials
        import requests

        return requests.Session()
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    if credentials is None:
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    return AuthorizedSession(credentials)


def caller_identity(credentials: Any = None) -> str:
    """`user:EMAIL` or `serviceAccount:EMAIL` of the application default credentials, or "" if unknown."""
    if credentials is None:
        try:
            import google.auth

            credentials, _ = google.auth.default()
        except Exception:  # no credentials at all: the caller names itself with --caller
            return ""
    email = getattr(credentials, "service_account_email", None)
    if email and "@" in email:
        return f"serviceAccount:{email}"
    account = getattr(credentials, "account", None)  # gcloud's user credentials carry it
    return f"user:{account}" if account and "@" in account else ""
