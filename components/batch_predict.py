"""Batch step 3 (Vertex AI), batch_predict: a Vertex AI batch prediction job on this pipeline's image
(the work: taxifare/batch/vertex.py)."""

from typing import TYPE_CHECKING

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent


def batch_predict(
    chosen: Input[Model],
    drift: Input[Artifact],
    input: str,
    output: str,
    project: str,
    region: str,
    service_account: str,
    serving_image: str,
    job_name: str,
    batch_machine_type: str,
    batch_starting_replicas: int,
    batch_max_replicas: int,
    batch_size: int,
    batch_timeout: float,
    instances: Output[Dataset],
    rejected: Output[Dataset],
    predictions: Output[Artifact],
    metrics: Output[Metrics],
) -> str:
    """Score the input with a Vertex AI batch prediction job served by this image; wait for it."""
    from components import record
    from taxifare.batch import vertex
    from trainer import events

    lines = []
    if input.startswith(vertex.BQ):
        uris = [input]  # the job reads the table itself
        for art in (instances, rejected):
            with open(art.path, "w") as f:
                f.write(f"read by the job from {input}\n")
    else:
        files, prepared = vertex.prepare(input, instances.path, rejected.path)
        uris = vertex.gcs_uris(files)
        lines = prepared.summary()[:2]
    target = output or vertex.gcs_uris([predictions.path])[0]
    spec = vertex.JobSpec(
        f"{job_name}-batch"[-128:], chosen.uri, serving_image, tuple(uris), target, batch_machine_type,
        batch_starting_replicas, batch_max_replicas, batch_size, service_account,
    )  # fmt: skip
    result = vertex.run(spec, project, region, batch_timeout)
    predictions.metadata.update(result)
    record(metrics, {"instances_scored": result["successful"], "instances_failed": result["failed"]}, result)
    if drift.metadata.get("flagged"):
        lines.append(
            f"flagged: the input drifted from the model's training data (max PSI {drift.metadata['max_psi']:.2f})"
        )
    events.summary(*lines, *vertex.summary(result))
    return str(result["output"])


def component(image: str) -> "PythonComponent":
    return dsl.component(batch_predict, base_image=image, install_kfp_package=False)
