"""The tuning stage on Vertex AI: a hyperparameter tuning job (GCPC's HyperparameterTuningJobRunOp)
over the project's image and trainer, and its best trial read back.

- `study_metrics` / `study_parameters`: the StudySpec's metric and parameter specs, from the same
  search space the local tuner uses (compiled into pipeline.yaml as constants).
- `worker_pool_specs`: each trial is `python -m trainer.task` in the pipeline's image on the staged
  splits; Vertex AI appends the trial's values as `--name=value` flags and sets its own
  AIP_MODEL_DIR (trainer/task.py writes there; trainer/tuning_metric.py reports the metric).
- `best_trial`: GCPC 2.x dropped its trial helpers (kubeflow/pipelines#8872), so the job is read
  back here (aiplatform_v1's JobServiceClient over REST) into a study record, whose best trial's
  values go to the train step.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from taxifare.errors import CloudError
from taxifare.tuning import records, space
from trainer.config import TUNING_METRIC

COMMAND = ("python", "-m", "trainer.task")
STATES = {"SUCCEEDED": "complete", "INFEASIBLE": "failed", "STOPPING": "running", "ACTIVE": "running",
          "REQUESTED": "running"}  # fmt: skip


def study_metrics() -> list[dict[str, Any]]:
    return [{"metric_id": TUNING_METRIC, "goal": "MINIMIZE"}]


def study_parameters() -> list[dict[str, Any]]:
    return space.to_vertex(space.build())


def trial_args(train_uri: str, valid_uri: str, fixed: Mapping[str, Any]) -> list[str]:
    """The trainer's flags every trial shares: the staged data and the settings not searched."""
    searched = {p.name for p in space.build()}
    args = ["--train_data_paths", train_uri, "--eval_data_paths", valid_uri]
    for name, value in fixed.items():
        if name not in searched:
            args.append(f"--{name}={','.join(map(str, value)) if isinstance(value, list | tuple) else value}")
    return args


def worker_pool_specs(image: str, args: list[str], machine_type: str, accelerator_type: str = "",
                      accelerator_count: int = 0, boot_disk_size_gb: int = 100) -> list[dict[str, Any]]:  # fmt: skip
    """One worker per trial, on the training step's machine type, in the pipeline's image."""
    machine: dict[str, Any] = {"machine_type": machine_type}
    if accelerator_type:
        machine.update(accelerator_type=accelerator_type, accelerator_count=accelerator_count)
    return [{
        "machine_spec": machine,
        "replica_count": 1,
        "disk_spec": {"boot_disk_type": "pd-ssd", "boot_disk_size_gb": boot_disk_size_gb},
        "container_spec": {"image_uri": image, "command": list(COMMAND), "args": args},
    }]  # fmt: skip


def job_name(gcp_resources: str) -> str:
    """The tuning job's resource name from the `gcp_resources` GCPC's op writes."""
    try:
        uri = json.loads(gcp_resources)["resources"][0]["resourceUri"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise CloudError(f"the tuning job's gcp_resources holds no job: {gcp_resources[:200]!r}") from None
    _, found, name = uri.partition("/v1/")
    if not found or "/hyperparameterTuningJobs/" not in name:
        raise CloudError(f"the tuning job's resource URI is not a hyperparameter tuning job: {uri!r}")
    return name


def read_job(name: str, api_endpoint: str = "", credentials: Any = None) -> Any:
    """The HyperparameterTuningJob (aiplatform_v1 over REST); `api_endpoint` defaults to the region's."""
    from google.api_core.client_options import ClientOptions
    from google.cloud.aiplatform_v1 import JobServiceClient

    region = name.split("/locations/")[1].split("/")[0]
    endpoint = api_endpoint or f"{region}-aiplatform.googleapis.com"
    if credentials is None and endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()  # a local recorder: no Google credentials
    client = JobServiceClient(credentials=credentials, transport="rest",
                              client_options=ClientOptions(api_endpoint=endpoint))  # fmt: skip
    return client.get_hyperparameter_tuning_job(name=name)


def trial_of(t: Any, params: Mapping[str, space.Param]) -> records.Trial:
    """A Vertex AI trial as a study records it."""
    state = STATES.get(t.state.name, "failed")
    values = {p.parameter_id: params[p.parameter_id].value(p.value) for p in t.parameters if p.parameter_id in params}
    final = {m.metric_id: m.value for m in t.final_measurement.metrics} if t.final_measurement else {}
    value = final.get(TUNING_METRIC)
    curve = [[float(m.step_count), x.value] for m in t.measurements for x in m.metrics if x.metric_id == TUNING_METRIC]
    seconds = (t.end_time - t.start_time).total_seconds() if t.end_time and t.start_time else None
    error = t.infeasible_reason or None
    if state == "complete" and value is None:
        state, error = "failed", error or f"no final {TUNING_METRIC} measurement"
    return records.Trial(
        number=int(t.id) if str(t.id).isdigit() else 0, state=state, value=value if state == "complete" else None,
        params={k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}, curve=curve,
        seconds=seconds, error=error,
    )  # fmt: skip


def study_of(job: Any, fixed: Mapping[str, Any]) -> records.Study:
    """The tuning job read back as a study record (where="vertex")."""
    params = {p.name: p for p in space.build()}
    started = job.start_time.timestamp() if job.start_time else 0.0
    study = records.Study(
        study_id=job.name.rsplit("/", 1)[-1], started=started, where="vertex", metric=TUNING_METRIC,
        status="finished" if job.state.name == "JOB_STATE_SUCCEEDED" else job.state.name.lower(),
        trials_wanted=job.max_trial_count, parallel=job.parallel_trial_count,
        space=[p.describe() for p in params.values()], data={"job": job.name},
        fixed={k: v for k, v in fixed.items() if k not in params},
        trials=sorted((trial_of(t, params) for t in job.trials), key=lambda t: t.number),
    )  # fmt: skip
    if job.end_time and job.start_time:
        study.seconds = (job.end_time - job.start_time).total_seconds()
    return study


def best_trial(gcp_resources: str, fixed: Mapping[str, Any], api_endpoint: str = "",
               credentials: Any = None) -> records.Study:  # fmt: skip
    """The finished tuning job's study; CloudError when no trial succeeded (nothing to train with)."""
    study = study_of(read_job(job_name(gcp_resources), api_endpoint, credentials), fixed)
    if study.best is None:
        raise CloudError(f"tuning job {study.study_id}: no trial succeeded with a {TUNING_METRIC}",
                         "see the job's trials in the Vertex AI console")  # fmt: skip
    return study
