"""`taxifare submit` and `taxifare schedule` against a local recorder of Vertex AI / KFP requests.

Not a cloud run: the real google-cloud-aiplatform and kfp clients talk REST to
tests/capture_server.py, and the tests assert what our code puts on the wire.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator

import pytest
from capture_server import CaptureServer, route_project_lookups_to

from pipeline import images
from taxifare import cli
from taxifare.errors import UsageError

PROJECT, REGION, BUCKET = "taxifare-test", "europe-west4", "taxifare-test-ml"
SA = "pipelines@taxifare-test.iam.gserviceaccount.com"
IMAGE = "europe-west4-docker.pkg.dev/taxifare-test/taxifare/taxifare:7"
GPU_IMAGE = "europe-west4-docker.pkg.dev/taxifare-test/taxifare/taxifare:7-gpu"
DATA = "gs://taxifare-test-ml/taxifare/data/abc/*.csv"


def _all_tasks(spec: dict) -> dict:
    """Every task of a pipeline spec, whatever group it is in (the exit handler's, a condition's)."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def _serve(monkeypatch: pytest.MonkeyPatch, **kwargs) -> Iterator[CaptureServer]:
    with CaptureServer(**kwargs) as server, route_project_lookups_to(server):
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        yield server


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[CaptureServer]:
    yield from _serve(monkeypatch, buckets=[BUCKET])


def _where(server: CaptureServer) -> list[str]:
    return ["--project", PROJECT, "--region", REGION, "--bucket", BUCKET, "--api-endpoint", server.url]


def _cloud(server: CaptureServer) -> list[str]:
    return [*_where(server), "--image", IMAGE]


def test_submit_sends_region_root_account_params_labels_caching_and_machines(server, capsys, monkeypatch, tmp_path):
    # The image's io.taxifare.accelerator label, as podman would report it for a `make image GPU=1` build
    # (reading real labels is an image test: tests/test_image.py).
    monkeypatch.setattr(images, "accelerator", lambda image: "gpu" if image == GPU_IMAGE else None)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the compiled spec is written
    code = cli.main(
        ["submit", *_cloud(server), "--service-account", SA, "--gpu-image", GPU_IMAGE, "--data", DATA,
         "--train-steps", "1234", "--label", "team=fares", "--no-cache",
         "--machine-type", "n1-highmem-8", "--accelerator-type", "NVIDIA_TESLA_T4", "--accelerator-count", "1",
         "--replica-count", "2", "--boot-disk-gb", "150"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert list(tmp_path.iterdir()) == []  # the compiled spec was removed after the submission
    request = server.one("POST", r"/pipelineJobs$")
    assert request.location == REGION
    assert request.path.startswith(f"/v1/projects/{PROJECT}/locations/{REGION}/")
    job = request.body
    assert job["runtimeConfig"]["gcsOutputDirectory"] == f"gs://{BUCKET}/pipeline-root"
    assert job["serviceAccount"] == SA
    assert job["labels"]["app"] == "taxifare" and job["labels"]["team"] == "fares"
    params = job["runtimeConfig"]["parameterValues"]
    assert params["source"] == DATA and params["train_steps"] == 1234
    assert (params["deploy_target"], params["project"], params["region"]) == ("vertex", PROJECT, REGION)
    tasks = _all_tasks(job["pipelineSpec"])
    assert all(t.get("cachingOptions", {}).get("enableCache", False) is False for t in tasks.values())
    pools = job["pipelineSpec"]["components"]["comp-train-model"]["inputDefinitions"]["parameters"][
        "worker_pool_specs"
    ]["defaultValue"]
    # Only training pulls the CUDA image: every other step, and the endpoint, the CPU one.
    assert pools[0]["container_spec"]["image_uri"] == GPU_IMAGE
    assert pools[0]["machine_spec"] == {
        "machine_type": "n1-highmem-8",
        "accelerator_type": "NVIDIA_TESLA_T4",
        "accelerator_count": 1,
    }
    assert pools[1]["replica_count"] == 1 and pools[0]["disk_spec"]["boot_disk_size_gb"] == 150
    for name in ("exec-stage-data", "exec-evaluate-model", "exec-deploy-model"):
        assert job["pipelineSpec"]["deploymentSpec"]["executors"][name]["container"]["image"] == IMAGE
    job_id = job.get("name", "").rsplit("/", 1)[-1] or request.query.get("pipelineJobId", [""])[0]
    assert f"https://console.cloud.google.com/vertex-ai/locations/{REGION}/pipelines/runs/" in out
    assert job_id in out
    # Blessed models are served by the same image, running `taxifare serve`, unless asked otherwise.
    assert params["serving_container"] == "custom"
    deploy_task = _all_tasks(job["pipelineSpec"])["deploy-model"]
    assert deploy_task["inputs"]["parameters"]["serving_image"]["runtimeValue"]["constant"] == IMAGE


def test_submit_serving_flags_become_parameters(server, capsys):
    code = cli.main(
        ["submit", *_cloud(server), "--image", IMAGE, "--data", DATA, "--serving-container", "prebuilt",
         "--serving-machine-type", "n1-highcpu-8", "--serving-min-replicas", "2", "--serving-max-replicas", "4",
         "--deploy-timeout", "3600"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr()
    params = server.one("POST", r"/pipelineJobs$").body["runtimeConfig"]["parameterValues"]
    assert (params["serving_container"], params["serving_machine_type"]) == ("prebuilt", "n1-highcpu-8")
    assert (params["serving_min_replicas"], params["serving_max_replicas"], params["deploy_timeout"]) == (2, 4, 3600)


@pytest.mark.parametrize(("states", "code"), [(["PIPELINE_STATE_RUNNING", "PIPELINE_STATE_SUCCEEDED"], 0),
                                              (["PIPELINE_STATE_RUNNING", "PIPELINE_STATE_FAILED"], 1)])  # fmt: skip
def test_submit_wait_follows_the_run_and_exits_by_its_outcome(monkeypatch, capsys, states, code):
    for server in _serve(monkeypatch, buckets=[BUCKET], pipeline_states=states):
        result = cli.main(["submit", *_cloud(server), "--data", DATA, "--wait", "--poll-seconds", "0"])
        out = capsys.readouterr().out
        assert result == code, out
        assert f"run ended: {states[-1]}" in out
        assert len(server.find("GET", r"/pipelineJobs/")) >= 2


def test_schedule_create_sends_cron_timezone_and_limits(server, capsys):
    code = cli.main(["schedule", "create", "--cron", "0 3 * * 1", "--timezone", "America/New_York",
                     "--max-concurrent", "1", "--max-runs", "12", "--service-account", SA, "--data", DATA,
                     *_cloud(server)])  # fmt: skip
    assert code == 0, capsys.readouterr()
    request = server.one("POST", r"/schedules$")
    assert request.location == REGION
    schedule = request.body
    assert schedule["cron"] == "TZ=America/New_York 0 3 * * 1"
    assert int(schedule["maxConcurrentRunCount"]) == 1 and int(schedule["maxRunCount"]) == 12
    job = schedule["createPipelineJobRequest"]["pipelineJob"]
    assert job["serviceAccount"] == SA
    assert job["runtimeConfig"]["gcsOutputDirectory"] == f"gs://{BUCKET}/pipeline-root"
    assert job["runtimeConfig"]["parameterValues"]["source"] == DATA


def test_schedule_list_pause_resume_delete(server, capsys):
    assert cli.main(["schedule", "create", "--cron", "*/30 * * * *", "--data", DATA, *_cloud(server)]) == 0
    name = server.one("POST", r"/schedules$")
    capsys.readouterr()
    assert cli.main(["schedule", "list", *_where(server)]) == 0
    listed = capsys.readouterr().out
    schedule_name = listed.split()[0]
    assert schedule_name.startswith(f"projects/{PROJECT}/locations/{REGION}/schedules/") and name
    schedule_id = schedule_name.rsplit("/", 1)[-1]
    for action, verb in (("pause", ":pause"), ("resume", ":resume")):
        assert cli.main(["schedule", action, schedule_id, *_where(server)]) == 0
        assert server.find("POST", rf"/schedules/{schedule_id}{verb}$")
    assert cli.main(["schedule", "delete", schedule_id, *_where(server)]) == 0
    assert server.find("DELETE", rf"/schedules/{schedule_id}$")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["schedule", "create", "--cron", "0 3 * *"], "has 4 field"),
        (["schedule", "create", "--cron", "0 3 * * 1", "--timezone", "Moon/Base"], "unknown time zone"),
        (["schedule", "create", "--cron", "61 3 * * 1"], "minute: 61 is outside 0-59"),
        (["submit"], "no data"),
        (["submit", "--data", DATA, "--region", "Europe West"], "not a region"),
    ],
)
def test_bad_input_is_rejected_before_any_request(server, capsys, argv, message):
    full = [*argv, "--project", PROJECT, "--bucket", BUCKET, "--api-endpoint", server.url, "--image", IMAGE]
    if "--region" not in argv:
        full += ["--region", REGION]
    assert cli.main(full) == 2
    assert message in capsys.readouterr().err
    assert server.requests == []


def test_submit_to_a_kubeflow_host(server, capsys):
    assert cli.main(["submit", "--host", server.url, "--image", IMAGE, "--data", DATA, "--train-steps", "77"]) == 2
    assert "say where blessed models go" in capsys.readouterr().err
    assert server.find("POST", r"/apis/v2beta1/runs$") == []
    argv = ["submit", "--host", server.url, "--image", IMAGE, "--data", DATA, "--train-steps", "77", "--param",
            "registry=/mnt/models"]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    run = server.one("POST", r"/apis/v2beta1/runs$").body
    assert run["runtime_config"]["parameters"]["source"] == DATA
    assert run["runtime_config"]["parameters"]["train_steps"] == 77
    assert run["runtime_config"]["parameters"]["registry"] == "/mnt/models"
    assert "/#/runs/details/" in out and out.strip().splitlines()[-1].startswith(server.url)


def test_schedule_on_a_kubeflow_host_uses_six_field_cron(server, capsys):
    argv = ["schedule", "create", "--host", server.url, "--image", IMAGE, "--cron", "0 3 * * 1", "--data", DATA]
    assert cli.main([*argv, "--timezone", "Europe/Paris", "--param", "registry=/mnt/m"]) == 2
    assert "read cron in UTC" in capsys.readouterr().err
    vertex = ["--param", "deploy_target=vertex", "--param", "project=p1", "--param", "region=us-east1"]
    code = cli.main([*argv, *vertex, "--bucket", BUCKET])
    assert code == 0, capsys.readouterr()
    body = server.one("POST", r"/apis/v2beta1/recurringruns$").body
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * 1"
    assert int(body["max_concurrency"]) == 1


@pytest.mark.gcp
def test_submit_to_a_real_project(capsys):
    """Opt-in: `pytest -m gcp` with credentials and a test project, bucket, region and pushed image."""
    import os

    env = {k: os.environ.get(f"TAXIFARE_TEST_{k.upper()}") for k in ("project", "bucket", "region", "image")}
    if not all(env.values()):
        pytest.skip("set TAXIFARE_TEST_PROJECT, _BUCKET, _REGION and _IMAGE (and credentials) to run")
    data = os.environ.get("TAXIFARE_TEST_DATA", f"gs://{env['bucket']}/taxifare/data/*.csv")
    where = ["--project", env["project"], "--region", env["region"], "--bucket", env["bucket"]]
    argv = ["submit", *where, "--image", env["image"], "--data", data, "--train-steps", "200", "--wait"]
    assert cli.main(argv) == 0, capsys.readouterr()
    assert "run ended: PIPELINE_STATE_SUCCEEDED" in capsys.readouterr().out


def test_kubeflow_recurring_runs_list_pause_resume_delete(server, capsys):
    # The KFP v2beta1 API's own field names (the list key is camelCase there).
    server.route(
        "GET",
        r"^/apis/v2beta1/recurringruns$",
        {"recurringRuns": [{"recurring_run_id": "rr-1", "display_name": "taxifare-retrain", "status": "ENABLED",
                             "trigger": {"cron_schedule": {"cron": "0 0 3 * * 1"}}}]},
    )  # fmt: skip
    for verb in ("disable", "enable"):
        server.route("POST", rf"^/apis/v2beta1/recurringruns/rr-1:{verb}$", {})
    server.route("DELETE", r"^/apis/v2beta1/recurringruns/rr-1$", {})
    assert cli.main(["schedule", "list", "--host", server.url]) == 0
    assert capsys.readouterr().out.split() == ["rr-1", "taxifare-retrain", "ENABLED", "0", "0", "3", "*", "*", "1"]
    for action, verb in (("pause", ":disable"), ("resume", ":enable")):
        assert cli.main(["schedule", action, "rr-1", "--host", server.url]) == 0
        server.one("POST", rf"/recurringruns/rr-1{verb}$")
    assert cli.main(["schedule", "delete", "rr-1", "--host", server.url]) == 0
    server.one("DELETE", r"/recurringruns/rr-1$")


KFP = ["--host", "http://kfp.example"]
RUN_ID = ["--param", "run_id=fixed"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["submit", "--data", "./missing.csv"], "--data: file not found: './missing.csv'"),
        (["submit", "--data", DATA, "--region", "us-centrl1"], "not a Vertex AI region; did you mean us-central1?"),
        (
            ["submit", "--data", DATA, "--param", "train_stepz=5"],
            "no such pipeline parameter; did you mean train_steps?",
        ),
        (
            ["submit", "--data", DATA, "--train-steps", "0"],
            "train_steps must be a whole number from 1 to 1,000,000,000",
        ),
        (
            ["submit", "--data", DATA, "--param", "learning_rate=NaN"],
            "learning_rate must be a number above 0 and at most 10, got nan",
        ),
        (["submit", "--data", DATA, "--param", "train_steps=1e20"], "train_steps must be a whole number from 1 to"),
        (["submit", "--data", DATA, "--param", "hidden_units=[64, 0]"], "hidden_units must be 1 to 16 whole numbers"),
        (["submit", "--data", DATA, "--param", "serving_container=tfserving"], "serving_container must be one of"),
        (["submit", "--data", DATA, "--param", "valid_fraction=0.6", "--param", "test_fraction=0.6"], "sum to less"),
        (["submit", "--data", DATA, "--serving-min-replicas", "3"], "serving_min_replicas (3) must not exceed"),
        (["submit", "--data", DATA, "--trian-steps", "5"], "did you mean --train-steps?"),
        (["schedule", "create", "--cron", "0 3 * * 1", "--data", DATA, "--max-concurrent", "0"], "at least 1"),
        # What the command sets itself is refused as a --param, not silently replaced.
        (["submit", "--data", DATA, "--param", "deploy_target=local"], "--param deploy_target: this command sets it"),
        (["submit", "--data", DATA, "--param", "project=other"], "--param project: this command sets it; give --proj"),
        (["submit", "--data", DATA, "--param", "service_account=x@y"], "give --service-account"),
        (["schedule", "create", "--cron", "0 3 * * 1", "--data", DATA, *RUN_ID], "every scheduled run needs its own"),
        # Vertex AI's own flags are refused with --host, not ignored.
        (["submit", "--data", DATA, *KFP, "--service-account", "a@b"], "--service-account: Vertex AI only, not with"),
        (["submit", "--data", DATA, *KFP, "--label", "a=b", "--wait"], "--label, --wait: Vertex AI only"),
        (["schedule", "create", "--cron", "0 3 * * 1", "--data", DATA, *KFP, "--service-account", "a"], "Vertex AI"),
        (["submit", "--data", DATA, *KFP, "--registry-pvc", "c", "--param", "registry=/x"], "keeps the registry at"),
    ],
)
def test_user_mistakes_are_one_line_with_the_fix_before_any_request(server, capsys, argv, message):
    where = ["--project", PROJECT, "--bucket", BUCKET, "--api-endpoint", server.url, "--image", IMAGE]
    if "--region" not in argv:
        where += ["--region", REGION]
    assert cli.main([*argv, *where]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err and len([line for line in err.splitlines() if "error:" in line]) == 1
    assert server.requests == []


@pytest.mark.parametrize("name", ["registry", "deploy_target", "run_id"])
def test_a_local_run_refuses_a_param_it_sets_itself(tmp_path, capsys, name):
    runs = tmp_path / "runs"
    argv = ["run", "--runs-root", str(runs), "--param", f"{name}=x"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"--param {name}: this command sets it" in err and "Traceback" not in err
    assert not runs.exists()  # refused before anything was written


def test_schedule_run_local_refuses_what_it_would_ignore(capsys):
    # (--image is honoured: with --runner container the local runs use it.)
    for flag in (["--label", "a=b"], ["--project", "p"], ["--host", "http://kfp"], ["--no-cache"]):
        assert cli.main(["schedule", "run-local", "--cron", "* * * * *", *flag]) == 2
        assert "unrecognized arguments" in capsys.readouterr().err


def test_an_image_the_cloud_cannot_pull_is_refused_in_seconds_without_credentials(capsys, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")  # never looked at
    for image in ("localhost/taxifare:latest", "taxifare:1", "localhost:5000/taxifare:1"):
        code = cli.main(["submit", "--project", PROJECT, "--region", REGION, "--bucket", BUCKET, "--image", image,
                         "--data", DATA])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and f"--image {image}: Vertex AI cannot pull an image that names no registry" in err
        assert "make push IMAGE=" in err
    code = cli.main(["schedule", "create", "--cron", "0 3 * * 1", "--host", "http://kfp.example", "--data", DATA])
    assert code == 2 and "a Kubeflow cluster cannot pull" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("cpu", "is a CPU-only image"),
        (None, "cannot be checked here"),
        ("", "is here without a cpu or gpu io.taxifare.accelerator label"),
    ],
)
def test_gpus_are_refused_with_an_image_without_cudas_tensorflow(server, capsys, monkeypatch, label, message):
    monkeypatch.setattr(images, "accelerator", lambda image: label)
    code = cli.main(["submit", *_cloud(server), "--data", DATA, "--accelerator-type", "NVIDIA_TESLA_T4",
                     "--accelerator-count", "1", "--gpu-image", GPU_IMAGE])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and message in err and "make image GPU=1" in err
    assert server.requests == []


def test_an_image_built_elsewhere_is_vouched_for_with_image_accelerator(monkeypatch):
    """CI built and pushed the GPU image; this laptop has no copy to read the label from."""
    monkeypatch.setattr(images, "accelerator", lambda image: None)
    images.check_accelerators(IMAGE, "NVIDIA_TESLA_T4", "gpu")  # accepted: the user says what it is
    with pytest.raises(UsageError, match="say so with --image-accelerator gpu"):
        images.check_accelerators(IMAGE, "NVIDIA_TESLA_T4")
    with pytest.raises(UsageError, match="is a CPU-only image"):
        images.check_accelerators(IMAGE, "NVIDIA_TESLA_T4", "cpu")
    # The label here wins over what is said: a CPU build under a -gpu tag is still refused.
    monkeypatch.setattr(images, "accelerator", lambda image: "cpu")
    with pytest.raises(UsageError, match=re.escape("is labelled io.taxifare.accelerator=cpu")):
        images.check_accelerators(IMAGE, "NVIDIA_TESLA_T4", "gpu")


BROKEN_ENGINES = {
    "hangs": f"exec {shutil.which('sleep')} 30",
    "garbage": "echo '{not json'",
    "not-a-mapping": "echo '[\"a list\"]'",
    "fails": "exit 125",
}


@pytest.mark.parametrize("engine_script", BROKEN_ENGINES.values(), ids=BROKEN_ENGINES.keys())
def test_a_broken_engine_is_no_verdict_on_the_image(tmp_path, monkeypatch, engine_script):
    """The label is read from whatever `podman` is on PATH: one that hangs or answers nonsense means
    "unknown" (then --image-accelerator decides), never a traceback or a hang."""
    fake = tmp_path / "podman"
    fake.write_text(f"#!/bin/sh\n{engine_script}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(images, "INSPECT_TIMEOUT", 1.0)
    assert images.accelerator(IMAGE) is None


@pytest.mark.parametrize("labels", ["null", "{}", '{"maintainer": "someone"}', '{"io.taxifare.accelerator": "tpu"}'])
def test_an_image_here_without_the_label_is_told_apart_from_one_not_here(tmp_path, monkeypatch, labels):
    """Pulled from elsewhere or built by another Dockerfile: present, but nothing says what it holds."""
    fake = tmp_path / "podman"
    fake.write_text(f"#!/bin/sh\necho '{labels}'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert images.accelerator(IMAGE) == ""
    with pytest.raises(UsageError, match=re.escape("is here without a cpu or gpu io.taxifare.accelerator label")):
        images.check_accelerators(IMAGE, "NVIDIA_TESLA_T4")
    images.check_accelerators(IMAGE, "NVIDIA_TESLA_T4", "gpu")  # vouched for: accepted


def _resolved_payload(job: dict, task: str) -> dict:
    """The CustomJob body gcpc's launcher sends for `task`: its --payload with the inputs filled in, as Vertex
    AI fills the placeholders from the task's inputs and the run's parameter values."""
    spec, values = job["pipelineSpec"], job["runtimeConfig"]["parameterValues"]
    dag_task = _all_tasks(spec)[task]
    component = spec["components"][dag_task["componentRef"]["name"]]
    defaults = {k: v.get("defaultValue") for k, v in component["inputDefinitions"]["parameters"].items()}
    inputs = dict(defaults)
    for name, given in dag_task["inputs"].get("parameters", {}).items():
        if "componentInputParameter" in given:  # a run parameter, passed down through its groups
            parameter = given["componentInputParameter"].removeprefix("pipelinechannel--")
            inputs[name] = values.get(parameter, defaults.get(name))
        elif "runtimeValue" in given:
            inputs[name] = given["runtimeValue"]["constant"]
    container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    payload = container["args"][container["args"].index("--payload") + 1]

    def fill(match: re.Match) -> str:
        value = inputs[match.group(1)]
        return value if isinstance(value, str) else json.dumps(value)

    return json.loads(re.sub(r"\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}", fill, payload))


def test_the_service_account_runs_the_pipeline_and_its_training_job(server, capsys):
    assert cli.main(["submit", *_cloud(server), "--service-account", SA, "--data", DATA]) == 0, capsys.readouterr()
    job = server.one("POST", r"/pipelineJobs$").body
    assert job["serviceAccount"] == SA
    assert job["runtimeConfig"]["parameterValues"]["service_account"] == SA
    assert _resolved_payload(job, "train-model")["job_spec"]["service_account"] == SA
    # Without it, both default: the compute default account, and Vertex AI's Custom Code Service Agent.
    server.clear()
    assert cli.main(["submit", *_cloud(server), "--data", DATA]) == 0, capsys.readouterr()
    job = server.one("POST", r"/pipelineJobs$").body
    assert "serviceAccount" not in job and _resolved_payload(job, "train-model")["job_spec"]["service_account"] == ""


def test_submit_never_creates_or_looks_for_buckets_itself(server, capsys):
    """The SDK's PipelineJob.submit() looks for (and creates) the pipeline root's bucket first: not used."""
    assert cli.main(["submit", *_cloud(server), "--data", DATA]) == 0, capsys.readouterr()
    assert [r.path for r in server.requests if "/storage/" in r.path or "/b/" in r.path] == []
    assert [r.method for r in server.requests] == ["POST"]


def test_kubeflow_pipeline_root_volume_namespace_and_token(server, capsys):
    argv = ["submit", "--host", server.url, "--image", IMAGE, "--data", DATA, "--bucket", BUCKET,
            "--registry-pvc", "taxifare-models", "--namespace", "team-fares", "--token", "tok-123"]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr()
    request = server.one("POST", r"/apis/v2beta1/runs$")
    run = request.body
    assert request.headers.get("authorization") == "Bearer tok-123"
    assert run["runtime_config"]["pipeline_root"] == f"gs://{BUCKET}/pipeline-root"
    assert run["runtime_config"]["parameters"]["registry"] == "/mnt/taxifare-registry"
    executors = run["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for step in ("exec-stage-data", "exec-evaluate-model", "exec-deploy-model"):  # stage_data reads the champion
        (mount,) = executors[step]["pvcMount"]
        assert mount["mountPath"] == "/mnt/taxifare-registry" and mount["pvcNameParameter"]["runtimeValue"][
            "constant"] == "taxifare-models"  # fmt: skip
    assert "exec-train-model" not in executors
    (experiment,) = server.find("POST", r"/apis/v2beta1/experiments$")
    assert experiment.body["namespace"] == "team-fares"
    # No bucket and no root: the cluster's default applies, and it says so.
    server.clear()
    argv = ["submit", "--host", server.url, "--image", IMAGE, "--data", DATA, "--param", "registry=/mnt/m"]
    assert cli.main(argv) == 0
    assert "the cluster's default" in capsys.readouterr().out
    assert not server.one("POST", r"/apis/v2beta1/runs$").body["runtime_config"].get("pipeline_root")


def test_debug_among_the_global_options_keeps_the_traceback(tmp_path, capsys):
    argv = ["runs", "show", "nope", "--runs-root", str(tmp_path)]
    assert cli.main(argv) == 2 and "error: no run 'nope' under" in capsys.readouterr().err
    for options in (["--debug"], ["--verbose", "--debug"], ["--debug", "--verbose"]):
        with pytest.raises(UsageError, match="no run 'nope' under"):
            cli.main([*options, *argv])
    # After the command it is no global option: refused as such, with what to do.
    assert cli.main([*argv, "--debug"]) == 2


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`taxifare params | head -1`: the pipe closes under the command, which stops quietly."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "taxifare.cli", "params"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, bufsize=0)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before it has printed a line (it is still starting)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize(
    ("label", "rule"),
    [("Team=ML", "e.g. --label team=ml"), ("owner=a b", "e.g. --label owner=a-b"), ("1st=x", "starts with a lowercase"),
     ("k=" + "v" * 64, "at most 63 characters"), ("vertex-ai-pipelines-run-billing-id=1", "Vertex AI's own")],
)  # fmt: skip
def test_labels_vertex_would_refuse_are_refused_before_any_upload_or_request(server, capsys, tmp_path, label, rule):
    """Vertex AI checks labels only when it creates the job: after local data was uploaded."""
    data = tmp_path / "trips.csv"
    data.write_text("fare_amount,pickuplon,pickuplat,dropofflon,dropofflat,passengers,key\n")
    for command in (["submit"], ["schedule", "create", "--cron", "0 3 * * 1"]):
        assert cli.main([*command, *_cloud(server), "--data", str(data), "--label", label]) == 2
        err = capsys.readouterr().err
        assert f"--label {label}" in err and rule in err, err
    assert server.requests == []  # no upload, no job


def test_schedule_labels_reach_the_scheduled_runs(server, capsys):
    argv = ["schedule", "create", "--cron", "0 3 * * 1", "--data", DATA, "--label", "team=fares", *_cloud(server)]
    assert cli.main(argv) == 0, capsys.readouterr()
    job = server.one("POST", r"/schedules$").body["createPipelineJobRequest"]["pipelineJob"]
    assert job["labels"] == {"app": "taxifare", "team": "fares"}


def test_creating_a_schedule_is_one_bounded_request_like_submit(server, capsys, monkeypatch):
    """A schedule's create request waits no longer than submit's does (CREATE_TIMEOUT), then says so."""
    import time

    from taxifare.cloud import submit

    monkeypatch.setattr(submit, "CREATE_TIMEOUT", 0.5)
    server.route("POST", r"/schedules$", lambda req, m: time.sleep(5) or {}, times=1)
    code = cli.main(["schedule", "create", "--cron", "0 3 * * 1", "--data", DATA, *_cloud(server)])
    err = capsys.readouterr().err
    assert code == 1 and "timed out" in err.lower(), err


def test_a_serving_image_outside_artifact_registry_is_refused_before_training_is_paid_for(server, capsys, tmp_path):
    """Vertex AI serves a model only from Artifact Registry: without this check stage, train and evaluate
    ran, then the upload failed."""
    data = tmp_path / "trips.csv"
    data.write_text("fare_amount,pickuplon,pickuplat,dropofflon,dropofflat,passengers,key\n")
    for image in ("docker.io/someone/taxifare:1", "ghcr.io/someone/taxifare:1", "quay.io/x/taxifare:1"):
        for command in (["submit"], ["schedule", "create", "--cron", "0 3 * * 1"]):
            assert cli.main([*command, *_where(server), "--image", image, "--data", str(data)]) == 2
            err = capsys.readouterr().err
            assert f"--image {image}: Vertex AI serves models only from an image in Artifact Registry" in err, err
            assert "--serving-container prebuilt" in err
    assert server.requests == []  # nothing uploaded, nothing submitted
    # Served by Vertex AI's own container, the steps may run from any registry Vertex AI can pull from.
    argv = ["submit", *_where(server), "--image", "docker.io/someone/taxifare:1", "--data", DATA]
    assert cli.main([*argv, "--serving-container", "prebuilt"]) == 0, capsys.readouterr()
    # Artifact Registry's gcr.io hosts serve too.
    assert cli.main(["submit", *_where(server), "--image", "gcr.io/taxifare-test/taxifare:1", "--data", DATA]) == 0


def test_a_kubeflow_run_deploying_to_vertex_needs_a_gs_pipeline_root_before_it_starts(server, capsys):
    """Deploy uploads the model to Model Registry from Cloud Storage: without a gs:// root it failed after training."""
    vertex = ["--param", "deploy_target=vertex", "--param", "project=p1", "--param", "region=us-east1"]
    base = ["--host", server.url, "--image", IMAGE, "--data", DATA, *vertex]
    for command in (["submit"], ["schedule", "create", "--cron", "0 3 * * 1"]):
        assert cli.main([*command, *base]) == 2
        err = capsys.readouterr().err
        assert "deploy_target=vertex from a Kubeflow host needs a gs:// pipeline root" in err, err
        assert "give --bucket BUCKET" in err
        assert cli.main([*command, *base, "--pipeline-root", "minio://mlpipeline/v2"]) == 2
        assert "not --pipeline-root minio://mlpipeline/v2" in capsys.readouterr().err
    assert server.requests == []
    assert cli.main(["submit", *base, "--bucket", BUCKET]) == 0, capsys.readouterr()
    run = server.one("POST", r"/apis/v2beta1/runs$").body
    assert run["runtime_config"]["pipeline_root"] == f"gs://{BUCKET}/pipeline-root"


def test_only_training_pulls_the_cuda_image(server, capsys, monkeypatch):
    """Two images, named in pipeline/images.py: --gpu-image for training on GPUs, --image for the rest and serving."""
    monkeypatch.setattr(images, "accelerator", lambda image: {IMAGE: "cpu", GPU_IMAGE: "gpu"}.get(image))
    gpus = ["--accelerator-type", "NVIDIA_TESLA_T4", "--accelerator-count", "1"]
    # One (GPU) image for everything: every step and the CPU endpoint would pull CUDA's TensorFlow.
    assert cli.main(["submit", *_where(server), "--image", GPU_IMAGE, "--data", DATA, *gpus]) == 2
    err = capsys.readouterr().err
    assert "needs the training image as --gpu-image" in err and "every step and the CPU endpoint" in err
    # A GPU image without GPUs, or on a Kubeflow host: refused, not pulled for nothing.
    assert cli.main(["submit", *_cloud(server), "--data", DATA, "--gpu-image", GPU_IMAGE]) == 2
    assert "without --accelerator-type" in capsys.readouterr().err
    assert cli.main(["submit", "--host", server.url, "--image", IMAGE, "--data", DATA, "--gpu-image", GPU_IMAGE]) == 2
    assert "--gpu-image: Vertex AI only" in capsys.readouterr().err
    assert server.requests == []
    assert cli.main(["submit", *_cloud(server), "--data", DATA, "--gpu-image", GPU_IMAGE, *gpus]) == 0
    job = server.one("POST", r"/pipelineJobs$").body
    spec = job["pipelineSpec"]
    pools = spec["components"]["comp-train-model"]["inputDefinitions"]["parameters"]["worker_pool_specs"]
    assert pools["defaultValue"][0]["container_spec"]["image_uri"] == GPU_IMAGE
    others = {name: e["container"]["image"] for name, e in spec["deploymentSpec"]["executors"].items()
              if "taxifare" in e["container"]["image"] and name != "exec-train-model"}  # fmt: skip
    assert set(others) >= {"exec-stage-data", "exec-evaluate-model", "exec-deploy-model"}
    assert set(others.values()) == {IMAGE}
    serving = _all_tasks(spec)["deploy-model"]["inputs"]["parameters"]["serving_image"]
    assert serving["runtimeValue"]["constant"] == IMAGE  # the endpoint serves the CPU image


def test_the_committed_spec_names_a_placeholder_that_submit_refuses(server, capsys):
    """pipeline.yaml is the Vertex AI target: no local-only image, and no empty project or region to deploy to."""
    import os

    import yaml

    with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "pipeline.yaml")) as f:
        text = f.read()
    spec = yaml.safe_load(text)
    assert "localhost/" not in text and images.PLACEHOLDER_IMAGE in text
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["deploy_target"]["defaultValue"] == "vertex"
    for name in ("project", "region"):  # required: a run started from the file must give them
        assert "defaultValue" not in inputs[name] and not inputs[name].get("isOptional"), name
    for image in (images.PLACEHOLDER_IMAGE, "us-central1-docker.pkg.dev/PROJECT/taxifare/taxifare:1"):
        for flag in ("--image", "--gpu-image"):
            extra = (
                ["--accelerator-type", "NVIDIA_TESLA_T4", "--accelerator-count", "1"] if flag == "--gpu-image" else []
            )
            argv = ["submit", *_cloud(server), "--data", DATA, flag, image, *extra]
            assert cli.main(argv) == 2
            err = capsys.readouterr().err
            assert f"{flag} {image}: a placeholder" in err and "pass the image you pushed" in err, err
    assert server.requests == []


def test_caching_is_off_unless_asked_for_since_no_training_step_could_come_from_it(server, capsys):
    """train reads the splits stage_data writes anew every run: a cache that can never hit is not on by default."""
    assert cli.main(["submit", *_cloud(server), "--data", DATA]) == 0, capsys.readouterr()
    tasks = _all_tasks(server.one("POST", r"/pipelineJobs$").body["pipelineSpec"])
    assert "train-model" in tasks and all(t["cachingOptions"].get("enableCache") is not True for t in tasks.values())
    server.clear()
    assert cli.main(["schedule", "create", "--cron", "0 3 * * 1", "--data", DATA, *_cloud(server)]) == 0
    job = server.one("POST", r"/schedules$").body["createPipelineJobRequest"]["pipelineJob"]
    assert all(t["cachingOptions"].get("enableCache") is not True for t in _all_tasks(job["pipelineSpec"]).values())
    server.clear()
    assert cli.main(["submit", "--host", server.url, "--image", IMAGE, "--data", DATA, "--param", "registry=/m"]) == 0
    tasks = _all_tasks(server.one("POST", r"/apis/v2beta1/runs$").body["pipeline_spec"])
    assert "train-model" in tasks
    assert all(t.get("cachingOptions", {}).get("enableCache") is not True for t in tasks.values())


def _service_account_key(path, token_uri: str) -> str:
    """A service-account key file (a fresh RSA key) whose token endpoint is the recorder."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()  # fmt: skip
    key_file = {"type": "service_account", "project_id": PROJECT, "private_key_id": "k1", "private_key": pem,
                "client_email": SA, "client_id": "1", "token_uri": token_uri}  # fmt: skip
    path.write_text(json.dumps(key_file))
    return str(path)


def test_behind_iap_client_id_signs_in_with_an_id_token_for_the_proxy(server, capsys, monkeypatch, tmp_path):
    """IAP takes OIDC ID tokens whose audience is its client id, not access tokens: --client-id hands that to
    kfp's own flow (kfp.Client(client_id=...)), which asks Google's token endpoint (here the recorder) for one."""
    import base64

    from kfp.client import auth

    client_id = "123-abc.apps.googleusercontent.com"
    monkeypatch.setenv(
        "GOOGLE_APPLICATION_CREDENTIALS", _service_account_key(tmp_path / "sa.json", server.url + "/token")
    )
    monkeypatch.setattr(auth, "OAUTH_TOKEN_URI", server.url + "/oauth2/v4/token")
    monkeypatch.setattr(auth, "LOCAL_KFP_CREDENTIAL", str(tmp_path / "kfp-credentials.json"))
    server.route("POST", r"^/token$", {"access_token": "ya29.access", "expires_in": 3600, "token_type": "Bearer"})
    server.route("POST", r"^/oauth2/v4/token$", {"id_token": "eyJ.iap-id-token.sig"})
    argv = ["submit", "--host", server.url, "--image", IMAGE, "--data", DATA, "--param", "registry=/m"]
    assert cli.main([*argv, "--client-id", client_id]) == 0, capsys.readouterr()
    run = server.one("POST", r"/apis/v2beta1/runs$")
    assert run.headers["authorization"] == "Bearer eyJ.iap-id-token.sig"
    (grant,) = server.find("POST", r"^/oauth2/v4/token$")
    assertion = dict(p.split("=", 1) for p in grant.raw.decode().split("&"))["assertion"]
    claims = json.loads(base64.urlsafe_b64decode(assertion.split(".")[1] + "=="))
    assert claims["target_audience"] == client_id and claims["iss"] == SA
    # Two ways to sign in at once is one too many, said before any request.
    server.clear()
    assert cli.main([*argv, "--client-id", client_id, "--token", "t"]) == 2
    assert "--token and --client-id: give one way to sign in" in capsys.readouterr().err
    assert server.requests == []


def test_with_a_users_credentials_client_id_says_what_kfp_needs_instead_of_going_on_unsigned(
    server, capsys, monkeypatch, tmp_path
):
    from kfp.client import auth

    user = tmp_path / "adc.json"
    user.write_text(json.dumps({"type": "authorized_user", "client_id": "c", "client_secret": "s",
                                "refresh_token": "r"}))  # fmt: skip
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(user))
    monkeypatch.setattr(auth, "LOCAL_KFP_CREDENTIAL", str(tmp_path / "kfp-credentials.json"))
    argv = ["submit", "--host", server.url, "--image", IMAGE, "--data", DATA, "--param", "registry=/m"]
    assert cli.main([*argv, "--client-id", "123-abc.apps.googleusercontent.com"]) == 1
    err = capsys.readouterr().err
    assert "kfp got no ID token for the Identity-Aware Proxy" in err and "KF_PIPELINES_APP_OAUTH2_CLIENT_ID" in err
    assert server.find("POST", r"/apis/v2beta1/runs$") == []


KEY = f"projects/{PROJECT}/locations/{REGION}/keyRings/ml/cryptoKeys/runs"
NETWORK = "projects/123456789012/global/networks/ml-vpc"
BOARD = f"projects/{PROJECT}/locations/{REGION}/tensorboards/4242"


def test_tensorboard_key_and_network_reach_the_pipeline_job_and_its_training_job(server, capsys):
    """--tensorboard: the training custom job writes its logs to Vertex AI TensorBoard (base_output_directory makes
    AIP_TENSORBOARD_LOG_DIR, which the train step writes to); --encryption-key and --network: the pipeline job and
    the training job (and, through the deploy step, the model and endpoint: tests/test_vertex_registry.py)."""
    argv = ["submit", *_cloud(server), "--data", DATA, "--tensorboard", "4242", "--encryption-key", KEY,
            "--network", NETWORK]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr()
    job = server.one("POST", r"/pipelineJobs$").body
    assert job["encryptionSpec"] == {"kmsKeyName": KEY} and job["network"] == NETWORK
    params = job["runtimeConfig"]["parameterValues"]
    assert (params["tensorboard"], params["encryption_key"], params["network"]) == (BOARD, KEY, NETWORK)
    body = _resolved_payload(job, "train-model")
    assert body["job_spec"]["tensorboard"] == BOARD  # the TensorBoard link
    assert body["job_spec"]["base_output_directory"]["output_uri_prefix"] == (
        "{{$.pipeline_root}}/custom-jobs/{{$.pipeline_job_uuid}}"  # filled in by Vertex AI: the run's own folder
    )
    assert body["encryption_spec"] == {"kms_key_name": KEY} and body["job_spec"]["network"] == NETWORK
    deploy = _all_tasks(job["pipelineSpec"])["deploy-model"]["inputs"]["parameters"]
    assert deploy["encryption_key"] == {"componentInputParameter": "pipelinechannel--encryption_key"}
    # Schedules: the same, for every run they start.
    server.clear()
    assert cli.main(["schedule", "create", "--cron", "0 3 * * 1", *argv[1:]]) == 0, capsys.readouterr()
    schedule = server.one("POST", r"/schedules$").body["createPipelineJobRequest"]["pipelineJob"]
    assert schedule["encryptionSpec"] == {"kmsKeyName": KEY} and schedule["network"] == NETWORK


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tensorboard", "projects/p/locations/us-east1/tensorboards/1"], "in us-east1, not the run's region"),
        (["--encryption-key", "projects/p/locations/us/keyRings/k/cryptoKeys/c"], "in us, not the run's region"),
        (["--encryption-key", "my-key"], "encryption_key must be projects/P/locations/R/keyRings/K/cryptoKeys/C"),
        (["--network", "ml-vpc"], "network must be projects/NUMBER/global/networks/NAME"),
        (["--param", f"network={NETWORK}"], "--param network: this command sets it; give --network"),
        (["--notify-emails", "a@x.io", "b@x.io", "c@x.io", "d@x.io"], "notify_emails must be at most 3 email"),
        (["--notify-emails", "not-an-address"], "notify_emails must be at most 3 email addresses"),
        (["--notify-webhook", "hooks.slack.com/x"], "notify_webhook must be an http:// or https:// URL"),
        (["--experiment", "Fares_2024"], "--experiment 'Fares_2024': an experiment's name is 1-128 lowercase"),
    ],
)
def test_vertex_options_are_checked_before_any_request(server, capsys, flags, message):
    assert cli.main(["submit", *_cloud(server), "--data", DATA, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert server.requests == []


def test_vertex_only_options_are_refused_with_a_kubeflow_host(server, capsys):
    for flags in (["--tensorboard", BOARD], ["--encryption-key", KEY], ["--network", NETWORK],
                  ["--notify-emails", "ops@example.com"]):  # fmt: skip
        argv = ["submit", "--host", server.url, "--image", IMAGE, "--data", DATA, "--param", "registry=/m", *flags]
        assert cli.main(argv) == 2
        assert "Vertex AI only, not with --host" in capsys.readouterr().err
    assert cli.main(["schedule", "create", "--cron", "0 3 * * 1", *_cloud(server), "--data", DATA,
                     "--experiment", "fares"]) == 2  # fmt: skip
    assert "cannot put them in an experiment" in capsys.readouterr().err
    assert server.requests == []


def _experiments(server: CaptureServer, store_exists: bool = False) -> dict:
    """Vertex ML Metadata as far as an experiment's association uses it (the recorder keeps what is created)."""
    state: dict = {"contexts": {}, "children": []}
    base = rf"/v1/projects/{PROJECT}/locations/{REGION}/metadataStores"
    if store_exists:
        server.route(
            "GET", base + r"/default$", {"name": f"projects/{PROJECT}/locations/{REGION}/metadataStores/default"}
        )
    else:
        server.route(
            "GET", base + r"/default$", (404, {"error": {"code": 404, "message": "no store", "status": "NOT_FOUND"}})
        )
    server.route("POST", base + r"$", {"name": "operations/store", "done": True, "response": {
        "@type": "type.googleapis.com/google.cloud.aiplatform.v1.MetadataStore", "name": "default"}})  # fmt: skip

    def get_context(req, m):
        found = state["contexts"].get(m.group(1))
        return found or (404, {"error": {"code": 404, "message": "no context", "status": "NOT_FOUND"}})

    def create_context(req, m):
        name = f"projects/{PROJECT}/locations/{REGION}/metadataStores/default/contexts/{req.query['contextId'][0]}"
        state["contexts"][name.rsplit("/", 1)[-1]] = {**req.body, "name": name}
        return state["contexts"][name.rsplit("/", 1)[-1]]

    def add_children(req, m):
        state["children"].append((m.group(1), req.body["childContexts"]))
        return {}

    server.route("GET", base + r"/default/contexts/([^/:]+)$", get_context)
    server.route("POST", base + r"/default/contexts$", create_context)
    server.route("POST", base + r"/default/contexts/([^/:]+):addContextChildren$", add_children)
    return state


def test_experiment_puts_the_run_in_vertex_ai_experiments_with_bounded_requests(server, capsys, monkeypatch):
    """What PipelineJob.submit(experiment=...) does: the store and the experiment before the job, then the run's
    own context as the experiment's child, once Vertex AI has made it (the SDK waits for it without bound)."""
    state = _experiments(server)
    run_context = f"projects/{PROJECT}/locations/{REGION}/metadataStores/default/contexts/the-run"
    polls = {"n": 0}

    def job_with_context_later(req, m):
        polls["n"] += 1
        job = server.resources[m.group(1)]
        return {**job, "jobDetail": {"pipelineRunContext": {"name": run_context}}} if polls["n"] >= 2 else job

    server.route("GET", r"/v1/(projects/[^/]+/locations/[^/]+/pipelineJobs/[^/:]+)$", job_with_context_later)
    from taxifare.cloud import experiments

    monkeypatch.setattr(experiments, "POLL_SECONDS", 0.01)
    assert cli.main(["submit", *_cloud(server), "--data", DATA, "--experiment", "fares-2024"]) == 0
    out = capsys.readouterr().out
    assert f"experiment: fares-2024 has the run ({run_context})" in out
    calls = [f"{r.method} {r.path.rsplit('/', 1)[-1]}" for r in server.requests]
    assert calls.index("POST contexts") < calls.index("POST pipelineJobs")  # the experiment first, as the SDK does
    experiment = state["contexts"]["fares-2024"]
    assert experiment["schemaTitle"] == "system.Experiment" and experiment["displayName"] == "fares-2024"
    assert state["children"] == [("fares-2024", [run_context])]  # the association
    assert server.find("POST", r"/metadataStores$")  # the project's first: the default store made too
    # A run still queued past the bound is said, not waited for; the run itself was created.
    server.clear()
    polls["n"] = -(10**6)
    monkeypatch.setattr(experiments, "ASSOCIATE_TIMEOUT", 0.05)
    assert cli.main(["submit", *_cloud(server), "--data", DATA, "--experiment", "fares-2024"]) == 0
    assert "not in fares-2024; add it from the console" in capsys.readouterr().out
    assert not server.find("POST", r"/contexts$")  # it existed: found, not made again


def test_failure_notifications_are_run_parameters_a_schedule_sets(server, capsys):
    """notify_webhook and notify_emails are pipeline parameters: a schedule's runs carry them; with emails the run
    is compiled with Vertex AI's notification email as well as the webhook's exit handler."""
    hook = "https://hooks.example.com/services/T0/B0/x"
    argv = ["--data", DATA, *_cloud(server), "--notify-webhook", hook, "--notify-emails", "ops@example.com"]
    assert cli.main(["schedule", "create", "--cron", "0 3 * * 1", *argv]) == 0, capsys.readouterr()
    job = server.one("POST", r"/schedules$").body["createPipelineJobRequest"]["pipelineJob"]
    params = job["runtimeConfig"]["parameterValues"]
    assert params["notify_webhook"] == hook and params["notify_emails"] == ["ops@example.com"]
    tasks = _all_tasks(job["pipelineSpec"])
    assert {"notify-failure", "vertex-pipelines-notification-email"} <= set(tasks)
    # Without emails: the webhook's exit handler alone (a Vertex AI email to nobody is not sent).
    server.clear()
    assert cli.main(["submit", "--data", DATA, *_cloud(server)]) == 0
    tasks = _all_tasks(server.one("POST", r"/pipelineJobs$").body["pipelineSpec"])
    assert "notify-failure" in tasks and "vertex-pipelines-notification-email" not in tasks
    # On a Kubeflow host only when asked for: older backends refuse an exit task reading the run's final state.
    for extra, present in (([], False), (["--notify-webhook", hook], True)):
        server.clear()
        kfp = ["submit", "--host", server.url, "--image", IMAGE, "--data", DATA, "--param", "registry=/m", *extra]
        assert cli.main(kfp) == 0, capsys.readouterr()
        spec = server.one("POST", r"/apis/v2beta1/runs$").body["pipeline_spec"]
        assert ("notify-failure" in _all_tasks(spec)) is present
