"""Step 1, stage_data: read a source, validate every row, split deterministically by key
(the work: taxifare/staging.py)."""

from typing import TYPE_CHECKING

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Metrics, Output

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent


def stage_data(
    source: str,
    train_source: str,
    valid_source: str,
    test_source: str,
    valid_fraction: float,
    test_fraction: float,
    max_bad_fraction: float,
    bq_table: str,
    bq_query: str,
    bq_sample: int,
    project: str,
    deploy_target: str,
    registry: str,
    region: str,
    drift_threshold: float,
    train: Output[Dataset],
    valid: Output[Dataset],
    test: Output[Dataset],
    metrics: Output[Metrics],
    drift: Output[Artifact],
):
    """Validate the source rows and split them by a hash of their key; stop if they drifted from the champion's."""
    import json
    import os

    from components import record
    from taxifare import staging
    from trainer import events
    from trainer.config import Source

    splits = {"train": train, "valid": valid, "test": test}
    src = Source(source, train_source, valid_source, test_source, valid_fraction, test_fraction, bq_table, bq_query,
                 bq_sample)  # fmt: skip
    export_dir = os.path.join(os.path.dirname(train.uri), "bq-export")
    champion, reference, champion_source = staging.champion_profile(deploy_target, registry, project, region)
    result = staging.stage({n: art.path for n, art in splits.items()}, src, max_bad_fraction, project, export_dir,
                           reference=reference, drift_threshold=drift_threshold)  # fmt: skip
    for name, art in splits.items():
        lineage = {k: result[k] for k in ("fingerprint", "test_fingerprint", "source", "schema")}
        art.metadata.update({"rows": result["split_rows"][name], **lineage})
    with open(drift.path, "w") as f:
        json.dump(result["drift"] or {"checked": False, "champion": champion}, f)
    record(metrics, staging.metrics(result), result)
    events.summary(*staging.summary(result, champion))
    staging.check_drift(result, champion, champion_source)


def component(image: str) -> "PythonComponent":
    return dsl.component(stage_data, base_image=image, install_kfp_package=False)
