"""Batch scoring on Vertex AI: a batch prediction job whose serving container is this project's image.

The job names its model as an *unmanaged container model*: the SavedModel folder (the run's copy of
the champion) and the container spec the deploy uploads for online serving (serving/container.py),
so the batch job runs `taxifare serve` with the same AIP_* variables and routes as the endpoint
does, whatever container the registered version was uploaded with. Vertex AI sends it
`{"instances": [...]}` requests of `batch_size` instances, each an object of the five features
(`instanceConfig`: instanceType object, the `key` kept out of the instance and written beside its
prediction, so every output line is `{"key": ..., "prediction": {"fare_amount": ...}}`).

Input: Cloud Storage CSV or JSON lines are first read and checked here (taxifare/batch/inputs.py:
the lab's layouts, aliases, gzip; rejected rows to a file with their row and reason) and written
as JSON lines of instance objects, since Vertex AI reads CSV values as strings and cannot turn CSV
rows into objects; a BigQuery table is read by the job itself (its columns named as the feature
table's, with a `key` column). Output: Cloud Storage JSON lines, or BigQuery. Vertex AI reads and
writes only in the job's region or the multi-region holding it: `check_regions` says so before
anything is submitted. Calls go through aiplatform_v1 over REST.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from taxifare.errors import CloudError, UsageError
from trainer.features import FEATURES, KEY

BQ = "bq://"
TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED",
            "JOB_STATE_PARTIALLY_SUCCEEDED"}  # fmt: skip
SHARD_ROWS = 1_000_000  # instances per prepared JSON lines file
MULTI_REGIONS = {"us": "us", "northamerica": "us", "europe": "eu", "asia": "asia"}


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """Everything the batch prediction job request says."""

    display_name: str
    model_uri: str  # gs:// folder of the SavedModel
    image: str  # the serving container: this pipeline's image
    inputs: tuple[str, ...]  # gs:// JSON lines of instance objects, or one bq://PROJECT.DATASET.TABLE
    output: str  # gs:// prefix, or bq://PROJECT[.DATASET]
    machine_type: str
    starting_replicas: int
    max_replicas: int
    batch_size: int
    service_account: str = ""
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def from_bigquery(self) -> bool:
        return self.inputs[0].startswith(BQ)


def job(spec: JobSpec) -> Any:
    """The BatchPredictionJob for `spec` (aiplatform_v1 types)."""
    from google.cloud.aiplatform_v1 import types

    from taxifare.serving import container

    if spec.from_bigquery:
        source = {"instances_format": "bigquery", "bigquery_source": types.BigQuerySource(input_uri=spec.inputs[0])}
    else:
        source = {"instances_format": "jsonl", "gcs_source": types.GcsSource(uris=list(spec.inputs))}
    if spec.output.startswith(BQ):
        sink = {
            "predictions_format": "bigquery",
            "bigquery_destination": types.BigQueryDestination(output_uri=spec.output),
        }
    else:
        sink = {"predictions_format": "jsonl", "gcs_destination": types.GcsDestination(output_uri_prefix=spec.output)}
    Job = types.BatchPredictionJob
    return Job(
        display_name=spec.display_name,
        unmanaged_container_model=types.UnmanagedContainerModel(
            artifact_uri=spec.model_uri, container_spec=types.ModelContainerSpec(**container.container_spec(spec.image))
        ),
        input_config=Job.InputConfig(**source),
        # Objects, as the server takes them; the key goes beside the prediction, not into the instance.
        instance_config=Job.InstanceConfig(
            instance_type="object", key_field=KEY, included_fields=[*FEATURES, KEY] if spec.from_bigquery else []
        ),
        output_config=Job.OutputConfig(**sink),
        dedicated_resources=types.BatchDedicatedResources(
            machine_spec=types.MachineSpec(machine_type=spec.machine_type),
            starting_replica_count=spec.starting_replicas,
            max_replica_count=spec.max_replicas,
        ),
        manual_batch_tuning_parameters=types.ManualBatchTuningParameters(batch_size=spec.batch_size),
        service_account=spec.service_account,
        labels={"app": "taxifare", **spec.labels},
    )


def client(region: str, api_endpoint: str = "", credentials: Any = None) -> Any:
    from google.api_core.client_options import ClientOptions
    from google.cloud.aiplatform_v1 import JobServiceClient

    endpoint = api_endpoint or f"{region}-aiplatform.googleapis.com"
    if credentials is None and endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()  # a local recorder or gateway: no Google credentials
    return JobServiceClient(
        credentials=credentials, transport="rest", client_options=ClientOptions(api_endpoint=endpoint)
    )


def submit(jobs: Any, project: str, region: str, spec: JobSpec) -> Any:
    return jobs.create_batch_prediction_job(
        parent=f"projects/{project}/locations/{region}", batch_prediction_job=job(spec)
    )


def wait(jobs: Any, name: str, timeout: float, poll: float = 30.0, say: Callable[[str], None] = print) -> Any:
    """Poll until the job ends; past `timeout` it is cancelled (it would go on costing) and CloudError says so."""
    deadline, seen = time.monotonic() + timeout, ""
    while True:
        found = jobs.get_batch_prediction_job(name=name)
        state = found.state.name
        if state != seen:
            say(f"{name}: {state}")
            seen = state
        if state in TERMINAL:
            return found
        if time.monotonic() > deadline:
            jobs.cancel_batch_prediction_job(name=name)
            raise CloudError(f"{name} did not finish within {timeout:.0f}s (batch_timeout): it was cancelled")
        time.sleep(poll)


def outcome(found: Any) -> dict[str, Any]:
    """What the job did: its state, counts and where the predictions are; CloudError when it failed."""
    stats, info = found.completion_stats, found.output_info
    result = {
        "job": found.name,
        "state": found.state.name,
        "successful": int(stats.successful_count),
        "failed": int(stats.failed_count),
        "incomplete": int(stats.incomplete_count),
        "output": info.gcs_output_directory or info.bigquery_output_table or info.bigquery_output_dataset,
    }
    if result["state"] not in ("JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"):
        raise CloudError(f"{found.name} ended {result['state']}: {found.error.message or 'no reason given'}")
    return result


def summary(result: Mapping[str, Any]) -> list[str]:
    lines = [f"Vertex AI scored {result['successful']:,} instances ({result['failed']:,} failed): {result['output']}"]
    if result["state"] != "JOB_STATE_SUCCEEDED":
        lines.append(f"{result['job']} ended {result['state']}: see its error files beside the predictions")
    return lines


# --- one region ------------------------------------------------------------------------------


def location_of(uri: str, storage: Any = None, bq: Any = None) -> str | None:
    """The location of a gs:// bucket or a bq:// dataset, as its service names it; None for a bq:// project
    alone (the job then creates a dataset in its own region)."""
    if uri.startswith("gs://"):
        from trainer import gcs

        bucket = gcs.split(uri)[0]
        return str((storage or gcs.client()).get_bucket(bucket).location)
    if uri.startswith(BQ):
        parts = uri[len(BQ) :].split(".")
        if len(parts) < 2:
            return None
        from taxifare.cloud import bigquery

        return str((bq or bigquery.client(parts[0])).get_dataset(f"{parts[0]}.{parts[1]}").location)
    raise UsageError(f"{uri!r} is neither gs:// nor bq://")


def in_region(location: str, region: str) -> bool:
    """Vertex AI batch prediction reads and writes in the job's region, or in the multi-region holding it."""
    where = location.lower()
    return where == region.lower() or where == MULTI_REGIONS.get(region.split("-")[0], "")


def check_regions(region: str, uris: Mapping[str, str], storage: Any = None, bq: Any = None) -> None:
    """Each of the model, input and output (named in `uris`) in the job's region: one UsageError naming all."""
    wrong = []
    for what, uri in uris.items():
        if uri and (where := location_of(uri, storage, bq)) is not None and not in_region(where, region):
            wrong.append(f"the {what} {uri} is in {where}")
    if wrong:
        raise UsageError(
            f"{'; '.join(wrong)}, but the batch prediction job runs in {region}: Vertex AI reads and writes only in "
            "its region or the multi-region holding it",
            f"copy the data to (or write to) a bucket or dataset in {region}, or run in their region",
        )


# --- input as instance objects -----------------------------------------------------------------


def prepare(spec: str, folder: str, rejected: str) -> tuple[list[str], Any]:
    """Read and check the input files; write the valid rows as JSON lines of instance objects (with their
    key) into `folder`, the rejected ones to `rejected`; return the files written and the counts."""
    import msgspec

    from taxifare.batch import inputs, outputs, scoring

    os.makedirs(folder, exist_ok=True)
    encode = msgspec.json.Encoder().encode_lines
    result = scoring.Result(files=inputs.expand(spec), output=folder, errors=rejected)
    errors = outputs.Writer(rejected, "csv", outputs.ERROR_COLUMNS)
    files: list[str] = []
    shard: Any = None
    in_shard = SHARD_ROWS
    try:
        for part in inputs.read(result.files):
            if in_shard >= SHARD_ROWS:
                shard = _next_shard(shard, folder, files)
                in_shard = 0
            table = np.stack([part.columns[name] for name in FEATURES], axis=1).tolist()
            rows = [dict(zip(FEATURES, values, strict=True)) for values in table]
            for row, key in zip(rows, part.keys.to_pylist(), strict=True):
                row[KEY] = key
            shard.write(encode(rows))
            in_shard += len(rows)
            result.rows, result.scored = result.rows + part.rows, result.scored + len(rows)
            result.rejected.update(r.reason for r in part.rejects)
            if part.rejects:
                errors.table(outputs.rejects(part.rejects))
    except BaseException:
        errors.abort()
        raise
    finally:
        if shard is not None:
            shard.close()
    errors.finish(result.marked())
    return files, result


def _next_shard(shard: Any, folder: str, files: list[str]) -> Any:
    if shard is not None:
        shard.close()
    files.append(os.path.join(folder, f"instances-{len(files):05d}.jsonl"))
    return open(files[-1], "wb")  # closed by prepare()


def gcs_uris(paths: Sequence[str]) -> list[str]:
    """gs:// forms of paths under Vertex AI's /gcs/ mount."""
    from taxifare.registry.vertex import gcs_uri

    return [gcs_uri(p) for p in paths]


def run(
    spec: JobSpec,
    project: str,
    region: str,
    timeout: float,
    api_endpoint: str = "",
    poll: float = 30.0,
    storage: Any = None,
    bq: Any = None,
) -> dict[str, Any]:
    """Check the regions, submit the job, wait for it; what it did (CloudError if it failed)."""
    uris = {"model": spec.model_uri, "input": spec.inputs[0], "output": spec.output}
    check_regions(region, uris, storage, bq)
    jobs = client(region, api_endpoint)
    created = submit(jobs, project, region, spec)
    print(f"created {created.name}", flush=True)
    return outcome(wait(jobs, created.name, timeout, poll))
