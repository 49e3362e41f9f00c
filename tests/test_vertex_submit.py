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
DATA = "gs://taxifare-test-ml/taxifare/data/abc/*.csv"


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
    monkeypatch.setattr(images, "accelerator", lambda image: "gpu" if image == IMAGE else None)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the compiled spec is written
    code = cli.main(
        ["submit", *_cloud(server), "--service-account", SA, "--image", IMAGE, "--data", DATA,
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
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    assert all(t.get("cachingOptions", {}).get("enableCache", False) is False for t in tasks.values())
    pools = job["pipelineSpec"]["components"]["comp-train-model"]["inputDefinitions"]["parameters"][
        "worker_pool_specs"
    ]["defaultValue"]
    assert pools[0]["container_spec"]["image_uri"] == IMAGE
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
    deploy_inputs = job["pipelineSpec"]["root"]["dag"]["tasks"]["condition-1"]["componentRef"]["name"]
    deploy_task = job["pipelineSpec"]["components"][deploy_inputs]["dag"]["tasks"]["deploy-model"]
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
    code = cli.main([*argv, "--param", "deploy_target=vertex", "--param", "project=p1", "--param", "region=us-east1"])
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
                     "--accelerator-count", "1"])  # fmt: skip
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
    dag_task = spec["root"]["dag"]["tasks"][task]
    component = spec["components"][dag_task["componentRef"]["name"]]
    defaults = {k: v.get("defaultValue") for k, v in component["inputDefinitions"]["parameters"].items()}
    inputs = dict(defaults)
    for name, given in dag_task["inputs"].get("parameters", {}).items():
        if "componentInputParameter" in given:
            inputs[name] = values.get(given["componentInputParameter"], defaults.get(name))
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
