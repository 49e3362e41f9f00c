"""Batch scoring on Vertex AI, against a recorder of its REST API (tests/capture_server.py) through the SDK's
real REST transport: the batch prediction job request (container spec, instance config, input, output,
machines), the one-region rule before it, the wait, and the input prepared as instance objects.

Nothing here proves Vertex AI accepts the request: that is what the opt-in gcp tests would do.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator

import numpy as np
import pytest
from cloud_fakes import Capture

from components import batch_predict
from taxifare.batch import drift as batch_drift
from taxifare.batch import vertex
from taxifare.errors import CloudError, UsageError
from trainer import drift, gcs

PROJECT, REGION = "my-proj", "us-central1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
JOB = f"{PARENT}/batchPredictionJobs/77"
IMAGE = "us-central1-docker.pkg.dev/my-proj/taxifare/taxifare:1"
MODEL_URI = "gs://runs-us/pipeline-root/run-1/resolve-model/chosen"
TRIP = "-73.98,40.75,-73.95,40.78"


class FakeJobs:
    """Vertex AI's batch prediction jobs, Cloud Storage buckets' and BigQuery datasets' locations."""

    def __init__(self, server: Capture):
        self.server, self.states = server, ["JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]
        self.job: dict = {}
        self.locations = {"runs-us": "US-CENTRAL1", "trips-us": "US", "trips-eu": "EUROPE-WEST4"}
        self.datasets = {"taxi": "US", "far": "asia-northeast1"}
        base = f"/v1/{PARENT}/batchPredictionJobs"
        server.route("POST", base, self.create)
        server.route("GET", base + r"/(\d+)", self.get)
        server.route("POST", base + r"/(\d+):cancel", lambda req, m: (200, {}))
        server.route("GET", r"/storage/v1/b/([^/]+)", self.bucket)
        server.route("GET", rf"/bigquery/v2/projects/{PROJECT}/datasets/(\w+)", self.dataset)

    def create(self, req, m):
        self.job = {**req.json(), "name": JOB, "state": "JOB_STATE_PENDING"}
        return 200, self.job

    def get(self, req, m):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        done = {"completionStats": {"successfulCount": "4", "failedCount": "0", "incompleteCount": "0"},
                "outputInfo": {"gcsOutputDirectory": "gs://runs-us/out/prediction-taxifare-1"}}  # fmt: skip
        if state == "JOB_STATE_FAILED":
            done["error"] = {"code": 3, "message": "the container did not become healthy"}
        return 200, {**self.job, "state": state, **(done if state != "JOB_STATE_RUNNING" else {})}

    def bucket(self, req, m):
        return 200, {"name": m.group(1), "location": self.locations[m.group(1)]}

    def dataset(self, req, m):
        reference = {"projectId": PROJECT, "datasetId": m.group(1)}
        return 200, {"datasetReference": reference, "location": self.datasets[m.group(1)]}


@pytest.fixture
def fake(monkeypatch) -> Iterator[FakeJobs]:
    with Capture() as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        gcs.client.cache_clear()
        yield FakeJobs(server)
        gcs.client.cache_clear()


def _bq(server: Capture):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery as bq

    return bq.Client(project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": server.url})


def _spec(inputs: tuple[str, ...], output: str) -> vertex.JobSpec:
    return vertex.JobSpec("taxifare-batch-20261203", MODEL_URI, IMAGE, inputs, output, "n1-highmem-4", 2, 8, 500,
                          "batch@my-proj.iam.gserviceaccount.com", {"run": "r1"})  # fmt: skip


def _run(fake: FakeJobs, spec: vertex.JobSpec) -> dict:
    return vertex.run(spec, PROJECT, REGION, timeout=60, api_endpoint=fake.server.url, poll=0.01,
                      bq=_bq(fake.server))  # fmt: skip


def test_the_job_request_serves_with_our_container_objects_in_jsonl_out(fake):
    inputs = ("gs://runs-us/run-1/batch-predict/instances/instances-00000.jsonl",)
    result = _run(fake, _spec(inputs, "gs://runs-us/out"))
    (sent,) = fake.server.sent("POST", f"/v1/{PARENT}/batchPredictionJobs")
    body = sent.json()
    # The model: the run's copy of the SavedModel, served by `taxifare serve` in the pipeline's image,
    # with the same container spec (command, port, routes, env) the deploy uploads for online serving.
    assert body["unmanagedContainerModel"] == {
        "artifactUri": MODEL_URI,
        "containerSpec": {
            "imageUri": IMAGE,
            "command": ["taxifare", "serve"],
            "ports": [{"containerPort": 8080}],
            "predictRoute": "/predict",
            "healthRoute": "/health/ready",
            "env": [{"name": "TF_CPP_MIN_LOG_LEVEL", "value": "1"}],
            "startupProbe": {"httpGet": {"path": "/health/ready", "port": 8080}, "periodSeconds": 10,
                             "timeoutSeconds": 5, "failureThreshold": 60},
            "healthProbe": {"httpGet": {"path": "/health/ready", "port": 8080}, "periodSeconds": 10,
                            "timeoutSeconds": 5, "failureThreshold": 3},
        },
    }  # fmt: skip
    assert "model" not in body
    assert body["inputConfig"] == {"instancesFormat": "jsonl", "gcsSource": {"uris": list(inputs)}}
    # Instances are objects, as the server takes them; the key goes beside each prediction.
    assert body["instanceConfig"] == {"instanceType": "object", "keyField": "key"}
    assert body["outputConfig"] == {
        "predictionsFormat": "jsonl",
        "gcsDestination": {"outputUriPrefix": "gs://runs-us/out"},
    }
    assert body["dedicatedResources"] == {
        "machineSpec": {"machineType": "n1-highmem-4"}, "startingReplicaCount": 2, "maxReplicaCount": 8,
    }  # fmt: skip
    assert body["manualBatchTuningParameters"] == {"batchSize": 500}
    assert body["serviceAccount"] == "batch@my-proj.iam.gserviceaccount.com"
    assert body["labels"] == {"app": "taxifare", "run": "r1"} and body["displayName"] == "taxifare-batch-20261203"
    assert result == {"job": JOB, "state": "JOB_STATE_SUCCEEDED", "successful": 4, "failed": 0, "incomplete": 0,
                      "output": "gs://runs-us/out/prediction-taxifare-1"}  # fmt: skip
    assert vertex.summary(result) == ["Vertex AI scored 4 instances (0 failed): gs://runs-us/out/prediction-taxifare-1"]
    # The regions were read before the job was created.
    paths = [r.path for r in fake.server.requests]
    assert paths.index("/storage/v1/b/runs-us") < paths.index(f"/v1/{PARENT}/batchPredictionJobs")


def test_a_bigquery_table_in_and_out_names_the_fields_the_model_takes(fake):
    _run(fake, _spec(("bq://my-proj.taxi.trips",), "bq://my-proj.taxi"))
    (sent,) = fake.server.sent("POST", f"/v1/{PARENT}/batchPredictionJobs")
    body = sent.json()
    assert body["inputConfig"] == {
        "instancesFormat": "bigquery",
        "bigquerySource": {"inputUri": "bq://my-proj.taxi.trips"},
    }
    assert body["instanceConfig"] == {
        "instanceType": "object",
        "keyField": "key",
        "includedFields": ["pickuplon", "pickuplat", "dropofflon", "dropofflat", "passengers", "key"],
    }
    assert body["outputConfig"] == {
        "predictionsFormat": "bigquery",
        "bigqueryDestination": {"outputUri": "bq://my-proj.taxi"},
    }
    assert fake.server.sent("GET", rf"/bigquery/v2/projects/{PROJECT}/datasets/taxi")  # US holds us-central1


@pytest.mark.parametrize(
    ("inputs", "output", "message"),
    [
        (("gs://trips-eu/a.jsonl",), "gs://runs-us/out", "the input gs://trips-eu/a.jsonl is in EUROPE-WEST4"),
        (("bq://my-proj.far.trips",), "gs://runs-us/out", "the input bq://my-proj.far.trips is in asia-northeast1"),
        (("gs://trips-us/a.jsonl",), "bq://my-proj.far", "the output bq://my-proj.far is in asia-northeast1"),
    ],
)
def test_model_input_and_output_outside_the_jobs_region_stop_before_the_job(fake, inputs, output, message):
    with pytest.raises(UsageError, match=message) as err:
        _run(fake, _spec(inputs, output))
    assert "the batch prediction job runs in us-central1" in str(err.value)
    assert not fake.server.sent("POST", f"/v1/{PARENT}/batchPredictionJobs")


def test_a_failed_job_says_why_and_a_job_past_its_time_is_cancelled(fake):
    fake.states = ["JOB_STATE_FAILED"]
    with pytest.raises(CloudError, match="ended JOB_STATE_FAILED: the container did not become healthy"):
        _run(fake, _spec(("gs://runs-us/a.jsonl",), "gs://runs-us/out"))
    fake.states = ["JOB_STATE_RUNNING"]
    jobs = vertex.client(REGION, fake.server.url)
    with pytest.raises(CloudError, match=r"did not finish within 0s .* it was cancelled"):
        vertex.wait(jobs, JOB, timeout=0, poll=0.01, say=lambda _: None)
    assert fake.server.sent("POST", rf"/v1/{JOB}:cancel")


def test_files_are_checked_and_prepared_as_instance_objects_with_keys(tmp_path):
    data = tmp_path / "trips.csv.gz"
    import gzip

    data.write_bytes(gzip.compress(f"6.0,{TRIP},2,a\n7.0,0,0,-73.95,40.78,1,b\n8.0,{TRIP},1,c\n".encode()))
    files, result = vertex.prepare(str(data), str(tmp_path / "instances"), str(tmp_path / "rejected.csv"))
    assert files == [str(tmp_path / "instances" / "instances-00000.jsonl")]
    with open(files[0]) as f:
        instances = [json.loads(line) for line in f]
    assert instances == [
        {"pickuplon": -73.98, "pickuplat": 40.75, "dropofflon": -73.95, "dropofflat": 40.78, "passengers": 2.0,
         "key": "a"},
        {"pickuplon": -73.98, "pickuplat": 40.75, "dropofflon": -73.95, "dropofflat": 40.78, "passengers": 1.0,
         "key": "c"},
    ]  # fmt: skip
    with open(tmp_path / "rejected.csv", newline="") as f:
        (rejected,) = list(csv.DictReader(f))
    assert (rejected["row"], rejected["key"], rejected["reason"]) == ("2", "b", "pickup_outside_nyc")
    assert (result.rows, result.scored) == (3, 2)


def test_the_step_prepares_submits_and_waits(fake, tmp_path, monkeypatch):
    """batch_predict's body, with artifacts standing where Vertex AI's /gcs/ mount would put them."""

    class Art:
        def __init__(self, name: str, uri: str = ""):
            self.path, self.uri, self.metadata = str(tmp_path / name), uri, {}

        def log_metric(self, name: str, value: float) -> None:
            self.metadata[name] = value

    (tmp_path / "in.csv").write_text(f"6.0,{TRIP},2,a\n6.0,{TRIP},3,b\n")
    monkeypatch.setattr(vertex, "gcs_uris", lambda paths: [f"gs://runs-us/run-1/{os.path.basename(p)}" for p in paths])
    real = vertex.client
    monkeypatch.setattr(vertex, "client", lambda region, endpoint="": real(region, fake.server.url))
    chosen, report = Art("chosen", MODEL_URI), Art("drift")
    report.metadata = {"flagged": True, "max_psi": 0.41}
    out = Art("predictions")
    said = batch_predict.batch_predict(
        chosen=chosen, drift=report, input=str(tmp_path / "in.csv"), output="", project=PROJECT, region=REGION,
        service_account="", serving_image=IMAGE, job_name="taxifare-batch-20261203", batch_machine_type="n1-standard-4",
        batch_starting_replicas=1, batch_max_replicas=2, batch_size=1000, batch_timeout=60.0,
        instances=Art("instances"), rejected=Art("rejected"), predictions=out, metrics=Art("metrics"),
    )  # fmt: skip
    assert said == "gs://runs-us/out/prediction-taxifare-1"
    (sent,) = fake.server.sent("POST", f"/v1/{PARENT}/batchPredictionJobs")
    body = sent.json()
    assert body["inputConfig"]["gcsSource"]["uris"] == ["gs://runs-us/run-1/instances-00000.jsonl"]
    assert body["outputConfig"]["gcsDestination"]["outputUriPrefix"] == "gs://runs-us/run-1/predictions"
    assert body["unmanagedContainerModel"]["artifactUri"] == MODEL_URI
    assert out.metadata["successful"] == 4


def test_a_bigquery_input_is_counted_into_the_training_bins_by_one_query(tmp_path, trained):
    """RANGE_BUCKET in BigQuery gives the bins numpy's searchsorted gives: the same rows, the same figures."""
    from cloud_fakes import Capture as Recorder

    reference = drift.load(trained["export_dir"])
    with Recorder() as server:
        sent = []

        def insert(req, m):
            sent.append(req.json()["configuration"]["query"]["query"])
            ref = {**req.json()["jobReference"], "location": "US"}
            return 200, {**req.json(), "jobReference": ref, "status": {"state": "DONE"}}

        def results(req, m):
            rows = [{"f": [{"v": name}, {"v": str(i)}, {"v": str(n)}]}
                    for name, f in reference["features"].items() for i, n in enumerate(f["counts"]) if n]  # fmt: skip
            fields = [{"name": "feature", "type": "STRING"}, {"name": "bin", "type": "INTEGER"},
                      {"name": "n", "type": "INTEGER"}]  # fmt: skip
            job = {"projectId": PROJECT, "jobId": m.group(1), "location": "US"}
            return 200, {"jobComplete": True, "jobReference": job, "totalRows": str(len(rows)),
                         "schema": {"fields": fields}, "rows": rows}  # fmt: skip

        server.route("POST", rf"/bigquery/v2/projects/{PROJECT}/jobs", insert)
        server.route("GET", rf"/bigquery/v2/projects/{PROJECT}/queries/([^/]+)", results)
        report = batch_drift.check_input(trained["export_dir"], "bq://my-proj.taxi.trips", 0.25, PROJECT,
                                         bq=_bq(server))  # fmt: skip
    (sql,) = sent
    assert sql.count("RANGE_BUCKET(") == len(drift.PROFILED) and "FROM `my-proj.taxi.trips`" in sql
    assert "pickuplon BETWEEN -74.5 AND -72.8" in sql and "SQRT(" in sql
    assert report["rows"] == reference["rows"] and report["max_psi"] == 0 and not report["flagged"]
    edges = np.asarray(reference["features"]["passengers"]["edges"])
    assert drift.histogram(np.array([1.0, 6.0]), edges).sum() == 2  # the bins RANGE_BUCKET numbers from 0


def _submit(server, *argv: str) -> int:
    from taxifare import cli

    where = ["--project", PROJECT, "--region", REGION, "--bucket", "runs-us", "--api-endpoint", server.url]
    command = [a for a in argv[:2] if a]
    return cli.main([*command, "--pipeline", "batch", *where, "--image", IMAGE, *argv[2:]])


@pytest.fixture
def vertex_api(monkeypatch):
    from capture_server import CaptureServer, route_project_lookups_to

    with CaptureServer(buckets=["runs-us"]) as server, route_project_lookups_to(server):
        server.route("GET", r"^/storage/v1/b/trips-eu$", {"name": "trips-eu", "location": "EU"})
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        gcs.client.cache_clear()
        yield server
        gcs.client.cache_clear()


def test_submit_and_schedule_the_batch_pipeline_on_vertex(vertex_api, capsys):
    code = _submit(vertex_api, "submit", "", "--data", "gs://runs-us/trips/*.csv", "--param", "output=gs://runs-us/preds",
                   "--param", "batch_max_replicas=6", "--drift-threshold", "0.3")  # fmt: skip
    assert code == 0, capsys.readouterr()
    job = vertex_api.one("POST", r"/pipelineJobs$").body
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == "taxifare-batch"
    values = job["runtimeConfig"]["parameterValues"]
    assert (values["input"], values["output"], values["project"], values["region"]) == (
        "gs://runs-us/trips/*.csv", "gs://runs-us/preds", PROJECT, REGION)  # fmt: skip
    assert values["batch_max_replicas"] == 6 and values["drift_threshold"] == 0.3
    executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {IMAGE}
    code = _submit(vertex_api, "schedule", "create", "--cron", "0 6 * * *", "--data", "gs://runs-us/trips/*.csv")
    assert code == 0, capsys.readouterr()
    schedule = vertex_api.one("POST", r"/schedules$").body
    assert schedule["displayName"] == "taxifare-batch"
    assert (
        schedule["createPipelineJobRequest"]["pipelineJob"]["pipelineSpec"]["pipelineInfo"]["name"] == "taxifare-batch"
    )


def test_a_submit_whose_output_is_in_another_region_is_refused_before_any_request_to_vertex(vertex_api, capsys):
    code = _submit(vertex_api, "submit", "", "--data", "gs://runs-us/trips/*.csv", "--param", "output=gs://trips-eu/p")
    assert code == 2
    assert (
        "the output gs://trips-eu/p is in EU, but the batch prediction job runs in us-central1"
        in capsys.readouterr().err
    )
    assert not vertex_api.find("POST", r"/pipelineJobs$")
