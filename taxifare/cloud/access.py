"""What a first run needs beyond the bucket, checked (and with `grant`, granted) before it dies of it.

1. The APIs enabled in the project (Service Usage): Vertex AI, Cloud Storage, Artifact Registry
   (the image), Resource Manager and IAM (these checks), and BigQuery when asked for.
2. The pipeline's service account may use Vertex AI: project-level `roles/aiplatform.user`, and
   `roles/bigquery.jobUser` when BigQuery is the source. Roles that include them (Owner,
   Editor, Vertex AI Administrator) count as present; none of them is ever granted.
3. The caller may act as that account (`iam.serviceAccounts.actAs`): checked with
   testIamPermissions, granted as `roles/iam.serviceAccountUser` on that one service
   account's own policy, never project-wide.

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
# Roles that already hold what PIPELINE_ROLE / BIGQUERY_ROLE give (never granted by us).
COVERS = {
    PIPELINE_ROLE: ("roles/owner", "roles/editor", "roles/aiplatform.admin", PIPELINE_ROLE),
    BIGQUERY_ROLE: ("roles/owner", "roles/editor", "roles/bigquery.admin", "roles/bigquery.user", BIGQUERY_ROLE),
}
ENABLE_TIMEOUT = 300.0


@dataclasses.dataclass(frozen=True)
class Endpoints:
    """Where the REST calls go; the tests point them at a recorder."""

    resource_manager: str = "https://cloudresourcemanager.googleapis.com"
    service_usage: str = "https://serviceusage.googleapis.com"
    iam: str = "https://iam.googleapis.com"

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

    def _wait(self, operation: dict) -> None:
        deadline = time.monotonic() + ENABLE_TIMEOUT
        while not operation.get("done"):
            if time.monotonic() > deadline:
                raise CloudError(f"enabling APIs did not finish in {ENABLE_TIMEOUT:.0f} s: {operation.get('name')}")
            time.sleep(2)
            operation = self._call("GET", f"{self.endpoints.service_usage}/v1/{operation['name']}")
        if operation.get("error"):
            raise CloudError(f"enabling APIs failed: {operation['error'].get('message')}")

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

    # --- the caller may act as the pipeline account --------------------------------------------

    def act_as(self, account: str, caller: str, grant: bool) -> Finding:
        email = account.removeprefix("serviceAccount:")
        url = f"{self.endpoints.iam}/v1/projects/{self.project}/serviceAccounts/{email}"
        held = self._call("POST", f"{url}:testIamPermissions", {"permissions": [ACT_AS]}).get("permissions", [])
        who = caller or "YOU (user:you@example.com)"
        fix = f"gcloud iam service-accounts add-iam-policy-binding {email} --member={who} --role={ACT_AS_ROLE}"
        finding = Finding(f"{ACT_AS_ROLE} for {who} on {email} (to submit runs as it)", ACT_AS in held, fix)
        if grant and not finding.present:
            if not caller:
                raise CloudError("cannot tell who is running this", "pass --caller user:you@example.com")
            policy = self._call("POST", f"{url}:getIamPolicy", {"options": {"requestedPolicyVersion": 3}})
            _add_member(policy, ACT_AS_ROLE, caller)
            self._call("POST", f"{url}:setIamPolicy", {"policy": policy})
            finding.granted = True
        return finding


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
