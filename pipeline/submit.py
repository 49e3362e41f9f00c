"""Submit and schedule the compiled pipeline on Vertex AI Pipelines or a Kubeflow Pipelines host.

Plain functions over google-cloud-aiplatform and the kfp client; `vertex_commands` is the
CLI over them. Tests point both SDKs at a local recording server through `api_endpoint`
(REST transport) and `host`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

LABELS = {"app": "taxifare"}
TERMINAL = {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"}


@dataclasses.dataclass(frozen=True)
class VertexTarget:
    project: str
    region: str
    bucket: str
    service_account: str = ""
    api_endpoint: str = ""

    def __post_init__(self) -> None:
        from taxifare.cloud import names

        names.project(self.project)
        names.region(self.region)
        object.__setattr__(self, "bucket", names.bucket(self.bucket))

    @property
    def pipeline_root(self) -> str:
        return f"gs://{self.bucket}/pipeline-root"

    def init(self) -> None:
        from google.cloud import aiplatform

        kwargs: dict[str, Any] = {"project": self.project, "location": self.region}
        if self.api_endpoint:
            kwargs["api_endpoint"] = self.api_endpoint
            if self.api_endpoint.startswith("http://"):
                # A plain-HTTP endpoint (a private gateway, or the tests' recorder) needs REST.
                from google.auth.credentials import AnonymousCredentials

                kwargs.update(api_transport="rest", credentials=AnonymousCredentials())
        aiplatform.init(**kwargs)


def console_url(project: str, region: str, job_id: str) -> str:
    return f"https://console.cloud.google.com/vertex-ai/locations/{region}/pipelines/runs/{job_id}?project={project}"


def pipeline_job(
    target: VertexTarget,
    template_path: str,
    parameters: Mapping[str, Any],
    enable_caching: bool | None,
    labels: Mapping[str, str] | None = None,
    display_name: str = "",
) -> Any:
    from google.cloud import aiplatform

    target.init()
    return aiplatform.PipelineJob(
        display_name=display_name or f"taxifare-{time.strftime('%Y%m%d-%H%M%S')}",
        template_path=template_path,
        pipeline_root=target.pipeline_root,
        parameter_values=dict(parameters),
        enable_caching=enable_caching,
        labels={**LABELS, **(labels or {})},
        project=target.project,
        location=target.region,
    )


def submit(
    target: VertexTarget,
    template_path: str,
    parameters: Mapping[str, Any],
    enable_caching: bool | None = None,
    labels: Mapping[str, str] | None = None,
) -> tuple[Any, str]:
    """Create the PipelineJob; return it and the console URL of its DAG."""
    job = pipeline_job(target, template_path, parameters, enable_caching, labels)
    job.submit(service_account=target.service_account or None)
    job_id = job.resource_name.rsplit("/", 1)[-1]
    return job, console_url(target.project, target.region, job_id)


def wait(job: Any, report: Callable[[str], None], poll_seconds: float = 20.0) -> str:
    """Poll until the run ends, reporting each task's state as it changes; return the final state."""
    seen: dict[str, str] = {}
    while True:
        job._sync_gca_resource()
        resource = job.gca_resource
        for task in getattr(resource.job_detail, "task_details", []) or []:
            state = task.state.name if hasattr(task.state, "name") else str(task.state)
            if seen.get(task.task_name) != state:
                seen[task.task_name] = state
                report(f"  {task.task_name:<28} {state}")
        state = resource.state.name if hasattr(resource.state, "name") else str(resource.state)
        if state in TERMINAL:
            return state
        time.sleep(poll_seconds)


def create_schedule(
    target: VertexTarget,
    template_path: str,
    parameters: Mapping[str, Any],
    cron: str,
    timezone: str = "UTC",
    max_concurrent: int = 1,
    max_runs: int | None = None,
    enable_caching: bool | None = None,
    display_name: str = "taxifare-retrain",
) -> Any:
    from google.cloud import aiplatform

    job = pipeline_job(target, template_path, parameters, enable_caching, display_name=display_name)
    schedule = aiplatform.PipelineJobSchedule(pipeline_job=job, display_name=display_name)
    schedule.create(
        cron=f"TZ={timezone} {cron}",
        max_concurrent_run_count=max_concurrent,
        max_run_count=max_runs,
        service_account=target.service_account or None,
    )
    return schedule


def list_schedules(target: VertexTarget) -> list[Any]:
    from google.cloud import aiplatform

    target.init()
    return list(aiplatform.PipelineJobSchedule.list(project=target.project, location=target.region))


def schedule_action(target: VertexTarget, schedule_id: str, action: str) -> Any:
    from google.cloud import aiplatform

    if action not in ("pause", "resume", "delete"):
        raise ValueError(f"unknown schedule action {action!r}")
    target.init()
    name = schedule_id if "/" in schedule_id else (
        f"projects/{target.project}/locations/{target.region}/schedules/{schedule_id}"
    )  # fmt: skip
    schedule = aiplatform.PipelineJobSchedule.get(name, project=target.project, location=target.region)
    getattr(schedule, action)()
    return schedule


# Kubeflow Pipelines clusters (`--host`).


def kfp_client(host: str) -> Any:
    import kfp

    return kfp.Client(host=host)


def kfp_submit(
    host: str, template_path: str, parameters: Mapping[str, Any], enable_caching: bool | None, experiment: str
) -> tuple[str, str]:
    client = kfp_client(host)
    run = client.create_run_from_pipeline_package(
        template_path,
        arguments=dict(parameters),
        run_name=f"taxifare-{time.strftime('%Y%m%d-%H%M%S')}",
        experiment_name=experiment,
        enable_caching=enable_caching,
    )
    return run.run_id, f"{host.rstrip('/')}/#/runs/details/{run.run_id}"


def kfp_schedule(
    host: str,
    template_path: str,
    parameters: Mapping[str, Any],
    cron: str,
    max_concurrent: int,
    enable_caching: bool | None,
    experiment: str,
) -> Any:
    client = kfp_client(host)
    experiment_id = client.create_experiment(experiment).experiment_id
    # KFP's recurring runs take six-field cron (seconds first).
    return client.create_recurring_run(
        experiment_id=experiment_id,
        job_name="taxifare-retrain",
        cron_expression=f"0 {cron}",
        max_concurrency=max_concurrent,
        pipeline_package_path=template_path,
        params=dict(parameters),
        enable_caching=enable_caching,
        no_catchup=True,
    )


def kfp_list_schedules(host: str) -> list[Any]:
    response = kfp_client(host).list_recurring_runs(page_size=100)
    return list(response.recurring_runs or [])


def kfp_schedule_action(host: str, recurring_run_id: str, action: str) -> None:
    client = kfp_client(host)
    call = {
        "pause": client.disable_recurring_run,
        "resume": client.enable_recurring_run,
        "delete": client.delete_recurring_run,
    }[action]
    call(recurring_run_id)
