"""`taxifare setup` against the GCS emulator (bucket + bucket IAM) and a recorded Resource Manager."""

from __future__ import annotations

import os

import pytest
from cloud_fakes import Capture, gcs_emulator

from taxifare import cli
from taxifare.cloud import setup
from taxifare.errors import UsageError
from trainer import gcs

AGENT = "serviceAccount:service-123@gcp-sa-aiplatform.iam.gserviceaccount.com"
COMPUTE = "serviceAccount:123-compute@developer.gserviceaccount.com"


@pytest.fixture
def emulator(monkeypatch):
    with gcs_emulator(monkeypatch) as server:
        yield server


def _bindings(bucket: str) -> dict[str, set[str]]:
    policy = gcs.client().bucket(bucket).get_iam_policy(requested_policy_version=3)
    return {b["role"]: set(b["members"]) for b in policy.bindings}


def test_setup_creates_the_bucket_and_grants_bucket_level_access_once(emulator):
    first = setup.setup("my-proj", "us-central1", number="123")
    assert first.bucket == "my-proj"  # the lab's default: the project id
    assert any("created bucket gs://my-proj" in c for c in first.changed)
    roles = _bindings("my-proj")
    for role in setup.BUCKET_ROLES:
        assert {AGENT, COMPUTE} <= roles[role]
    assert all(r.startswith("roles/storage.") for r in roles)  # nothing project-wide

    again = setup.setup("my-proj", "us-central1", number="123")
    assert again.changed == []
    assert "bucket gs://my-proj" in again.unchanged[0]
    assert len(again.unchanged) == 1 + 2 * len(setup.BUCKET_ROLES)
    assert _bindings("my-proj") == roles


def test_setup_keeps_existing_members_and_adds_the_given_account(emulator):
    bucket = gcs.client().create_bucket("shared-data")
    policy = bucket.get_iam_policy(requested_policy_version=3)
    policy.bindings.append({"role": "roles/storage.objectUser", "members": {"user:ann@example.com"}})
    bucket.set_iam_policy(policy)

    report = setup.setup("my-proj", "us", bucket="gs://shared-data", service_account="runner@p.iam.gserviceaccount.com",
                         number="123")  # fmt: skip
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


def test_setup_command_prints_changes_then_nothing_to_do(emulator, monkeypatch, capsys):
    monkeypatch.setattr(setup, "project_number", lambda project: "123")
    assert cli.main(["setup", "--project", "proj-1", "--region", "europe-west4"]) == 0
    out = capsys.readouterr().out
    assert "changed: created bucket gs://proj-1 in europe-west4" in out
    assert cli.main(["setup", "--project", "proj-1", "--region", "europe-west4"]) == 0
    out = capsys.readouterr().out
    assert "changed:" not in out and "already in place: bucket gs://proj-1" in out


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
