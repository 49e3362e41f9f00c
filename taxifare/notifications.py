"""The exit handler's work: when a run has failed, say so to a webhook (Slack, Google Chat, anything
that takes a JSON POST). It never fails the run: a webhook that is down is reported in the step's
log and summary, and a run that failed stays failed (the exit task's own outcome does not change
the run's). Vertex AI's notification email is its own step (gcpc's VertexNotificationEmailOp).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

TIMEOUT_S = 10.0
ATTEMPTS = 2
SUCCEEDED = "SUCCEEDED"
_JOB = re.compile(r"^projects/([^/]+)/locations/([^/]+)/pipelineJobs/([^/]+)$")


def console_url(job_resource: str) -> str:
    """The Vertex AI console's page of a pipeline job, or "" for a run elsewhere (local, Kubeflow)."""
    found = _JOB.match(job_resource or "")
    if not found:
        return ""
    project, region, job = found.groups()
    return f"https://console.cloud.google.com/vertex-ai/locations/{region}/pipelines/runs/{job}?project={project}"


def message(state: str, error: str, job_resource: str, job_name: str = "") -> dict[str, Any]:
    """The JSON the webhook gets: `text` for chat webhooks, and the fields for anything else."""
    run = job_name or job_resource or "a taxifare run"
    url = console_url(job_resource)
    text = f"taxifare run {run} ended {state}" + (f": {error}" if error else "") + (f" ({url})" if url else "")
    return {"text": text, "run": run, "job": job_resource, "state": state, "error": error, "console": url}


def post(url: str, payload: dict[str, Any], timeout: float = TIMEOUT_S) -> None:
    """POST `payload` as JSON; raises OSError (urllib's errors included) when it does not arrive."""
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "taxifare-notify"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()


def on_exit(
    state: str,
    error: str,
    job_resource: str,
    webhook: str,
    job_name: str = "",
    send: Callable[[str, dict[str, Any]], None] = post,
) -> list[str]:
    """What the exit handler does with the run's final state; returns its summary lines. Never raises."""
    if state == SUCCEEDED:
        return [f"the run {state.lower()}: nothing to report"]
    if not webhook:
        return [f"the run ended {state}; no notify_webhook to tell"]
    host = re.sub(r"^https?://([^/]+).*$", r"\1", webhook)  # the URL's path may hold a secret: never printed
    payload = message(state, error, job_resource, job_name)
    problem = ""
    for _ in range(ATTEMPTS):
        try:
            send(webhook, payload)
            return [f"the run ended {state}: told the webhook at {host}"]
        except (OSError, ValueError) as err:
            problem = f"{type(err).__name__}: {err}"
            problem = problem.replace(webhook, host)
    return [f"the run ended {state}; the webhook at {host} could not be told ({problem})"]
