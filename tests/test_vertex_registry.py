"""The Vertex AI deploy target against a recording server speaking Vertex's REST API.

A small fake keeps the state Vertex would (model versions, aliases, the endpoint's
deployed models and traffic) so the tests can assert both what was sent and in what order.
Nothing here proves Vertex accepts the requests: that is the opt-in gcp test's job.
"""

from __future__ import annotations

import json
import os

import pytest
from cloud_fakes import Capture, gcs_emulator

from components import deploy, evaluate
from registry import vertex
from trainer import gcs

PARENT = "projects/my-proj/locations/us-central1"
MODEL = f"{PARENT}/models/taxifare"
V1 = "type.googleapis.com/google.cloud.aiplatform.v1."


class FakeVertex:
    def __init__(self, server: Capture):
        self.server = server
        self.versions: list[dict] = []
        self.aliases: dict[str, str] = {}
        self.endpoints: dict[str, dict] = {}
        self.fail_deploy = False
        self.fail_undeploy = False
        p = "/v1/" + PARENT
        server.route("GET", p + r"/models/taxifare(?:@(\w+))?", self.get_model)
        server.route("POST", p + r"/models:upload", self.upload)
        server.route("POST", p + r"/models/taxifare@(\w+):mergeVersionAliases", self.merge)
        server.route("GET", p + r"/endpoints", self.list_endpoints)
        server.route("POST", p + r"/endpoints", self.create_endpoint)
        server.route("GET", p + r"/endpoints/(\w+)", lambda req, m: (200, self.endpoints[m.group(1)]))
        server.route("POST", p + r"/endpoints/(\w+):deployModel", self.deploy)
        server.route("POST", p + r"/endpoints/(\w+):undeployModel", self.undeploy)

    @staticmethod
    def done(kind: str, response: dict) -> tuple[int, dict]:
        return 200, {"name": f"{PARENT}/operations/1", "done": True, "response": {"@type": V1 + kind, **response}}

    def get_model(self, req, m):
        if not self.versions:
            return 404, {"error": {"code": 404, "message": "model not found", "status": "NOT_FOUND"}}
        ref = m.group(1) or self.aliases.get("default", self.versions[-1]["versionId"])
        version = self.aliases.get(ref, ref)
        found = [v for v in self.versions if v["versionId"] == version]
        if not found:
            return 404, {"error": {"code": 404, "message": f"no version {ref}", "status": "NOT_FOUND"}}
        return 200, {**found[0], "versionAliases": [a for a, v in self.aliases.items() if v == version]}

    def upload(self, req, m):
        body = req.json()
        version = str(len(self.versions) + 1)
        self.versions.append({**body["model"], "name": MODEL, "versionId": version})
        return self.done("UploadModelResponse", {"model": MODEL, "modelVersionId": version})

    def merge(self, req, m):
        for alias in req.json()["versionAliases"]:
            self.aliases[alias] = m.group(1)
        return self.get_model(req, m)

    def list_endpoints(self, req, m):
        wanted = req.query.get("filter", [""])[0]
        return 200, {"endpoints": [e for e in self.endpoints.values() if f'"{e["displayName"]}"' in wanted]}

    def create_endpoint(self, req, m):
        eid = str(100 + len(self.endpoints))
        self.endpoints[eid] = {**req.json(), "name": f"{PARENT}/endpoints/{eid}", "deployedModels": [],
                               "trafficSplit": {}}  # fmt: skip
        return self.done("Endpoint", self.endpoints[eid])

    def deploy(self, req, m):
        if self.fail_deploy:
            return 200, {"name": f"{PARENT}/operations/2", "done": True,
                         "error": {"code": 8, "message": "quota exceeded for n1-standard-2"}}  # fmt: skip
        endpoint, body = self.endpoints[m.group(1)], req.json()
        new_id = f"dm{len(self.server.requests)}"
        endpoint["deployedModels"].append({**body["deployedModel"], "id": new_id})
        endpoint["trafficSplit"] = {(new_id if k == "0" else k): v for k, v in body["trafficSplit"].items()}
        return self.done("DeployModelResponse", {"deployedModel": {"id": new_id}})

    def undeploy(self, req, m):
        if self.fail_undeploy:
            return 503, {"error": {"code": 503, "message": "backend unavailable", "status": "UNAVAILABLE"}}
        endpoint, body = self.endpoints[m.group(1)], req.json()
        endpoint["deployedModels"] = [d for d in endpoint["deployedModels"] if d["id"] != body["deployedModelId"]]
        endpoint["trafficSplit"] = body["trafficSplit"]
        return self.done("UndeployModelResponse", {})

    def calls(self) -> list[str]:
        names = []
        for r in self.server.requests:
            tail = r.path.rsplit("/", 1)[-1]
            names.append(f"{r.method} {tail.split(':')[-1] if ':' in tail else tail}")
        return names


@pytest.fixture
def fake():
    with Capture() as server:
        yield FakeVertex(server)


def _decision(tmp_path) -> str:
    path = tmp_path / "decision.json"
    path.write_text(json.dumps({"blessed": True, "reason": "beats the baseline", "candidate": {"rmse": 3.9},
                                "baseline": {"rmse": 5.0}, "champion": None, "champion_version": None,
                                "test_rows": 100}))  # fmt: skip
    return str(path)


def _deploy(fake: FakeVertex, tmp_path, uri: str, run_id: str) -> str:
    return deploy.deploy(uri, _decision(tmp_path), "fp123", "vertex", "", run_id, "my-proj", "us-central1",
                         "taxifare", api_endpoint=fake.server.url)  # fmt: skip


def test_first_deploy_creates_parent_model_and_endpoint(fake, tmp_path):
    name = _deploy(fake, tmp_path, "/gcs/bucket/root/run1/train-model/model", "taxifare-Run-1")
    assert name == f"{MODEL}@1"
    (upload,) = fake.server.sent("POST", r".*/models:upload")
    body = upload.json()
    assert body["modelId"] == "taxifare" and "parentModel" not in body
    model = body["model"]
    assert model["artifactUri"] == "gs://bucket/root/run1/train-model/model"
    assert model["containerSpec"]["imageUri"] == "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
    assert model["labels"] == {"run_id": "taxifare-run-1", "data_fingerprint": "fp123"}
    assert json.loads(model["versionDescription"])["metrics"]["candidate"] == {"rmse": 3.9}
    (create,) = fake.server.sent("POST", r".*/endpoints")
    assert create.json() == {"displayName": "taxifare"}
    (dep,) = fake.server.sent("POST", r".*:deployModel")
    assert dep.json()["trafficSplit"] == {"0": 100}
    assert dep.json()["deployedModel"]["model"] == f"{MODEL}@1"
    assert dep.json()["deployedModel"]["dedicatedResources"]["machineSpec"]["machineType"] == "n1-standard-2"
    assert not fake.server.sent("POST", r".*:undeployModel")
    assert fake.aliases == {"champion": "1", "default": "1"}


def test_next_deploy_adds_a_version_moves_the_alias_then_undeploys_the_old_one(fake, tmp_path):
    _deploy(fake, tmp_path, "gs://bucket/m1", "run-1")
    (first,) = fake.endpoints.values()
    old_id = first["deployedModels"][0]["id"]
    fake.server.clear()
    name = _deploy(fake, tmp_path, "gs://bucket/m2", "run-2")
    assert name == f"{MODEL}@2"
    assert fake.server.sent("POST", r".*/models:upload")[0].json()["parentModel"] == MODEL
    assert not fake.server.sent("POST", r".*/endpoints")  # found, not created
    (undeploy,) = fake.server.sent("POST", r".*:undeployModel")
    (endpoint,) = fake.endpoints.values()
    new_id = endpoint["deployedModels"][0]["id"]
    assert undeploy.json() == {"deployedModelId": old_id, "trafficSplit": {new_id: 100}}
    calls = fake.calls()
    # The alias follows the traffic at once, so it always names the version that serves.
    assert calls.index("POST deployModel") < calls.index("POST mergeVersionAliases") < calls.index("POST undeployModel")
    assert [d["model"] for d in endpoint["deployedModels"]] == [f"{MODEL}@2"]
    assert fake.aliases["champion"] == "2"


def test_a_failed_deploy_leaves_the_previous_version_serving_and_champion(fake, tmp_path):
    _deploy(fake, tmp_path, "gs://bucket/m1", "run-1")
    fake.fail_deploy = True
    with pytest.raises(Exception, match="quota exceeded"):
        _deploy(fake, tmp_path, "gs://bucket/m2", "run-2")
    (endpoint,) = fake.endpoints.values()
    assert [d["model"] for d in endpoint["deployedModels"]] == [f"{MODEL}@1"]
    assert list(endpoint["trafficSplit"].values()) == [100]
    assert fake.aliases["champion"] == "1" and len(fake.versions) == 2  # uploaded, never promoted
    assert not fake.server.sent("POST", r".*:undeployModel")


def test_a_failed_undeploy_after_the_switch_leaves_the_alias_on_the_serving_version(fake, tmp_path):
    _deploy(fake, tmp_path, "gs://bucket/m1", "run-1")
    fake.fail_undeploy = True
    with pytest.raises(Exception, match="backend unavailable"):
        _deploy(fake, tmp_path, "gs://bucket/m2", "run-2")
    (endpoint,) = fake.endpoints.values()
    serving = [d["model"] for d in endpoint["deployedModels"] if endpoint["trafficSplit"].get(d["id"]) == 100]
    assert serving == [f"{MODEL}@2"]
    assert fake.aliases["champion"] == "2"  # the alias names what serves; only an idle v1 is left over


def test_a_local_model_path_is_refused_with_the_fix(fake, tmp_path):
    with pytest.raises(vertex.VertexError, match="gs:// pipeline root"):
        _deploy(fake, tmp_path, str(tmp_path / "model"), "run-1")
    assert not fake.server.sent("POST", r".*/models:upload")


def test_evaluate_compares_against_the_vertex_champion(fake, trained, sample_dir, tmp_path, monkeypatch):
    args = (os.path.join(sample_dir, "test.csv"), os.path.join(sample_dir, "train.csv"), trained["export_dir"])
    where = {"project": "my-proj", "region": "us-central1", "api_endpoint": fake.server.url}
    first = evaluate.evaluate(*args, "vertex", "", 0.02, **where)
    assert first["champion"] is None and first["champion_version"] is None
    with gcs_emulator(monkeypatch):
        bucket = gcs.client().create_bucket("models")
        for root, _, names in os.walk(trained["export_dir"]):
            for n in names:
                rel = os.path.relpath(os.path.join(root, n), trained["export_dir"])
                bucket.blob(f"run1/model/{rel}").upload_from_filename(os.path.join(root, n))
        _deploy(fake, tmp_path, "gs://models/run1/model", "run-1")
        second = evaluate.evaluate(*args, "vertex", "", 0.02, **where)
    assert second["champion_version"] == f"{MODEL}@1"
    assert second["champion"]["rmse"] == pytest.approx(second["candidate"]["rmse"], rel=1e-6)
    assert fake.server.sent("GET", r".*/models/taxifare@champion")


@pytest.mark.gcp
def test_champion_lookup_against_a_real_project():
    project = os.environ.get("TAXIFARE_TEST_PROJECT")
    if not (project and os.environ.get("TAXIFARE_TEST_BUCKET")):
        pytest.skip("set TAXIFARE_TEST_PROJECT and TAXIFARE_TEST_BUCKET (and credentials) to run")
    found = vertex.VertexRegistry(project, os.environ.get("TAXIFARE_TEST_REGION", "us-central1")).champion()
    assert found is None or found.artifact_uri.startswith("gs://")
