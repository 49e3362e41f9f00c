"""Submit and schedule the compiled pipeline on Vertex AI Pipelines or a Kubeflow Pipelines host.

Plain functions over google-cloud-aiplatform and the kfp client; taxifare/cli/cloud.py and
schedule.py are the CLI over them. Tests point both SDKs at a local recording server through
`api_endpoint` (REST transport) and `host`. Before the first request, the hosts must answer
(taxifare/cloud/reach.py), so a machine without a route to Google fails in seconds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

from taxifare.cloud import reach
from taxifare.errors import CloudError, UsageError

LABELS = {"app": "taxifare"}
CREATE_TIMEOUT = 60.0  # seconds for one create request
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

    @property
    def local_gateway(self) -> bool:
        """A plain-HTTP endpoint (a private gateway, or the tests' recorder): REST, no Google credentials."""
        return self.api_endpoint.startswith("http://")

    def hosts(self) -> list[str]:
        """What the requests go to: the Vertex AI API, and Google's token service unless anonymous."""
        api = self.api_endpoint or f"https://{self.region}-aiplatform.googleapis.com"
        return [api] if self.local_gateway else [api, f"https://{reach.TOKEN_HOST}"]

    def check_reachable(self) -> None:
        reach.check_all(self.hosts())

    def client(self, cls: Any) -> Any:
        """An aiplatform_v1 client `cls` for this target: REST without credentials on a local gateway."""
        from google.api_core.client_options import ClientOptions

        kwargs: dict[str, Any] = {
            "client_options": ClientOptions(
                api_endpoint=self.api_endpoint or f"{self.region}-aiplatform.googleapis.com"
            )
        }
        if self.local_gateway:
            from google.auth.credentials import AnonymousCredentials

            kwargs.update(transport="rest", credentials=AnonymousCredentials())
        return cls(**kwargs)

    def init(self) -> None:
        from google.cloud import aiplatform

        kwargs: dict[str, Any] = {"project": self.project, "location": self.region}
        if self.api_endpoint:
            kwargs["api_endpoint"] = self.api_endpoint
            if self.local_gateway:
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
        encryption_spec_key_name=parameters.get("encryption_key") or None,  # the job and what it writes
    )


def submit(
    target: VertexTarget,
    template_path: str,
    parameters: Mapping[str, Any],
    enable_caching: bool | None = None,
    labels: Mapping[str, str] | None = None,
    experiment: str = "",
) -> tuple[Any, str]:
    """Create the PipelineJob; return it and the console URL of its DAG.

    Not `PipelineJob.submit()`: that first looks for the pipeline root's bucket and tries to
    create it (minutes of retries and a traceback without a route to Google, and a bucket
    `taxifare setup` did not make). One create request, bounded, instead; with `experiment`,
    the experiment is made sure of first (taxifare/cloud/experiments.py), as the SDK does.
    """
    target.check_reachable()
    if experiment:
        from google.cloud.aiplatform_v1 import MetadataServiceClient

        from taxifare.cloud import experiments

        experiments.ensure(target.client(MetadataServiceClient), target.project, target.region, experiment,
                           parameters.get("encryption_key", ""))  # fmt: skip
    job = pipeline_job(target, template_path, parameters, enable_caching, labels)
    if target.service_account:
        job._gca_resource.service_account = target.service_account
    if parameters.get("network"):  # the pipeline's steps are peered with it (the training job: its own input)
        job._gca_resource.network = parameters["network"]
    job._gca_resource = job.api_client.create_pipeline_job(
        parent=job._parent, pipeline_job=job._gca_resource, pipeline_job_id=job.job_id, timeout=CREATE_TIMEOUT
    )
    job_id = job.resource_name.rsplit("/", 1)[-1]
    return job, console_url(target.project, target.region, job_id)


def join_experiment(target: VertexTarget, job: Any, experiment: str) -> str:
    """Put the created run in the experiment (bounded: see taxifare/cloud/experiments.py); a line saying so."""
    from google.cloud.aiplatform_v1 import MetadataServiceClient

    from taxifare.cloud import experiments

    def get_job() -> Any:
        return job.api_client.get_pipeline_job(name=job.resource_name, timeout=CREATE_TIMEOUT)

    context = experiments.context_name(target.project, target.region, experiment)
    return experiments.associate(target.client(MetadataServiceClient), get_job, context)


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
    labels: Mapping[str, str] | None = None,
) -> Any:
    from google.cloud import aiplatform

    target.check_reachable()
    job = pipeline_job(target, template_path, parameters, enable_caching, labels, display_name)
    schedule = aiplatform.PipelineJobSchedule(pipeline_job=job, display_name=display_name)
    schedule.create(
        cron=f"TZ={timezone} {cron}",
        max_concurrent_run_count=max_concurrent,
        max_run_count=max_runs,
        service_account=target.service_account or None,
        network=parameters.get("network") or None,
        create_request_timeout=CREATE_TIMEOUT,
    )
    return schedule


def list_schedules(target: VertexTarget) -> list[Any]:
    from google.cloud import aiplatform

    target.check_reachable()
    target.init()
    return list(aiplatform.PipelineJobSchedule.list(project=target.project, location=target.region))


def schedule_action(target: VertexTarget, schedule_id: str, action: str) -> Any:
    from google.cloud import aiplatform

    if action not in ("pause", "resume", "delete"):
        raise UsageError(f"unknown schedule action {action!r}")
    target.check_reachable()
    target.init()
    name = schedule_id if "/" in schedule_id else (
        f"projects/{target.project}/locations/{target.region}/schedules/{schedule_id}"
    )  # fmt: skip
    schedule = aiplatform.PipelineJobSchedule.get(name, project=target.project, location=target.region)
    getattr(schedule, action)()
    return schedule


# Kubeflow Pipelines clusters (`--host`).


@dataclasses.dataclass(frozen=True)
class KubeflowTarget:
    """A Kubeflow Pipelines host, and how to sign in to it on a multi-user cluster."""

    host: str
    namespace: str = "kubeflow"
    token: str = ""  # an existing bearer token, sent as it is (behind IAP: an OIDC ID token for its client id)
    sa_token_path: str = ""  # a projected service-account token file, in a pod
    pipeline_root: str = ""  # "" : the cluster's default pipeline root
    client_id: str = ""  # the OAuth client id of the Identity-Aware Proxy in front of the host: kfp gets ID tokens

    def client(self) -> Any:
        import kfp

        reach.check(*reach.host_port(self.host))
        credentials = None
        if self.sa_token_path:
            from kfp.client import ServiceAccountTokenVolumeCredentials

            credentials = ServiceAccountTokenVolumeCredentials(path=self.sa_token_path)
        client = kfp.Client(
            host=self.host, namespace=self.namespace, existing_token=self.token or None, credentials=credentials,
            client_id=self.client_id or None,
        )  # fmt: skip
        if self.client_id and not client._existing_config.api_key.get("authorization"):
            raise CloudError(
                f"--client-id {self.client_id}: kfp got no ID token for the Identity-Aware Proxy: these credentials "
                "are a user's, and IAP's token for a user needs a desktop OAuth client",
                "set KF_PIPELINES_APP_OAUTH2_CLIENT_ID and KF_PIPELINES_APP_OAUTH2_CLIENT_SECRET (kfp asks once in "
                "the browser and keeps the refresh token), or use a service account's credentials "
                "(GOOGLE_APPLICATION_CREDENTIALS)",
            )
        return client


def kfp_submit(
    target: KubeflowTarget,
    template_path: str,
    parameters: Mapping[str, Any],
    enable_caching: bool | None,
    experiment: str,
) -> tuple[str, str]:
    run = target.client().create_run_from_pipeline_package(
        template_path,
        arguments=dict(parameters),
        run_name=f"taxifare-{time.strftime('%Y%m%d-%H%M%S')}",
        experiment_name=experiment,
        namespace=target.namespace,
        pipeline_root=target.pipeline_root or None,
        enable_caching=enable_caching,
    )
    return run.run_id, f"{target.host.rstrip('/')}/#/runs/details/{run.run_id}"


def kfp_schedule(
    target: KubeflowTarget,
    template_path: str,
    parameters: Mapping[str, Any],
    cron: str,
    max_concurrent: int,
    enable_caching: bool | None,
    experiment: str,
) -> Any:
    client = target.client()
    experiment_id = client.create_experiment(experiment, namespace=target.namespace).experiment_id
    # KFP's recurring runs take six-field cron (seconds first).
    return client.create_recurring_run(
        experiment_id=experiment_id,
        job_name="taxifare-retrain",
        cron_expression=f"0 {cron}",
        max_concurrency=max_concurrent,
        pipeline_package_path=template_path,
        params=dict(parameters),
        pipeline_root=target.pipeline_root or None,
        enable_caching=enable_caching,
        no_catchup=True,
    )


def kfp_list_schedules(target: KubeflowTarget) -> list[Any]:
    response = target.client().list_recurring_runs(page_size=100, namespace=target.namespace)
    return list(response.recurring_runs or [])


def kfp_schedule_action(target: KubeflowTarget, recurring_run_id: str, action: str) -> None:
    client = target.client()
    call = {
        "pause": client.disable_recurring_run,
        "resume": client.enable_recurring_run,
        "delete": client.delete_recurring_run,
    }[action]
    call(recurring_run_id)
