"""`taxifare setup` against the GCS emulator (bucket + bucket IAM) and a recorded Resource Manager."""

from __future__ import annotations

import os

import pytest
from cloud_fakes import Capture, gcs_emulator

from taxifare import cli
from taxifare.cloud import access, setup
from taxifare.errors import CloudError, UsageError
from trainer import gcs

AGENT = "serviceAccount:service-123@gcp-sa-aiplatform.iam.gserviceaccount.com"
COMPUTE = "serviceAccount:123-compute@developer.gserviceaccount.com"


class FakeGoogle:
    """Resource Manager, Service Usage and IAM as far as `taxifare setup` uses them, keeping their state
    (policies with etags, API states) so the tests can assert both the requests and their effect."""

    def __init__(self, server: Capture, project: str = "my-proj", number: str = "123"):
        self.server, self.project, self.number = server, project, number
        self.services = dict.fromkeys(access.SERVICES, "ENABLED") | {access.BIGQUERY_SERVICE: "DISABLED"}
        self.project_policy: dict = {"bindings": [{"role": "roles/owner", "members": ["user:boss@example.com"]}],
                                     "etag": "p1"}  # fmt: skip
        self.account_policies: dict[str, dict] = {}
        server.route("GET", rf"/v3/projects/{project}", (200, {"name": f"projects/{number}", "projectId": project}))
        server.route("GET", rf"/v1/projects/{number}/services/([\w.]+)", self.service)
        server.route("POST", rf"/v1/projects/{number}/services:batchEnable", self.enable)
        server.route("POST", rf"/v3/projects/{project}:getIamPolicy", lambda req, m: (200, self.project_policy))
        server.route("POST", rf"/v3/projects/{project}:setIamPolicy", self.set_project_policy)
        server.route("POST", rf"/v1beta1/projects/{number}/services/aiplatform.googleapis.com:generateServiceIdentity",
                     self.generate_agent)  # fmt: skip
        self.agent_created = False
        sa = r"/v1/projects/-/serviceAccounts/([^/:]+)"
        server.route("POST", sa + ":testIamPermissions", self.test_permissions)
        server.route("POST", sa + ":getIamPolicy", lambda req, m: (200, self._account(m.group(1))))
        server.route("POST", sa + ":setIamPolicy", self.set_account_policy)

    def service(self, req, m):
        return 200, {"name": f"projects/{self.number}/services/{m.group(1)}", "state": self.services[m.group(1)]}

    def generate_agent(self, req, m):
        self.agent_created = True
        email = f"service-{self.number}@gcp-sa-aiplatform.iam.gserviceaccount.com"
        return 200, {"name": "operations/si-1", "done": True, "response": {"email": email, "uniqueId": "1"}}

    def enable(self, req, m):
        for name in req.json()["serviceIds"]:
            self.services[name] = "ENABLED"
        return 200, {"name": "operations/acf.p2-123", "done": True, "response": {}}

    @staticmethod
    def _set(current: dict, given: dict) -> tuple[int, dict]:
        if given.get("etag") != current.get("etag"):
            return 409, {
                "error": {"code": 409, "message": "etag mismatch: concurrent policy change", "status": "ABORTED"}
            }
        current.clear()
        current.update(given, etag=given["etag"] + "+")
        return 200, current

    def set_project_policy(self, req, m):
        return self._set(self.project_policy, req.json()["policy"])

    def _account(self, email: str) -> dict:
        return self.account_policies.setdefault(email, {"etag": "a1"})

    def set_account_policy(self, req, m):
        return self._set(self._account(m.group(1)), req.json()["policy"])

    def test_permissions(self, req, m):
        users = [b for b in self._account(m.group(1)).get("bindings", []) if b["role"] == access.ACT_AS_ROLE]
        allowed = any(CALLER in b["members"] for b in users)
        return 200, {"permissions": [access.ACT_AS]} if allowed else {}

    def roles_of(self, member: str) -> set[str]:
        return {b["role"] for b in self.project_policy["bindings"] if member in b["members"]}


CALLER = "user:dev@example.com"


@pytest.fixture
def emulator(monkeypatch):
    with gcs_emulator(monkeypatch) as server:
        yield server


@pytest.fixture
def google(emulator):
    with Capture() as server:
        yield FakeGoogle(server)


def _setup(google: FakeGoogle, **kwargs):
    endpoints = access.Endpoints(google.server.url, google.server.url, google.server.url)
    return setup.setup(google.project, kwargs.pop("region", "us-central1"), endpoints=endpoints, caller=CALLER,
                       **kwargs)  # fmt: skip


def _bindings(bucket: str) -> dict[str, set[str]]:
    policy = gcs.client().bucket(bucket).get_iam_policy(requested_policy_version=3)
    return {b["role"]: set(b["members"]) for b in policy.bindings}


def test_setup_creates_the_bucket_and_grants_bucket_level_access_once(google):
    first = _setup(google)
    assert first.bucket == "my-proj"  # the lab's default: the project id
    assert any("created bucket gs://my-proj" in c for c in first.changed)
    roles = _bindings("my-proj")
    for role in setup.BUCKET_ROLES:
        assert {AGENT, COMPUTE} <= roles[role]
    assert all(r.startswith("roles/storage.") for r in roles)  # nothing project-wide

    again = _setup(google)
    assert again.changed == []
    assert "bucket gs://my-proj" in again.unchanged[0]
    assert len(again.unchanged) == 1 + 2 * len(setup.BUCKET_ROLES)
    assert _bindings("my-proj") == roles


def test_setup_keeps_existing_members_and_adds_the_given_account(google):
    bucket = gcs.client().create_bucket("shared-data")
    policy = bucket.get_iam_policy(requested_policy_version=3)
    policy.bindings.append({"role": "roles/storage.objectUser", "members": {"user:ann@example.com"}})
    bucket.set_iam_policy(policy)

    report = _setup(google, region="us", bucket="gs://shared-data", service_account="runner@p.iam.gserviceaccount.com")
    roles = _bindings("shared-data")
    runner = "serviceAccount:runner@p.iam.gserviceaccount.com"
    assert roles["roles/storage.objectUser"] == {"user:ann@example.com", AGENT, runner}
    assert COMPUTE not in roles["roles/storage.legacyBucketReader"]
    assert any("left as it is" in u or u == "bucket gs://shared-data" for u in report.unchanged)
    assert len(report.changed) == 2 * len(setup.BUCKET_ROLES)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bucket": "Bad_Bucket!"}, "not a valid bucket name"),
        ({"region": "Central US"}, "not a region"),
    ],
)
def test_setup_rejects_bad_settings_before_calling_the_cloud(kwargs, message):
    with pytest.raises(UsageError, match=message):
        setup.setup("my-proj", **{"region": "us-central1", **kwargs}, number="1", storage_client=object())


def test_setup_command_prints_changes_then_nothing_to_do(google, capsys):
    google.project_policy["bindings"].append({"role": "roles/editor", "members": [COMPUTE]})
    google.account_policies["123-compute@developer.gserviceaccount.com"] = {
        "etag": "a1", "bindings": [{"role": access.ACT_AS_ROLE, "members": [CALLER]}]
    }  # fmt: skip
    argv = ["setup", "--project", "my-proj", "--region", "europe-west4", "--api-endpoint", google.server.url,
            "--caller", CALLER]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "changed: created bucket gs://my-proj in europe-west4" in out
    assert "already in place: roles/aiplatform.user for serviceAccount:123-compute" in out  # through roles/editor
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "changed:" not in out and "already in place: bucket gs://my-proj" in out


def test_without_grant_it_reports_what_is_missing_with_the_fix_and_changes_nothing_project_wide(google, capsys):
    argv = ["setup", "--project", "my-proj", "--region", "us-central1", "--api-endpoint", google.server.url,
            "--service-account", "runner@my-proj.iam.gserviceaccount.com", "--caller", CALLER]  # fmt: skip
    assert cli.main(argv) == 1
    out = capsys.readouterr().out
    runner = "serviceAccount:runner@my-proj.iam.gserviceaccount.com"
    assert f"missing: roles/aiplatform.user for {runner} on project my-proj" in out
    assert (f"fix: gcloud projects add-iam-policy-binding my-proj --member={runner} --role=roles/aiplatform.user"
            in out)  # fmt: skip
    assert ("fix: gcloud iam service-accounts add-iam-policy-binding runner@my-proj.iam.gserviceaccount.com "
            f"--member={CALLER} --role=roles/iam.serviceAccountUser") in out  # fmt: skip
    assert "rerun with --grant" in out
    assert not google.server.find("POST", r".*:setIamPolicy$") and not google.server.find("POST", r".*batchEnable$")


def test_grant_enables_apis_and_grants_exactly_the_missing_roles_once(google, capsys):
    google.services["iam.googleapis.com"] = "DISABLED"
    argv = ["setup", "--project", "my-proj", "--region", "us-central1", "--api-endpoint", google.server.url,
            "--service-account", "runner@my-proj.iam.gserviceaccount.com", "--caller", CALLER, "--bigquery",
            "--grant"]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().out
    (enable,) = google.server.find("POST", r".*/services:batchEnable$")
    assert sorted(enable.json()["serviceIds"]) == ["bigquery.googleapis.com", "iam.googleapis.com"]
    runner = "serviceAccount:runner@my-proj.iam.gserviceaccount.com"
    assert google.roles_of(runner) == {"roles/aiplatform.user", "roles/bigquery.jobUser"}
    assert google.roles_of("user:boss@example.com") == {"roles/owner"}  # kept
    (project_set,) = google.server.find("POST", r"/v3/projects/my-proj:setIamPolicy$")
    assert project_set.json()["policy"]["etag"] == "p1"  # read-modify-write, guarded
    sa_policy = google.account_policies["runner@my-proj.iam.gserviceaccount.com"]
    # The caller may submit as it, and it may start the training job that runs as itself.
    assert sa_policy["bindings"] == [{"role": "roles/iam.serviceAccountUser", "members": [CALLER, runner]}]
    assert google.agent_created  # before the bucket binding that names the agent
    granted = {r.json()["policy"]["bindings"][-1]["role"] for r in google.server.find("POST", r".*:setIamPolicy$")}
    assert granted <= {"roles/aiplatform.user", "roles/bigquery.jobUser", "roles/iam.serviceAccountUser"}
    out = capsys.readouterr().out
    assert "granted: roles/aiplatform.user" in out and "granted: API iam.googleapis.com enabled" in out
    google.server.clear()
    assert cli.main(argv) == 0  # nothing left to do
    assert not google.server.find("POST", r".*:setIamPolicy$") and not google.server.find("POST", r".*batchEnable$")


def test_the_pipeline_account_needs_act_as_on_itself_for_its_training_job(google, capsys):
    runner = "runner@my-proj.iam.gserviceaccount.com"
    google.project_policy["bindings"].append({"role": "roles/aiplatform.user", "members": [f"serviceAccount:{runner}"]})
    google.account_policies[runner] = {"etag": "a1", "bindings": [{"role": access.ACT_AS_ROLE, "members": [CALLER]}]}
    argv = ["setup", "--project", "my-proj", "--region", "us-central1", "--api-endpoint", google.server.url,
            "--service-account", runner, "--caller", CALLER]  # fmt: skip
    assert cli.main(argv) == 1
    out = capsys.readouterr().out
    assert f"missing: roles/iam.serviceAccountUser for {runner} on itself (the training job runs as it)" in out
    assert (f"fix: gcloud iam service-accounts add-iam-policy-binding {runner} --member=serviceAccount:{runner} "
            "--role=roles/iam.serviceAccountUser") in out  # fmt: skip
    assert "1 thing(s) the first run needs are missing" in out
    # Project-wide Editor includes actAs: then nothing is missing.
    google.project_policy["bindings"].append({"role": "roles/editor", "members": [f"serviceAccount:{runner}"]})
    assert cli.main(argv) == 0, capsys.readouterr().out


def test_without_caller_act_as_is_asked_as_the_credentials_and_the_fix_is_runnable(google, capsys):
    """testIamPermissions answers for whoever calls (groups and custom roles included): with no --caller
    the check is the credentials' own; a fix that needs a member names a placeholder to replace."""
    argv = ["setup", "--project", "my-proj", "--region", "us-central1", "--api-endpoint", google.server.url]
    assert cli.main(argv) == 1
    out = capsys.readouterr().out
    assert google.server.find("POST", r".*:testIamPermissions$")
    assert "missing: roles/iam.serviceAccountUser for these credentials (checked as them)" in out
    assert "--member=user:YOU@example.com --role=roles/iam.serviceAccountUser" in out
    assert cli.main([*argv, "--grant"]) == 1
    assert "cannot tell who submits the runs" in capsys.readouterr().err
    # With --caller naming someone, their grants are read from the policies instead.
    google.server.clear()
    google.account_policies["123-compute@developer.gserviceaccount.com"] = {
        "etag": "a1", "bindings": [{"role": access.ACT_AS_ROLE, "members": [CALLER, COMPUTE]}]
    }  # fmt: skip
    google.project_policy["bindings"].append({"role": "roles/aiplatform.user", "members": [COMPUTE]})
    assert cli.main([*argv, "--caller", CALLER]) == 0, capsys.readouterr().out
    assert not google.server.find("POST", r".*:testIamPermissions$")


def _gcs_refusing_the_agent(refusals: int | None, unknown: str = AGENT) -> tuple[Capture, list]:
    """A recorded GCS that refuses the binding naming `unknown` `refusals` times (None: always)."""
    api = Capture()
    api.route("GET", r"/storage/v1/b/my-proj$", (200, {"name": "my-proj", "location": "US-CENTRAL1"}))
    api.route("GET", r"/storage/v1/b/my-proj/iam", (200, {"bindings": [], "etag": "CAE=", "version": 3}))
    message = f"Service account {unknown.removeprefix('serviceAccount:')} does not exist."
    puts: list = []

    def put(req, m):
        puts.append(req.json())
        if refusals is None or len(puts) <= refusals:
            return 400, {"error": {"code": 400, "message": message, "errors": [{"reason": "invalid"}]}}
        return 200, {**req.json(), "etag": "CAI="}

    api.route("PUT", r"/storage/v1/b/my-proj/iam", put)
    return api, puts


def _storage_client(api: Capture):
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="my-proj", credentials=AnonymousCredentials(),
                          client_options=ClientOptions(api_endpoint=api.url))  # fmt: skip


def test_a_new_projects_missing_vertex_agent_is_named_with_the_fix(google, capsys):
    """GCS refuses a bucket binding naming an agent that does not exist yet (400 "Service account ...
    does not exist."); the real storage client against a recorded GCS that answers so."""
    api, _ = _gcs_refusing_the_agent(refusals=None)
    with api, pytest.raises(CloudError) as err:
        _setup(google, storage_client=_storage_client(api))
    assert f"the Vertex AI service agent {AGENT.removeprefix('serviceAccount:')} does not exist yet" in str(err.value)
    assert "rerun with --grant" in err.value.fix
    assert "gcloud beta services identity create --service=aiplatform.googleapis.com --project=my-proj" in err.value.fix
    assert not google.agent_created  # never without --grant


def test_a_just_created_vertex_agent_is_waited_for_until_cloud_storage_knows_it(google):
    """Creating the agent is not the end of it: Cloud Storage refuses bindings naming it for a while.
    --grant writes the same policy again after doubling pauses, and the grant lands."""
    api, puts = _gcs_refusing_the_agent(refusals=3)
    pauses: list[float] = []
    with api:
        report = _setup(google, storage_client=_storage_client(api), grant=True, sleep=pauses.append)
    assert google.agent_created and pauses == [2.0, 4.0, 8.0] and len(puts) == 4
    assert all(p == puts[0] for p in puts)  # the same policy each time (its etag too): nothing lost or doubled
    assert f"granted roles/storage.objectUser to {AGENT} on gs://my-proj" in report.changed


def test_an_agent_cloud_storage_never_learns_of_ends_the_wait_with_what_to_do(google):
    api, puts = _gcs_refusing_the_agent(refusals=None)
    pauses: list[float] = []
    with api, pytest.raises(CloudError) as err:
        _setup(google, storage_client=_storage_client(api), grant=True, sleep=pauses.append)
    assert sum(pauses) == setup.AGENT_PATIENCE_S and pauses[:3] == [2.0, 4.0, 8.0]
    assert "was created, but Cloud Storage still does not know it after 120 s" in str(err.value)
    assert "wait a minute and rerun the same `taxifare setup` command" in err.value.fix
    assert len(puts) == len(pauses) + 1


def test_a_mistyped_service_account_is_not_waited_for_as_if_it_were_the_agent(google, capsys):
    """GCS refuses an unknown --service-account with the same words: that refusal is said at once, naming it."""
    from google.api_core import exceptions

    typo = "runer@my-proj.iam.gserviceaccount.com"
    api, puts = _gcs_refusing_the_agent(refusals=None, unknown=f"serviceAccount:{typo}")
    pauses: list[float] = []
    with api, pytest.raises(exceptions.BadRequest, match=f"Service account {typo} does not exist") as err:
        _setup(google, storage_client=_storage_client(api), grant=True, service_account=typo, sleep=pauses.append)
    assert pauses == [] and len(puts) == 1
    from taxifare.cli import targets

    assert typo in (targets.service_error(err.value) or "")  # what the CLI prints, one line


def test_without_a_service_account_nothing_needs_to_act_as_itself(google, capsys):
    """The training job then runs as Vertex AI's Custom Code Service Agent: no self-actAs is asked for."""
    argv = ["setup", "--project", "my-proj", "--region", "us-central1", "--api-endpoint", google.server.url,
            "--caller", CALLER, "--grant"]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr()
    assert "on itself" not in capsys.readouterr().out
    compute = google.account_policies["123-compute@developer.gserviceaccount.com"]
    assert [b["members"] for b in compute["bindings"] if b["role"] == access.ACT_AS_ROLE] == [[CALLER]]


def test_a_concurrent_policy_change_fails_the_grant_instead_of_being_lost(google, capsys, monkeypatch):
    real = google.set_project_policy

    def someone_else_first(req, m):
        google.project_policy["etag"] = "changed-meanwhile"
        return real(req, m)

    google.server.route("POST", r"/v3/projects/my-proj:setIamPolicy", someone_else_first)
    argv = ["setup", "--project", "my-proj", "--region", "us-central1", "--api-endpoint", google.server.url,
            "--caller", CALLER, "--grant"]  # fmt: skip
    assert cli.main(argv) == 1
    assert "answered 409: etag mismatch" in capsys.readouterr().err


def test_project_number_comes_from_resource_manager():
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    with Capture() as server:
        server.route("GET", r"/v3/projects/my-proj", (200, {"name": "projects/987654", "projectId": "my-proj"}))
        number = setup.project_number("my-proj", ClientOptions(api_endpoint=server.url), AnonymousCredentials())
    assert number == "987654"
    assert [r.path for r in server.requests] == ["/v3/projects/my-proj"]


@pytest.mark.gcp
def test_setup_against_a_real_project():
    project, bucket = os.environ.get("TAXIFARE_TEST_PROJECT"), os.environ.get("TAXIFARE_TEST_BUCKET")
    if not (project and bucket):
        pytest.skip("set TAXIFARE_TEST_PROJECT and TAXIFARE_TEST_BUCKET (and credentials) to run")
    report = setup.setup(project, "us-central1", bucket=bucket)
    again = setup.setup(project, "us-central1", bucket=bucket)
    assert again.changed == [] and report.bucket == bucket


SHARED_IMAGE = "us-docker.pkg.dev/shared-images/ml/taxifare:1"
CC_AGENT = "serviceAccount:service-123@gcp-sa-aiplatform-cc.iam.gserviceaccount.com"


def test_an_image_in_another_projects_registry_must_be_readable_by_the_agents_that_pull_it(google, capsys):
    """Vertex AI pulls images as its own agents (never as the pipeline's account): an image in another project's
    Artifact Registry needs roles/artifactregistry.reader for them on that repository, or the first run fails."""
    repository = {"etag": "r1", "bindings": [{"role": "roles/artifactregistry.reader", "members": [AGENT]}]}
    repo_path = r"/v1/projects/shared-images/locations/us/repositories/ml"
    google.server.route("GET", repo_path + ":getIamPolicy", lambda req, m: (200, repository))
    google.server.route(
        "POST", repo_path + ":setIamPolicy", lambda req, m: FakeGoogle._set(repository, req.json()["policy"])
    )
    google.project_policy["bindings"].append({"role": "roles/editor", "members": [COMPUTE]})
    google.account_policies["123-compute@developer.gserviceaccount.com"] = {
        "etag": "a1", "bindings": [{"role": access.ACT_AS_ROLE, "members": [CALLER]}]
    }  # fmt: skip
    argv = ["setup", "--project", "my-proj", "--region", "us-central1", "--api-endpoint", google.server.url,
            "--caller", CALLER, "--image", SHARED_IMAGE]  # fmt: skip
    assert cli.main(argv) == 1
    out = capsys.readouterr().out
    assert f"already in place: roles/artifactregistry.reader for {AGENT} on us-docker.pkg.dev/shared-images/ml" in out
    assert f"missing: roles/artifactregistry.reader for {CC_AGENT} on us-docker.pkg.dev/shared-images/ml" in out
    assert ("fix: gcloud artifacts repositories add-iam-policy-binding ml --project=shared-images --location=us "
            f"--member={CC_AGENT} --role=roles/artifactregistry.reader") in out  # fmt: skip
    assert not google.server.find("POST", repo_path + ":setIamPolicy")
    assert cli.main([*argv, "--grant"]) == 0, capsys.readouterr().out
    (granted,) = google.server.find("POST", repo_path + ":setIamPolicy")
    assert granted.json()["policy"]["etag"] == "r1"  # read-modify-write, guarded
    assert repository["bindings"] == [{"role": "roles/artifactregistry.reader", "members": [AGENT, CC_AGENT]}]
    # An image in the run's own project: the agents read it through their project roles; nothing is asked.
    google.server.clear()
    argv[-1] = "europe-west4-docker.pkg.dev/my-proj/taxifare/taxifare:1"
    assert cli.main(argv) == 0
    assert not google.server.find(None, r"/repositories/")


def test_setup_creates_a_vertex_ai_tensorboard_when_asked_and_finds_it_after(google, capsys):
    boards: list[dict] = []
    parent = "/v1/projects/my-proj/locations/us-central1/tensorboards"

    def create(req, m):
        boards.append({**req.json(), "name": f"projects/my-proj/locations/us-central1/tensorboards/{77 + len(boards)}"})
        kind = "type.googleapis.com/google.cloud.aiplatform.v1.Tensorboard"
        return 200, {"name": "operations/tb", "done": True, "response": {"@type": kind, **boards[-1]}}

    google.server.route("GET", parent, lambda req, m: (200, {"tensorboards": [
        b for b in boards if f'"{b["displayName"]}"' in req.query.get("filter", [""])[0]]}))  # fmt: skip
    google.server.route("POST", parent, create)
    google.project_policy["bindings"].append({"role": "roles/editor", "members": [COMPUTE]})
    google.account_policies["123-compute@developer.gserviceaccount.com"] = {
        "etag": "a1", "bindings": [{"role": access.ACT_AS_ROLE, "members": [CALLER]}]
    }  # fmt: skip
    argv = ["setup", "--project", "my-proj", "--region", "us-central1", "--api-endpoint", google.server.url,
            "--caller", CALLER, "--tensorboard", "taxifare"]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    name = "projects/my-proj/locations/us-central1/tensorboards/77"
    assert f"changed: created Vertex AI TensorBoard taxifare ({name})" in out
    assert f"tensorboard: {name} (taxifare submit --tensorboard 77)" in out
    assert boards == [{"displayName": "taxifare", "name": name}]
    assert cli.main(argv) == 0  # found, not made again
    assert f"already in place: Vertex AI TensorBoard taxifare ({name})" in capsys.readouterr().out
    assert len(boards) == 1
    # A TensorBoard lives in a Vertex AI region, not a multi-region.
    argv[argv.index("us-central1")] = "us"
    assert cli.main(argv) == 2 and "not a region such as us-central1" in capsys.readouterr().err
