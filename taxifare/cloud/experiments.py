"""A submitted run in Vertex AI Experiments: what `PipelineJob.submit(experiment=...)` does, as bounded requests.

Before the job is created, the project's default metadata store and the experiment (a `system.Experiment`
context named after it) exist: each is created when missing. After, once Vertex AI has made the run's
own context (`system.PipelineRun`, named in the job's `job_detail.pipeline_run_context`), it becomes a
child of the experiment's (`addContextChildren`), and the console's Experiments page lists the run with
its parameters and metrics. The SDK polls for that context until the run ends; here the wait is bounded
(ASSOCIATE_TIMEOUT), and a run whose context comes later is said, not waited for.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from taxifare.errors import CloudError, UsageError

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
SCHEMA = "system.Experiment"
REQUEST_TIMEOUT = 60.0
ASSOCIATE_TIMEOUT = 180.0
POLL_SECONDS = 5.0


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise UsageError(f"--experiment {name!r}: an experiment's name is 1-128 lowercase letters, digits and '-', "
                         "starting with a letter or digit")  # fmt: skip
    return name


def store(project: str, region: str) -> str:
    return f"projects/{project}/locations/{region}/metadataStores/default"


def context_name(project: str, region: str, experiment: str) -> str:
    return f"{store(project, region)}/contexts/{experiment}"


def ensure(client: Any, project: str, region: str, experiment: str, encryption_key: str = "") -> str:
    """The experiment's context (and the default metadata store), created when missing; its name."""
    from google.api_core import exceptions
    from google.cloud.aiplatform.metadata import constants
    from google.cloud.aiplatform_v1 import types

    parent = store(project, region)
    try:
        client.get_metadata_store(name=parent, timeout=REQUEST_TIMEOUT)
    except exceptions.NotFound:
        spec = types.EncryptionSpec(kms_key_name=encryption_key) if encryption_key else None
        operation = client.create_metadata_store(parent=parent.rsplit("/metadataStores/", 1)[0],
                                                 metadata_store=types.MetadataStore(encryption_spec=spec),
                                                 metadata_store_id="default", timeout=REQUEST_TIMEOUT)  # fmt: skip
        operation.result(timeout=REQUEST_TIMEOUT)
    name = context_name(project, region, experiment)
    try:
        found = client.get_context(name=name, timeout=REQUEST_TIMEOUT)
    except exceptions.NotFound:
        context = types.Context(display_name=experiment, schema_title=SCHEMA,
                                schema_version=constants.SCHEMA_VERSIONS[SCHEMA],
                                metadata=dict(constants.EXPERIMENT_METADATA))  # fmt: skip
        return str(client.create_context(parent=parent, context=context, context_id=experiment,
                                         timeout=REQUEST_TIMEOUT).name)  # fmt: skip
    if found.schema_title != SCHEMA:
        raise CloudError(f"--experiment {experiment}: {name} is a {found.schema_title}, not an experiment",
                         "choose another name")  # fmt: skip
    return str(found.name)


def associate(
    client: Any,
    get_job: Callable[[], Any],
    experiment: str,
    timeout: float | None = None,
    poll_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """The run's context as a child of the experiment's, once Vertex AI has made it (waiting at most `timeout`,
    ASSOCIATE_TIMEOUT by default); a line saying what happened."""
    timeout = ASSOCIATE_TIMEOUT if timeout is None else timeout
    poll_seconds = POLL_SECONDS if poll_seconds is None else poll_seconds
    waited = 0.0
    while True:
        job = get_job()
        run_context = job.job_detail.pipeline_run_context.name if job.job_detail else ""
        if run_context:
            client.add_context_children(context=experiment, child_contexts=[run_context], timeout=REQUEST_TIMEOUT)
            return f"experiment: {experiment.rsplit('/', 1)[-1]} has the run ({run_context})"
        if waited >= timeout:
            return (f"experiment: the run has no context of its own yet after {waited:.0f} s (it is queued), so it is "
                    f"not in {experiment.rsplit('/', 1)[-1]}; add it from the console's Experiments page")  # fmt: skip
        sleep(poll_seconds)
        waited += poll_seconds
