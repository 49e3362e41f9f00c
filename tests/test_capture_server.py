"""The capture server answers the real google-cloud-aiplatform (REST) and kfp.Client calls.

These drive the libraries as the pipeline CLI will, and check what they put on the wire:
region, pipeline root, service account, labels, parameters, caching, schedule fields.
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from capture_server import CaptureServer, route_project_lookups_to

PROJECT = "taxifare-test"
REGION = "europe-west4"
ROOT = "gs://taxifare-test-pipelines/root"
SA = "pipelines@taxifare-test.iam.gserviceaccount.com"
CRON = "TZ=Europe/Amsterdam 0 3 * * 1"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A two-parameter pipeline compiled with kfp, as `taxifare compile` would."""
    from kfp import compiler, dsl

    @dsl.component(base_image="python:3.11-slim")
    def add(a: int, b: int) -> int:
        return a + b

    @dsl.pipeline(name="capture-check", description="a pipeline for the capture server")
    def capture_check(a: int = 1, b: int = 2, note: str = "") -> None:
        add(a=a, b=b)

    path = tmp_path_factory.mktemp("package") / "pipeline.yaml"
    compiler.Compiler().compile(capture_check, str(path))
    return str(path)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[CaptureServer]:
    with CaptureServer() as srv:
        # google-cloud-storage (aiplatform's pipeline-root bucket check) comes here too.
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", srv.url)
        yield srv


@pytest.fixture
def vertex(server: CaptureServer) -> Iterator[CaptureServer]:
    """aiplatform initialised against the server, Resource Manager look-ups included."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    with route_project_lookups_to(server):
        aiplatform.init(
            project=PROJECT,
            location=REGION,
            api_endpoint=server.url,
            api_transport="rest",
            credentials=AnonymousCredentials(),
        )
        try:
            yield server
        finally:
            aiplatform.initializer.global_config.__init__()  # type: ignore[misc]


def _job(package: str, **overrides: Any) -> Any:
    from google.cloud import aiplatform

    kwargs: dict[str, Any] = {
        "display_name": "capture-check",
        "template_path": package,
        "job_id": "capture-check-001",
        "pipeline_root": ROOT,
        "parameter_values": {"a": 5, "note": "hello"},
        "enable_caching": False,
        "labels": {"team": "ml", "app": "taxifare"},
    }
    kwargs.update(overrides)
    return aiplatform.PipelineJob(**kwargs)


def _name(state: Any) -> str:
    assert state is not None
    return str(state.name)


def _task_caching(pipeline_spec: dict[str, Any]) -> list[Any]:
    return [task.get("cachingOptions") for task in pipeline_spec["root"]["dag"]["tasks"].values()]


def test_submit_sends_region_root_account_labels_parameters_and_caching(vertex: CaptureServer, package: str) -> None:
    job = _job(package)
    job.submit(service_account=SA)

    create = vertex.one("POST", r"/pipelineJobs$")
    assert create.path == f"/v1/projects/{PROJECT}/locations/{REGION}/pipelineJobs"
    assert create.location == REGION
    assert create.query["pipelineJobId"] == ["capture-check-001"]
    body = create.body
    assert body["displayName"] == "capture-check"
    assert body["serviceAccount"] == SA
    assert body["labels"] == {"team": "ml", "app": "taxifare"}
    assert body["runtimeConfig"]["gcsOutputDirectory"] == ROOT
    assert body["runtimeConfig"]["parameterValues"] == {"a": 5, "note": "hello"}
    assert _task_caching(body["pipelineSpec"]) == [{"enableCache": False}]
    assert body["pipelineSpec"]["pipelineInfo"]["name"] == "capture-check"

    # With a service account and a new bucket: create it and grant the account, no project look-up.
    bucket = vertex.one("POST", r"^/storage/v1/b$")
    assert bucket.body["name"] == "taxifare-test-pipelines"
    assert bucket.query["project"] == [PROJECT]
    policy = vertex.one("PUT", r"^/storage/v1/b/taxifare-test-pipelines/iam$").body
    assert {"role": "roles/storage.objectCreator", "members": [f"serviceAccount:{SA}"]} in policy["bindings"]
    assert vertex.find("GET", r"^/v[13]/projects/") == []

    assert job.resource_name == f"projects/{PROJECT}/locations/{REGION}/pipelineJobs/capture-check-001"
    assert job._dashboard_uri() == (
        f"https://console.cloud.google.com/vertex-ai/locations/{REGION}/pipelines/runs/capture-check-001"
        f"?project={PROJECT}"
    )


def test_caching_left_to_the_compiled_pipeline_when_not_given(vertex: CaptureServer, package: str) -> None:
    _job(package, enable_caching=None).submit(service_account=SA)
    spec = vertex.one("POST", r"/pipelineJobs$").body["pipelineSpec"]
    assert _task_caching(spec) == [{"enableCache": True}]  # kfp compiles caching on by default


def test_existing_bucket_ownership_is_checked_by_project_number(vertex: CaptureServer, package: str) -> None:
    vertex.buckets["taxifare-test-pipelines"] = vertex._bucket("taxifare-test-pipelines")
    _job(package).submit()

    assert vertex.find("POST", r"^/storage/v1/b$") == []
    lookup = vertex.one("GET", r"^/v3/projects/")
    assert lookup.path == f"/v3/projects/{PROJECT}"
    assert "serviceAccount" not in vertex.one("POST", r"/pipelineJobs$").body


def test_wait_polls_get_until_a_final_state(
    vertex: CaptureServer, package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.cloud.aiplatform import pipeline_jobs

    monkeypatch.setattr(pipeline_jobs, "_JOB_WAIT_TIME", 0.01)  # seconds between polls; 5 by default
    vertex.pipeline_states = ["PIPELINE_STATE_RUNNING", "PIPELINE_STATE_RUNNING", "PIPELINE_STATE_SUCCEEDED"]
    job = _job(package)
    job.submit(service_account=SA)
    job.wait()

    gets = vertex.find("GET", r"/pipelineJobs/capture-check-001$")
    assert len(gets) == 3
    assert job.state.name == "PIPELINE_STATE_SUCCEEDED"  # one more get
    assert job.has_failed is False


def test_wait_raises_on_failure(vertex: CaptureServer, package: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from google.cloud.aiplatform import pipeline_jobs

    monkeypatch.setattr(pipeline_jobs, "_JOB_WAIT_TIME", 0.01)
    vertex.pipeline_states = ["PIPELINE_STATE_FAILED"]
    job = _job(package)
    job.submit(service_account=SA)
    with pytest.raises(RuntimeError, match="failed \\(capture server\\)"):
        job.wait()


def test_schedule_create_pause_resume_list_delete(vertex: CaptureServer, package: str) -> None:
    from google.cloud import aiplatform

    schedule = aiplatform.PipelineJobSchedule(pipeline_job=_job(package), display_name="nightly")
    schedule.create(cron=CRON, max_concurrent_run_count=1, max_run_count=10, service_account=SA)

    create = vertex.one("POST", r"/schedules$")
    assert create.path == f"/v1/projects/{PROJECT}/locations/{REGION}/schedules"
    body = create.body
    assert body["displayName"] == "nightly"
    assert body["cron"] == CRON
    assert body["maxConcurrentRunCount"] == "1"  # int64 travels as a JSON string
    assert body["maxRunCount"] == "10"
    request = body["createPipelineJobRequest"]
    assert request["parent"] == f"projects/{PROJECT}/locations/{REGION}"
    run = request["pipelineJob"]
    assert run["serviceAccount"] == SA
    assert run["labels"] == {"team": "ml", "app": "taxifare"}
    assert run["runtimeConfig"]["gcsOutputDirectory"] == ROOT
    assert run["runtimeConfig"]["parameterValues"] == {"a": 5, "note": "hello"}
    assert _task_caching(run["pipelineSpec"]) == [{"enableCache": False}]
    assert vertex.find(path_regex=r"^/storage/") == []  # a schedule does not check the bucket

    assert _name(schedule.state) == "ACTIVE"
    schedule.pause()
    assert _name(schedule.state) == "PAUSED"
    schedule.resume()
    assert _name(schedule.state) == "ACTIVE"
    listed = aiplatform.PipelineJobSchedule.list()
    assert [s.resource_name for s in listed] == [schedule.resource_name]
    schedule.delete()
    assert vertex.find("DELETE", r"/schedules/")
    assert schedule._dashboard_uri().startswith(
        f"https://console.cloud.google.com/vertex-ai/locations/{REGION}/pipelines/schedules/"
    )


def test_model_upload_and_endpoint_deploy_undeploy(vertex: CaptureServer) -> None:
    from google.cloud import aiplatform

    model = aiplatform.Model.upload(
        display_name="taxifare",
        artifact_uri="gs://taxifare-test-models/export/1",
        serving_container_image_uri="europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
        labels={"app": "taxifare"},
    )
    upload = vertex.one("POST", r"/models:upload$").body["model"]
    assert upload["artifactUri"] == "gs://taxifare-test-models/export/1"
    assert upload["containerSpec"]["imageUri"].endswith("tf2-cpu.2-15:latest")
    assert model.version_id == "1"

    endpoint = aiplatform.Endpoint.create(display_name="taxifare")
    assert vertex.one("POST", r"/endpoints$").body["displayName"] == "taxifare"
    endpoint.deploy(model, machine_type="n1-standard-2", min_replica_count=1, max_replica_count=1)
    deploy = vertex.one("POST", r":deployModel$").body
    assert deploy["deployedModel"]["model"] == f"{model.resource_name}@1"  # the version travels with the name
    assert deploy["deployedModel"]["dedicatedResources"]["machineSpec"]["machineType"] == "n1-standard-2"
    assert deploy["trafficSplit"] == {"0": 100}
    assert len(endpoint.list_models()) == 1

    endpoint.undeploy_all()
    assert vertex.one("POST", r":undeployModel$").body["deployedModelId"]
    assert endpoint.list_models() == []


def test_kfp_client_run_and_recurring_run(
    server: CaptureServer, package: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import kfp

    client = kfp.Client(host=server.url)
    assert server.one("GET", r"/healthz$")  # asked at construction: is the deployment multi-user?

    result = client.create_run_from_pipeline_package(
        package,
        arguments={"a": 5, "note": "hello"},
        run_name="capture-run",
        experiment_name="taxifare",
        pipeline_root=ROOT,
        enable_caching=False,
        service_account="pipeline-runner",
    )
    lookup = server.one("GET", r"/apis/v2beta1/experiments$")
    assert json.loads(lookup.query["filter"][0])["predicates"][0]["stringValue"] == "taxifare"
    assert server.one("POST", r"/apis/v2beta1/experiments$").body["display_name"] == "taxifare"
    run = server.one("POST", r"/apis/v2beta1/runs$").body
    assert run["display_name"] == "capture-run"
    assert run["experiment_id"] == result.run_info.experiment_id
    assert run["service_account"] == "pipeline-runner"
    assert run["runtime_config"] == {"parameters": {"a": 5, "note": "hello"}, "pipeline_root": ROOT}
    # kfp sends the spec through protobuf: enableCache=false is proto3's default, so it is left out.
    assert _task_caching(run["pipeline_spec"]) == [{}]
    assert f"{server.url}/#/runs/details/{result.run_id}" in capsys.readouterr().out

    recurring = client.create_recurring_run(
        experiment_id=result.run_info.experiment_id,
        job_name="nightly",
        cron_expression="0 0 3 * * 1",
        max_concurrency=1,
        no_catchup=True,
        params={"a": 7},
        pipeline_package_path=package,
        enable_caching=True,
    )
    body = server.one("POST", r"/apis/v2beta1/recurringruns$").body
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}
    assert body["max_concurrency"] == 1
    assert body["mode"] == "ENABLE"
    assert body["no_catchup"] is True
    assert body["runtime_config"] == {"parameters": {"a": 7}}
    assert _task_caching(body["pipeline_spec"]) == [{"enableCache": True}]
    assert recurring.recurring_run_id.startswith("recurringrun-")


def test_unknown_routes_are_recorded_and_answer_404(server: CaptureServer) -> None:
    import requests

    server.route("GET", r"^/custom$", {"hello": "world"}, times=1)
    assert requests.get(f"{server.url}/custom?x=1", timeout=5).json() == {"hello": "world"}
    missing = requests.post(f"{server.url}/custom", json={"k": [1]}, timeout=5)
    assert missing.status_code == 404
    assert "no route for POST /custom" in missing.json()["error"]["message"]
    assert requests.get(f"{server.url}/custom", timeout=5).status_code == 404  # times=1 used up
    first, second, _ = server.requests
    assert (first.method, first.path, first.query) == ("GET", "/custom", {"x": ["1"]})
    assert second.body == {"k": [1]}
    assert second.headers["content-type"] == "application/json"
