"""The Vertex AI deploy target against a recording server speaking Vertex's REST API.

A small fake keeps the state Vertex would (model versions, aliases, the endpoint's
deployed models and traffic) so the tests can assert both what was sent and in what order.
Nothing here proves Vertex accepts the requests: that is the opt-in gcp test's job.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from cloud_fakes import Capture, gcs_emulator, upload_dir

from taxifare import deployment
from taxifare.errors import ChampionMoved, CloudError, UsageError
from taxifare.evaluation import gate, scoring
from taxifare.registry import vertex
from trainer import gcs
from trainer.config import DeployTarget

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
        self.slow_deploy = False  # deployModel's operation never finishes
        self.on_deploy = None  # called after a deployModel, as another actor would act meanwhile
        p = "/v1/" + PARENT
        server.route("GET", p + r"/models/taxifare(?:@(\w+))?", self.get_model)
        server.route("POST", p + r"/models:upload", self.upload)
        server.route("POST", p + r"/models/taxifare@(\w+):mergeVersionAliases", self.merge)
        server.route("GET", p + r"/endpoints", self.list_endpoints)
        server.route("POST", p + r"/endpoints", self.create_endpoint)
        server.route("GET", p + r"/endpoints/(\w+)", lambda req, m: (200, self.endpoints[m.group(1)]))
        server.route("PATCH", p + r"/endpoints/(\w+)", self.update_endpoint)
        # Long-running operations are polled under /ui/ (the SDK's REST binding) or /v1/.
        running = lambda req, m: (200, {"name": req.path.split("/", 2)[2], "done": False})  # noqa: E731
        server.route("GET", rf"/(?:ui|v1)/{PARENT}/operations/(\w+)", running)
        server.route("POST", p + r"/endpoints/(\w+):deployModel", self.deploy)
        server.route("POST", p + r"/endpoints/(\w+):undeployModel", self.undeploy)
        self.evaluations: dict[str, dict] = {}  # name -> the ModelEvaluation, with its "slices"
        server.route("POST", p + r"/models/taxifare@(\w+)/evaluations:import", self.import_evaluation)
        server.route("POST", p + r"/models/taxifare@(\w+)/evaluations/(\w+)/slices:batchImport", self.import_slices)

    @staticmethod
    def done(kind: str, response: dict) -> tuple[int, dict]:
        return 200, {"name": f"{PARENT}/operations/1", "done": True, "response": {"@type": V1 + kind, **response}}

    def import_evaluation(self, req, m):
        name = f"{MODEL}@{m.group(1)}/evaluations/{len(self.evaluations) + 1}"
        self.evaluations[name] = {**req.json()["modelEvaluation"], "name": name, "slices": []}
        return 200, {k: v for k, v in self.evaluations[name].items() if k != "slices"}

    def import_slices(self, req, m):
        evaluation = self.evaluations[f"{MODEL}@{m.group(1)}/evaluations/{m.group(2)}"]
        given = req.json()["modelEvaluationSlices"]
        assert len(given) <= 50  # what Vertex AI takes in one call
        names = [f"{evaluation['name']}/slices/{len(evaluation['slices']) + i + 1}" for i in range(len(given))]
        evaluation["slices"] += given
        return 200, {"importedModelEvaluationSlices": names}

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
                               "trafficSplit": {}, "etag": "0"}  # fmt: skip
        return self.done("Endpoint", self.endpoints[eid])

    @staticmethod
    def changed(endpoint: dict) -> None:
        endpoint["etag"] = str(int(endpoint["etag"]) + 1)

    def deploy(self, req, m):
        if self.fail_deploy:
            return 200, {"name": f"{PARENT}/operations/2", "done": True,
                         "error": {"code": 8, "message": "quota exceeded for n1-standard-2"}}  # fmt: skip
        if self.slow_deploy:
            return 200, {"name": f"{PARENT}/operations/77", "done": False}
        endpoint, body = self.endpoints[m.group(1)], req.json()
        split = {k: int(v) for k, v in body["trafficSplit"].items()}
        assert sum(split.values()) == 100, split  # what Vertex AI requires
        new_id = f"dm{len(self.server.requests)}"
        endpoint["deployedModels"].append({**body["deployedModel"], "id": new_id})
        endpoint["trafficSplit"] = {(new_id if k == "0" else k): v for k, v in split.items()}
        self.changed(endpoint)
        if self.on_deploy:
            self.on_deploy(self)
        return self.done("DeployModelResponse", {"deployedModel": {"id": new_id}})

    def update_endpoint(self, req, m):
        endpoint, body = self.endpoints[m.group(1)], req.json()
        if body.get("etag") and body["etag"] != endpoint["etag"]:
            return 409, {"error": {"code": 409, "message": "etag mismatch", "status": "ABORTED"}}
        assert req.query.get("updateMask") == ["trafficSplit"], req.query
        endpoint["trafficSplit"] = {k: int(v) for k, v in body["trafficSplit"].items()}
        self.changed(endpoint)
        return 200, endpoint

    def undeploy(self, req, m):
        if self.fail_undeploy:
            return 503, {"error": {"code": 503, "message": "backend unavailable", "status": "UNAVAILABLE"}}
        endpoint, body = self.endpoints[m.group(1)], req.json()
        gone = body["deployedModelId"]
        if endpoint["trafficSplit"].get(gone) and body.get("trafficSplit", {}).get(gone, 0):
            return 400, {"error": {"code": 400, "message": "model still takes traffic", "status": "INVALID_ARGUMENT"}}
        endpoint["deployedModels"] = [d for d in endpoint["deployedModels"] if d["id"] != gone]
        endpoint["trafficSplit"] = body.get("trafficSplit") or {
            k: v for k, v in endpoint["trafficSplit"].items() if k != gone
        }
        self.changed(endpoint)
        return self.done("UndeployModelResponse", {})

    def serving(self, endpoint: dict) -> list[str]:
        """The models that take traffic on the endpoint."""
        return [d["model"] for d in endpoint["deployedModels"] if endpoint["trafficSplit"].get(d["id"], 0) > 0]

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


def _decision(tmp_path, replaced: str | None = None) -> str:
    path = tmp_path / "decision.json"
    slices = [
        {"name": "distance 0-2 km", "dimension": "distance", "rows": 40, "candidate": {"rmse": 1.5, "mae": 1.0}},
        {"name": "airport jfk", "dimension": "airport", "rows": 3, "candidate": {"rmse": 9.0, "mae": 7.0}},
        {"name": "airport ewr", "dimension": "airport", "rows": 0, "candidate": None},
    ]  # none in this split
    path.write_text(json.dumps({"blessed": True, "reason": "beats the baseline", "candidate": {"rmse": 3.9, "mae": 2.5},
                                "baseline": {"rmse": 5.0, "mae": 3.5}, "champion": None, "champion_version": replaced,
                                "test_rows": 100, "slices": slices}))  # fmt: skip
    return str(path)


IMAGE = "us-central1-docker.pkg.dev/my-proj/taxifare/taxifare:1"


def _deploy(
    fake: FakeVertex, tmp_path, uri: str, run_id: str, model_dir: str, replaced: str | None = None, **serving
) -> str:
    target = DeployTarget(deploy_target="vertex", project="my-proj", region="us-central1", **serving)
    return deployment.deploy(model_dir, _decision(tmp_path, replaced), "fp123", target, run_id, model_uri=uri,
                             image=IMAGE, api_endpoint=fake.server.url).version  # fmt: skip


def _champion(fake: FakeVertex) -> str | None:
    version = fake.aliases.get("champion")
    return f"{MODEL}@{version}" if version else None


def test_first_deploy_creates_parent_model_and_endpoint(fake, tmp_path, trained):
    name = _deploy(fake, tmp_path, "/gcs/bucket/root/run1/train-model/model", "taxifare-Run-1", trained["export_dir"])
    assert name == f"{MODEL}@1"
    (upload,) = fake.server.sent("POST", r".*/models:upload")
    body = upload.json()
    assert body["modelId"] == "taxifare" and "parentModel" not in body
    model = body["model"]
    assert model["artifactUri"] == "gs://bucket/root/run1/train-model/model"
    # Served by the pipeline's own image running `taxifare serve`, as the container contract says.
    assert model["containerSpec"] == {
        "imageUri": IMAGE,
        "command": ["taxifare", "serve"],
        "ports": [{"containerPort": 8080}],
        "predictRoute": "/predict",
        "healthRoute": "/health/ready",
        "env": [{"name": "TF_CPP_MIN_LOG_LEVEL", "value": "1"}],
        # Vertex AI's probes: a start-up probe patient enough for TensorFlow and the model's download, then health.
        "startupProbe": {"httpGet": {"path": "/health/ready", "port": 8080}, "periodSeconds": 10, "timeoutSeconds": 5,
                         "failureThreshold": 60},
        "healthProbe": {"httpGet": {"path": "/health/ready", "port": 8080}, "periodSeconds": 10, "timeoutSeconds": 5,
                        "failureThreshold": 3},
    }  # fmt: skip
    assert model["labels"] == {"run_id": "taxifare-run-1", "data_fingerprint": "fp123"}
    assert json.loads(model["versionDescription"])["metrics"]["candidate"] == {"rmse": 3.9, "mae": 2.5}
    (create,) = fake.server.sent("POST", r".*/endpoints")
    assert create.json() == {"displayName": "taxifare"}
    # The version's evaluation, for the console's Evaluate tab: imported right after the upload, before it serves.
    (imported,) = fake.server.sent("POST", r".*/models/taxifare@1/evaluations:import")
    evaluation = imported.json()["modelEvaluation"]
    assert evaluation["metricsSchemaUri"].endswith("/modelevaluation/regression_metrics_1.0.0.yaml")
    assert evaluation["metrics"] == {"rootMeanSquaredError": 3.9, "meanAbsoluteError": 2.5}
    assert evaluation["metadata"]["baseline"] == {"rootMeanSquaredError": 5.0, "meanAbsoluteError": 3.5}
    assert evaluation["sliceDimensions"] == ["airport", "distance"]
    (batch,) = fake.server.sent("POST", r".*/models/taxifare@1/evaluations/1/slices:batchImport")
    slices = batch.json()["modelEvaluationSlices"]
    assert [s["slice"] for s in slices] == [{"dimension": "distance", "value": "0-2 km"},
                                            {"dimension": "airport", "value": "jfk"}]  # fmt: skip
    assert slices[0]["metrics"] == {"rootMeanSquaredError": 1.5, "meanAbsoluteError": 1.0}
    calls = fake.calls()
    assert calls.index("POST upload") < calls.index("POST import") < calls.index("POST deployModel")
    (dep,) = fake.server.sent("POST", r".*:deployModel")
    assert dep.json()["trafficSplit"] == {"0": 100}
    assert dep.json()["deployedModel"]["model"] == f"{MODEL}@1"
    resources = dep.json()["deployedModel"]["dedicatedResources"]
    assert resources == {"machineSpec": {"machineType": "n1-standard-2"}, "minReplicaCount": 1, "maxReplicaCount": 1}
    assert not fake.server.sent("POST", r".*:undeployModel")
    assert fake.aliases == {"champion": "1", "default": "1"}


def _next(fake: FakeVertex, tmp_path, uri: str, run_id: str, model_dir: str, **serving) -> str:
    """A deploy evaluated against the champion of now, as the pipeline's evaluate step would."""
    return _deploy(fake, tmp_path, uri, run_id, model_dir, _champion(fake), **serving)


def test_next_deploy_goes_beside_at_0_switches_by_etag_moves_the_alias_then_undeploys(fake, tmp_path, trained):
    model_dir = trained["export_dir"]
    _next(fake, tmp_path, "gs://bucket/m1", "run-1", model_dir)
    (first,) = fake.endpoints.values()
    old_id = first["deployedModels"][0]["id"]
    fake.server.clear()
    name = _next(fake, tmp_path, "gs://bucket/m2", "run-2", model_dir)
    assert name == f"{MODEL}@2"
    assert fake.server.sent("POST", r".*/models:upload")[0].json()["parentModel"] == MODEL
    assert not fake.server.sent("POST", r".*/endpoints")  # found, not created
    (dep,) = fake.server.sent("POST", r".*:deployModel")
    assert dep.json()["trafficSplit"] == {"0": 0, old_id: 100}  # beside the old one, no traffic yet
    (switch,) = fake.server.sent("PATCH", r".*/endpoints/\w+")
    (endpoint,) = fake.endpoints.values()
    new_id = endpoint["deployedModels"][0]["id"]
    assert switch.json()["trafficSplit"] == {new_id: 100} and switch.json()["etag"]
    (undeploy,) = fake.server.sent("POST", r".*:undeployModel")
    # No traffic split: the old one takes none by then, and a concurrent run's split is never overwritten.
    assert undeploy.json() == {"deployedModelId": old_id}
    calls = fake.calls()
    # The alias follows the traffic at once, so it always names the version that serves.
    assert (
        calls.index("POST deployModel")
        < calls.index("PATCH " + endpoint["name"].rsplit("/", 1)[-1])
        < calls.index("POST mergeVersionAliases")
        < calls.index("POST undeployModel")
    )
    assert [d["model"] for d in endpoint["deployedModels"]] == [f"{MODEL}@2"]
    assert fake.aliases["champion"] == "2"


def test_a_failed_deploy_leaves_the_previous_version_serving_and_champion(fake, tmp_path, trained):
    _next(fake, tmp_path, "gs://bucket/m1", "run-1", trained["export_dir"])
    fake.fail_deploy = True
    with pytest.raises(Exception, match="quota exceeded"):
        _next(fake, tmp_path, "gs://bucket/m2", "run-2", trained["export_dir"])
    (endpoint,) = fake.endpoints.values()
    assert fake.serving(endpoint) == [f"{MODEL}@1"]
    assert list(endpoint["trafficSplit"].values()) == [100]
    assert fake.aliases["champion"] == "1" and len(fake.versions) == 2  # uploaded, never promoted
    assert not fake.server.sent("POST", r".*:undeployModel")


def test_a_failed_undeploy_after_the_switch_leaves_the_alias_on_the_serving_version(fake, tmp_path, trained):
    _next(fake, tmp_path, "gs://bucket/m1", "run-1", trained["export_dir"])
    fake.fail_undeploy = True
    with pytest.raises(Exception, match="backend unavailable"):
        _next(fake, tmp_path, "gs://bucket/m2", "run-2", trained["export_dir"])
    (endpoint,) = fake.endpoints.values()
    assert fake.serving(endpoint) == [f"{MODEL}@2"]
    assert fake.aliases["champion"] == "2"  # the alias names what serves; only an idle v1 is left over


def test_a_champion_moved_since_evaluate_stops_before_anything_is_uploaded(fake, tmp_path, trained):
    _next(fake, tmp_path, "gs://bucket/m1", "run-1", trained["export_dir"])
    _next(fake, tmp_path, "gs://bucket/m2", "run-2", trained["export_dir"])  # v2 is now the champion
    fake.server.clear()
    with pytest.raises(ChampionMoved, match=r"champion is now .*@2.*evaluated against .*@1"):
        _deploy(fake, tmp_path, "gs://bucket/m3", "run-3", trained["export_dir"], replaced=f"{MODEL}@1")
    assert not fake.server.sent("POST", r".*/models:upload")
    assert not fake.server.sent("POST", r".*:deployModel")
    assert fake.aliases["champion"] == "2"


def test_a_champion_moved_during_the_deploy_keeps_the_traffic_and_undeploys_the_new_one(fake, tmp_path, trained):
    _next(fake, tmp_path, "gs://bucket/m1", "run-1", trained["export_dir"])
    (endpoint,) = fake.endpoints.values()
    serving_before = dict(endpoint["trafficSplit"])

    def someone_promotes_v1_again(f: FakeVertex) -> None:
        f.versions.append({**f.versions[0], "versionId": "9"})
        f.aliases["champion"] = "9"

    fake.on_deploy = someone_promotes_v1_again
    with pytest.raises(ChampionMoved, match=r"now .*@9"):
        _next(fake, tmp_path, "gs://bucket/m2", "run-2", trained["export_dir"])
    assert not fake.server.sent("PATCH", r".*/endpoints/\w+")
    assert endpoint["trafficSplit"] == serving_before  # the new deployment never took traffic ...
    assert fake.serving(endpoint) == [f"{MODEL}@1"] and len(endpoint["deployedModels"]) == 1  # ... and is gone
    assert fake.aliases["champion"] == "9"


def test_an_endpoint_serving_other_models_is_refused_before_anything_is_uploaded(fake, tmp_path, trained):
    fake.endpoints["100"] = {"name": f"{PARENT}/endpoints/100", "displayName": "taxifare", "etag": "0",
                             "deployedModels": [{"id": "x1", "model": f"{PARENT}/models/pricing@3"}],
                             "trafficSplit": {"x1": 100}}  # fmt: skip
    with pytest.raises(CloudError, match=r"also serves .*models/pricing@3.*endpoint only this model uses"):
        _next(fake, tmp_path, "gs://bucket/m1", "run-1", trained["export_dir"])
    assert not fake.server.sent("POST", r".*/models:upload") and not fake.server.sent("POST", r".*:deployModel")
    assert fake.endpoints["100"]["trafficSplit"] == {"x1": 100}


def test_a_champion_moved_during_a_first_deploy_leaves_the_endpoint_empty_again(fake, tmp_path, trained):
    def someone_promotes_another(f: FakeVertex) -> None:
        f.versions.append({**f.versions[0], "versionId": "9"})
        f.aliases["champion"] = "9"

    fake.on_deploy = someone_promotes_another
    with pytest.raises(ChampionMoved, match=r"now .*@9"):
        _next(fake, tmp_path, "gs://bucket/m1", "run-1", trained["export_dir"])
    (endpoint,) = fake.endpoints.values()
    assert endpoint["deployedModels"] == [] and fake.serving(endpoint) == []  # as before the run
    assert fake.aliases["champion"] == "9"


def test_an_endpoint_changed_after_the_champion_check_fails_the_etag_switch(fake, tmp_path, trained):
    _next(fake, tmp_path, "gs://bucket/m1", "run-1", trained["export_dir"])
    (endpoint,) = fake.endpoints.values()
    champion_reads = {"n": 0}

    def another_run_touches_the_endpoint(req, m):
        """The second champion check (after the etag was read): meanwhile, someone changes the endpoint."""
        champion_reads["n"] += m.group(1) == "champion"
        if m.group(1) == "champion" and champion_reads["n"] == 2:
            fake.changed(endpoint)
        return fake.get_model(req, m)

    fake.server.route("GET", "/v1/" + PARENT + r"/models/taxifare(?:@(\w+))?", another_run_touches_the_endpoint)
    with pytest.raises(ChampionMoved, match="etag"):
        _next(fake, tmp_path, "gs://bucket/m2", "run-2", trained["export_dir"])
    assert fake.server.sent("PATCH", r".*/endpoints/\w+")  # the switch was tried, with the stale etag
    assert fake.serving(endpoint) == [f"{MODEL}@1"] and len(endpoint["deployedModels"]) == 1
    assert fake.aliases["champion"] == "1"


def test_a_deploy_that_outlasts_deploy_timeout_says_what_is_still_running(fake, tmp_path, trained):
    _next(fake, tmp_path, "gs://bucket/m1", "run-1", trained["export_dir"])
    fake.slow_deploy = True
    with pytest.raises(CloudError, match=r"did not finish within 1s.*operations/77.*still takes all"):
        _next(fake, tmp_path, "gs://bucket/m2", "run-2", trained["export_dir"], deploy_timeout=1)
    (endpoint,) = fake.endpoints.values()
    assert fake.serving(endpoint) == [f"{MODEL}@1"] and fake.aliases["champion"] == "1"


def test_serving_machines_and_the_prebuilt_container_are_parameters(fake, tmp_path, trained):
    _next(fake, tmp_path, "gs://bucket/m1", "run-1", trained["export_dir"], serving_container="prebuilt",
          serving_machine_type="n1-highcpu-4", serving_min_replicas=2, serving_max_replicas=5)  # fmt: skip
    (upload,) = fake.server.sent("POST", r".*/models:upload")
    assert upload.json()["model"]["containerSpec"] == {
        "imageUri": "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
    }
    (dep,) = fake.server.sent("POST", r".*:deployModel")
    assert dep.json()["deployedModel"]["dedicatedResources"] == {
        "machineSpec": {"machineType": "n1-highcpu-4"}, "minReplicaCount": 2, "maxReplicaCount": 5
    }  # fmt: skip


@pytest.mark.parametrize("container", ["custom", "prebuilt"])
def test_a_model_that_cannot_serve_is_never_uploaded(fake, tmp_path, trained, container):
    broken = tmp_path / "broken"
    shutil.copytree(trained["export_dir"], broken)
    (broken / "variables" / "variables.data-00000-of-00001").write_bytes(b"\0" * 64)
    with pytest.raises(Exception, match="broken"):
        _next(fake, tmp_path, "gs://bucket/m1", "run-1", str(broken), serving_container=container)
    assert not fake.server.requests  # checked before any request


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"serving_container": "docker"}, "serving_container must be one of custom, prebuilt"),
        ({"serving_min_replicas": 3, "serving_max_replicas": 2}, r"serving_min_replicas \(3\) must not exceed"),
        ({"serving_min_replicas": 0}, "serving_min_replicas must be a whole number from 1 to 1,000"),
        ({"deploy_timeout": 0}, "deploy_timeout must be a number above 0"),
        ({"deploy_timeout": float("nan")}, "deploy_timeout must be a number above 0"),
        ({"project": ""}, "deploy_target=vertex needs the project and region"),
    ],
)
def test_serving_settings_are_checked(fake, tmp_path, trained, settings, problem):
    target = {"deploy_target": "vertex", "project": "my-proj", "region": "us-central1", **settings}
    with pytest.raises(UsageError, match=problem):
        deployment.deploy(trained["export_dir"], _decision(tmp_path), "fp", DeployTarget(**target), "run-1",
                      image=IMAGE, api_endpoint=fake.server.url)  # fmt: skip
    with pytest.raises(UsageError, match="needs the pipeline image"):
        deployment.serving(DeployTarget(deploy_target="vertex", project="p", region="r"), image="")
    assert not fake.server.requests


def test_a_local_model_path_is_refused_with_the_fix(fake, tmp_path, trained):
    with pytest.raises(CloudError, match="gs:// pipeline root"):
        _next(fake, tmp_path, str(tmp_path / "model"), "run-1", trained["export_dir"])
    assert not fake.server.sent("POST", r".*/models:upload")


def test_evaluate_compares_against_the_vertex_champion(fake, trained, sample_dir, tmp_path, monkeypatch):
    args = (os.path.join(sample_dir, "test.csv"), os.path.join(sample_dir, "train.csv"), trained["export_dir"])
    where = {"project": "my-proj", "region": "us-central1", "api_endpoint": fake.server.url}
    first = gate.assess(scoring.checked_score(*args, "vertex", "", 0.02, **where), 0.02)
    assert first["champion"] is None and first["champion_version"] is None
    with gcs_emulator(monkeypatch):
        bucket = gcs.client().create_bucket("models")
        upload_dir(bucket, trained["export_dir"], "run1/model")
        _deploy(fake, tmp_path, "gs://models/run1/model", "run-1", trained["export_dir"])
        second = gate.assess(scoring.checked_score(*args, "vertex", "", 0.02, **where), 0.02)
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


def test_a_customer_managed_key_encrypts_the_model_and_the_endpoint(fake, tmp_path, trained):
    key = "projects/my-proj/locations/us-central1/keyRings/ml/cryptoKeys/models"
    target = DeployTarget(deploy_target="vertex", project="my-proj", region="us-central1")
    registered = tmp_path / "registered.json"
    deployment.deploy(trained["export_dir"], _decision(tmp_path), "fp", target, "run-1", model_uri="gs://b/m1",
                      image=IMAGE, api_endpoint=fake.server.url, encryption_key=key,
                      registered_path=str(registered))  # fmt: skip
    (upload,) = fake.server.sent("POST", r".*/models:upload")
    assert upload.json()["model"]["encryptionSpec"] == {"kmsKeyName": key}
    (create,) = fake.server.sent("POST", r".*/endpoints")
    assert create.json() == {"displayName": "taxifare", "encryptionSpec": {"kmsKeyName": key}}
    # What was registered, as the deploy step's `registered` artifact holds it (the console shows its metadata).
    written = json.loads(registered.read_text())
    assert written["model_evaluation"] == f"{MODEL}@1/evaluations/1" and len(written["slices"]) == 2
    assert written["model"] == f"{MODEL}@1" and written["registry"] == "vertex"
