"""The tuning stage on Vertex AI: the compiled tuning job (golden), the HyperparameterTuningJob that
GCPC's own launcher sends for it and the best-trial read-back (the SDK's real REST transport against
tests/capture_server.py), and the trainer in a trial's environment reporting its metric through the
real cloudml-hypertune library."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from capture_server import CaptureServer

from pipeline import compiler
from taxifare.tuning import space, vertex
from trainer import sample_data
from trainer.config import DEFAULTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "us-docker.pkg.dev/p/r/taxifare:7"
PARENT = "projects/p/locations/us-central1"


def _vertex_spec(tmp_path) -> dict:
    out = compiler.compile_pipeline(str(tmp_path / "p.yaml"), target="vertex", image=IMAGE)
    with open(out) as f:
        return yaml.safe_load(f)


def _tasks(spec: dict) -> dict:
    found = dict(spec["root"]["dag"]["tasks"])
    for name, comp in spec["components"].items():
        if "dag" in comp and name != "root":
            found.update(comp["dag"]["tasks"])
    return found


def test_the_compiled_pipeline_holds_the_tuning_job(tmp_path):
    spec = _vertex_spec(tmp_path)
    tasks = _tasks(spec)
    job = tasks["hyperparameter-tuning-job"]["inputs"]["parameters"]
    assert job["study_spec_metrics"]["runtimeValue"]["constant"] == [{"metric_id": "rmse", "goal": "MINIMIZE"}]
    parameters = job["study_spec_parameters"]["runtimeValue"]["constant"]
    assert parameters == vertex.study_parameters() and len(parameters) == 5
    assert {p["parameter_id"] for p in parameters} == {p.name for p in space.build()}
    assert job["max_trial_count"] == {"componentInputParameter": "pipelinechannel--tune_trials"}
    assert job["parallel_trial_count"] == {"componentInputParameter": "pipelinechannel--tune_parallel_trials"}
    assert job["worker_pool_specs"]["taskOutputParameter"] == {"outputParameterKey": "worker_pool_specs",
                                                               "producerTask": "tuning-job-spec"}  # fmt: skip
    assert job["study_spec_measurement_selection_type"]["runtimeValue"]["constant"] == "LAST_MEASUREMENT"
    # The trials run our image (the spec step's constant, and every step of ours runs in it).
    given = tasks["tuning-job-spec"]["inputs"]["parameters"]
    assert given["image"]["runtimeValue"]["constant"] == IMAGE
    assert given["machine_type"]["runtimeValue"]["constant"] == "n1-standard-4"
    executors = spec["deploymentSpec"]["executors"]
    for name in ("exec-tuning-job-spec", "exec-best-trial", "exec-tune-hparams"):
        assert executors[name]["container"]["image"] == IMAGE
    # Only when tune_trials > 0; otherwise the tune step passes the given hyperparameters, and
    # train takes whichever branch ran.
    assert (
        next(t for t in tasks.values() if t["taskInfo"]["name"] == "tune" and "triggerPolicy" in t)["triggerPolicy"][
            "condition"
        ]
        == "int(inputs.parameter_values['pipelinechannel--tune_trials']) > 0"
    )
    train = tasks["train-model"]["inputs"]["parameters"]
    assert "oneof" in train["learning_rate"]["taskOutputParameter"]["outputParameterKey"]


def test_the_trial_spec_runs_the_trainer_in_our_image_on_the_staged_splits():
    pools, base = vertex.worker_pool_specs(IMAGE, vertex.trial_args("gs://b/train", "gs://b/valid",
                                           {"train_steps": 3000, "seed": 42}), "n1-standard-4"), None  # fmt: skip
    container = pools[0]["container_spec"]
    assert container["image_uri"] == IMAGE and container["command"] == ["python", "-m", "trainer.task"]
    assert container["args"] == ["--train_data_paths", "gs://b/train", "--eval_data_paths", "gs://b/valid",
                                 "--train_steps=3000", "--seed=42"]  # fmt: skip
    assert pools[0]["replica_count"] == 1 and base is None


def _payload(spec: dict, values: dict) -> list[str]:
    """GCPC's launcher arguments as Vertex AI would resolve them: each placeholder its input's value."""
    args = spec["deploymentSpec"]["executors"]["exec-hyperparameter-tuning-job"]["container"]["args"]

    def resolve(text: str) -> str:
        if text.startswith('{"Concat"'):
            return "".join(resolve(part) for part in json.loads(text)["Concat"])
        return re.sub(r"\{\{\$\.inputs\.parameters\['(\w+)'\]\}\}",
                      lambda m: v if isinstance(v := values[m.group(1)], str) else json.dumps(v), text)  # fmt: skip

    return [resolve(a) for a in args]


def _trial(number: int, lr: float, units: str, rmse: float | None, state: str = "SUCCEEDED") -> dict:
    values = {"learning_rate": lr, "hidden_units": units, "train_batch_size": "256", "weight_decay": 0.05,
              "huber_delta": 8.0}  # fmt: skip
    trial = {"id": str(number), "state": state, "startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T00:01:40Z",
             "parameters": [{"parameterId": k, "value": v} for k, v in values.items()]}  # fmt: skip
    if rmse is not None:
        trial["finalMeasurement"] = {"stepCount": "3000", "metrics": [{"metricId": "rmse", "value": rmse}]}
        trial["measurements"] = [{"stepCount": "300", "metrics": [{"metricId": "rmse", "value": rmse + 1}]}]
    else:
        trial["infeasibleReason"] = "the trial's container exited with 1"
    return trial


def test_the_tuning_job_request_and_the_best_trial_read_back(tmp_path, monkeypatch):
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1
    from google_cloud_pipeline_components.container.v1.gcp_launcher import job_remote_runner
    from google_cloud_pipeline_components.container.v1.hyperparameter_tuning_job import launcher

    spec = _vertex_spec(tmp_path)
    job_inputs = _tasks(spec)["hyperparameter-tuning-job"]["inputs"]["parameters"]
    defaults = spec["components"]["comp-hyperparameter-tuning-job"]["inputDefinitions"]["parameters"]
    values = {k: v.get("defaultValue", "") for k, v in defaults.items()}
    values.update({k: v["runtimeValue"]["constant"] for k, v in job_inputs.items() if "runtimeValue" in v})
    trial_args = vertex.trial_args("gs://b/run/train", "gs://b/run/valid", {"train_steps": 3000, "seed": 42})
    pools = vertex.worker_pool_specs(IMAGE, trial_args, "n1-standard-4")
    values.update(max_trial_count=8, parallel_trial_count=2, worker_pool_specs=pools, project="p",
                  location="us-central1", service_account="", base_output_directory="gs://b/run/trials")  # fmt: skip
    resources = tmp_path / "gcp_resources"
    argv = [resources.as_posix() if a == "{{$.outputs.parameters['gcp_resources'].output_file}}" else a
            for a in _payload(spec, values)]  # fmt: skip

    with CaptureServer() as server:
        job_name = f"{PARENT}/hyperparameterTuningJobs/77"

        def create(req, m):
            job = {**req.body, "name": job_name, "state": "JOB_STATE_SUCCEEDED", "startTime": "2026-01-01T00:00:00Z",
                   "endTime": "2026-01-01T00:20:00Z",
                   "trials": [_trial(1, 0.001, "64,16,4", 2.61), _trial(2, 0.004, "32,8", 2.48),
                              _trial(3, 0.02, "128,32,8", None, "INFEASIBLE")]}  # fmt: skip
            server.resources[job_name] = job
            return job

        server.route("POST", rf"/v1/{PARENT}/hyperparameterTuningJobs$", create)

        def client(*args, **kwargs):  # GCPC makes a gRPC client to the real endpoint; this one talks REST here
            return aiplatform_v1.JobServiceClient(credentials=AnonymousCredentials(), transport="rest",
                                                  client_options=ClientOptions(api_endpoint=server.url))  # fmt: skip

        monkeypatch.setattr(job_remote_runner.aiplatform.gapic, "JobServiceClient", client)
        monkeypatch.setattr(job_remote_runner, "_POLLING_INTERVAL_IN_SECONDS", 0)
        launcher.main(argv)

        body = server.one("POST", r"/hyperparameterTuningJobs$").body
        assert body["displayName"] == "taxifare-tune"
        assert body["maxTrialCount"] == 8 and body["parallelTrialCount"] == 2
        # The REST transport sends enums as their numbers.
        study_spec = aiplatform_v1.StudySpec
        minimize = study_spec.MetricSpec.GoalType.MINIMIZE
        assert body["studySpec"]["metrics"] == [{"metricId": "rmse", "goal": minimize}]
        assert body["studySpec"]["measurementSelectionType"] == study_spec.MeasurementSelectionType.LAST_MEASUREMENT
        by_id = {p["parameterId"]: p for p in body["studySpec"]["parameters"]}
        assert by_id["learning_rate"]["doubleValueSpec"] == {"minValue": 0.0001, "maxValue": 0.03}
        assert by_id["learning_rate"]["scaleType"] == study_spec.ParameterSpec.ScaleType.UNIT_LOG_SCALE
        assert "64,16,4" in by_id["hidden_units"]["categoricalValueSpec"]["values"]
        pool = body["trialJobSpec"]["workerPoolSpecs"][0]
        assert pool["containerSpec"]["imageUri"] == IMAGE and pool["machineSpec"]["machineType"] == "n1-standard-4"
        assert body["trialJobSpec"]["baseOutputDirectory"] == {"outputUriPrefix": "gs://b/run/trials"}

        fixed = {"train_steps": 3000, "train_batch_size": 512, "hidden_units": [64, 16, 4], "learning_rate": 0.001,
                 "weight_decay": 0.1, "huber_delta": 10.0, "seed": 42}  # fmt: skip
        study = vertex.best_trial(resources.read_text(), fixed, api_endpoint=server.url)
        assert server.find("GET", rf"/v1/{job_name}$")  # read back over REST
    assert (study.where, study.study_id, study.trials_wanted) == ("vertex", "77", 8)
    assert [(t.number, t.state) for t in study.trials] == [(1, "complete"), (2, "complete"), (3, "failed")]
    best = study.best
    assert best.number == 2 and best.value == 2.48 and best.params["hidden_units"] == [32, 8]
    assert best.params["train_batch_size"] == 256 and best.curve == [[300.0, 3.48]] and best.seconds == 100.0
    from taxifare.tuning import step

    expected = {"train_steps": 3000, "train_batch_size": 256, "hidden_units": [32, 8], "learning_rate": 0.004,
                "weight_decay": 0.05, "huber_delta": 8.0}  # fmt: skip
    assert step.chosen(study, DEFAULTS) == expected


def test_no_succeeded_trial_is_one_line(tmp_path):
    from taxifare.errors import CloudError

    with pytest.raises(CloudError, match="holds no job"):
        vertex.job_name("{}")
    with CaptureServer() as server:
        name = f"{PARENT}/hyperparameterTuningJobs/5"
        server.resources[name] = {
            "name": name,
            "state": "JOB_STATE_SUCCEEDED",
            "trials": [_trial(1, 0.1, "32,8", None, "INFEASIBLE")],
        }
        uri = f"https://us-central1-aiplatform.googleapis.com/v1/{name}"
        resources = json.dumps({"resources": [{"resourceType": "HyperparameterTuningJob", "resourceUri": uri}]})
        with pytest.raises(CloudError, match="tuning job 5: no trial succeeded"):
            vertex.best_trial(resources, {}, api_endpoint=server.url)


@pytest.mark.slow
def test_a_trial_reports_its_metric_through_cloudml_hypertune(tmp_path):
    """As Vertex AI runs a trial: the values as --name=value flags, CLOUD_ML_TRIAL_ID and AIP_MODEL_DIR set,
    no --output_dir; the real hypertune library writes the file the service reads."""
    data = tmp_path / "data"
    sample_data.write_splits(str(data), 3000, 0)
    metric_file = tmp_path / "hypertune" / "output.metrics"
    env = {**os.environ, "CLOUD_ML_TRIAL_ID": "3", "CLOUD_ML_HP_METRIC_FILE": str(metric_file),
           "AIP_MODEL_DIR": str(tmp_path / "trials" / "3" / "model") + "/"}  # fmt: skip
    argv = [sys.executable, "-m", "trainer.task", "--train_data_paths", str(data / "train.csv"),
            "--eval_data_paths", str(data / "valid.csv"), "--train_steps=300", "--seed=42",
            "--learning_rate=0.003", "--hidden_units=32,8", "--train_batch_size=256"]  # fmt: skip
    proc = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    reports = [json.loads(line) for line in metric_file.read_text().splitlines()]
    assert [r["global_step"] for r in reports] == ["100", "200", "300"]
    assert {r["trial"] for r in reports} == {"3"}
    with open(tmp_path / "trials" / "3" / "metrics.json") as f:
        final = json.load(f)
    assert float(reports[-1]["rmse"]) == pytest.approx(final["rmse"])
    assert final["config"]["hidden_units"] == [32, 8] and final["config"]["learning_rate"] == 0.003
    assert os.path.isfile(tmp_path / "trials" / "3" / "model" / "saved_model.pb")  # its own AIP_MODEL_DIR


def test_outside_a_trial_nothing_is_reported():
    from trainer import tuning_metric

    assert not tuning_metric.active({})
    assert tuning_metric.active({"CLOUD_ML_TRIAL_ID": "1"})
