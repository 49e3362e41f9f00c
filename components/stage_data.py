"""Step 1, stage_data: read a source, validate every row, split deterministically by key."""

import hashlib
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent

from trainer import features, sources

SPLITS = ("train", "valid", "test")
_HASH_SCALE = float(2**64)


def split_index(keys: Sequence[object] | np.ndarray, valid_fraction: float, test_fraction: float) -> np.ndarray:
    """0 train, 1 valid, 2 test: a stable hash of each key, so a trip never changes split."""
    u = np.fromiter(
        (int.from_bytes(hashlib.blake2b(str(k).encode(), digest_size=8).digest(), "big") / _HASH_SCALE for k in keys),
        dtype=np.float64,
        count=len(keys),
    )
    return np.where(u < test_fraction, 2, np.where(u < test_fraction + valid_fraction, 1, 0))


def _schema() -> pa.Schema:
    return pa.schema([(c, pa.string() if c == features.KEY else pa.float64()) for c in features.CSV_COLUMNS])


def _batch(columns: sources.Columns, mask: np.ndarray | None = None) -> pa.RecordBatch:
    pick = (lambda a: a[mask]) if mask is not None else (lambda a: a)
    return pa.record_batch(
        [pa.array(pick(columns[c]), type=t) for c, t in zip(_schema().names, _schema().types, strict=True)],
        schema=_schema(),
    )


def stage(
    out_paths: dict[str, str],
    source: str = "",
    train_source: str = "",
    valid_source: str = "",
    test_source: str = "",
    valid_fraction: float = features.VALID_FRACTION,
    test_fraction: float = features.TEST_FRACTION,
    max_bad_fraction: float = features.DEFAULT_MAX_BAD_FRACTION,
    bq_table: str = "",
    bq_query: str = "",
    bq_sample: int = 0,
    project: str = "",
    export_dir: str = "",
    bq_client: Any = None,
) -> dict:
    """Write validated train/valid/test CSVs (canonical header) and return the counts.

    With bq_table or bq_query the rows are first exported from BigQuery to CSV files under
    export_dir (gs:// or local), which then count as `source`.
    """
    separate = {"train": train_source, "valid": valid_source, "test": test_source}
    # Parameters first: a BigQuery export costs money and time.
    if not (0 < valid_fraction < 1 and 0 < test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ValueError("valid_fraction and test_fraction must be in (0, 1) and sum to less than 1")
    if bq_table or bq_query:
        if source or any(separate.values()):
            raise ValueError("give a BigQuery source (bq_table or bq_query) or file sources, not both")
        if not export_dir:
            raise ValueError("a BigQuery source needs export_dir: where the exported CSV files go")
        from cloud import bigquery

        source = bigquery.export_source(export_dir, bq_table, bq_query, bq_sample, project, bq_client)
    if source and any(separate.values()):
        raise ValueError("give either source (split by key) or train/valid/test sources, not both")
    if not source and not all(separate.values()):
        missing = [k for k, v in separate.items() if not v]
        raise ValueError(f"no data: give source, or all of train/valid/test sources (missing: {', '.join(missing)})")

    totals = sources.ReadStats()
    counts = dict.fromkeys(SPLITS, 0)
    writers = {}
    try:
        for split in SPLITS:
            os.makedirs(os.path.dirname(out_paths[split]) or ".", exist_ok=True)
            writers[split] = pacsv.CSVWriter(out_paths[split], _schema())
        if source:
            for chunk in sources.iter_chunks(
                sources.expand_paths(source), max_bad_fraction=max_bad_fraction, totals=totals
            ):
                which = split_index(chunk[features.KEY], valid_fraction, test_fraction)
                for i, split in enumerate(SPLITS):
                    mask = which == i
                    if mask.any():
                        writers[split].write_batch(_batch(chunk, mask))
                        counts[split] += int(mask.sum())
        else:
            for split, spec in separate.items():
                for chunk in sources.iter_chunks(
                    sources.expand_paths(spec), max_bad_fraction=max_bad_fraction, totals=totals
                ):
                    writers[split].write_batch(_batch(chunk))
                    counts[split] += len(chunk[features.KEY])
    finally:
        for writer in writers.values():
            writer.close()
    empty = [s for s in SPLITS if counts[s] == 0]
    if empty:
        raise ValueError(f"split(s) {', '.join(empty)} got no rows: add data or change the fractions")
    return {
        "rows_read": totals.rows,
        "rows_kept": totals.kept,
        "rejected": dict(sorted(totals.rejected.items())),
        "split_rows": counts,
        "files": totals.files,
        "fingerprint": fingerprint(out_paths[s] for s in SPLITS),
    }


def fingerprint(paths: object) -> str:
    digest = hashlib.sha256()
    for path in paths:  # type: ignore[attr-defined]
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


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
    train: Output[Dataset],
    valid: Output[Dataset],
    test: Output[Dataset],
    metrics: Output[Metrics],
):
    """Validate the source rows and split them by a hash of their key.

    Args:
        source: CSV file, glob or comma-separated list (local, gs://, https://) to split by key.
        train_source: instead of source, the training rows as given.
        valid_source: with train_source, the validation rows.
        test_source: with train_source, the test rows.
        valid_fraction: share of keys that go to the validation split.
        test_fraction: share of keys that go to the test split.
        max_bad_fraction: fail when a file has a larger share of invalid rows.
        bq_table: instead of files, a BigQuery trips table, e.g. bigquery-public-data.new_york.tlc_yellow_trips_2015.
        bq_query: instead of files, BigQuery SQL returning the schema's columns.
        bq_sample: with bq_table/bq_query, keep one trip in N by a repeatable hash (0: all).
        project: the Google Cloud project that runs (and pays for) the BigQuery job.
    """
    import os

    from components.stage_data import record, stage

    outputs = {"train": train, "valid": valid, "test": test}
    result = stage(
        {name: art.path for name, art in outputs.items()},
        source, train_source, valid_source, test_source, valid_fraction, test_fraction, max_bad_fraction,
        bq_table, bq_query, bq_sample, project, export_dir=os.path.join(os.path.dirname(train.uri), "bq-export"),
    )  # fmt: skip
    record(result, outputs, metrics)


def record(result: dict, outputs: dict, metrics: Metrics) -> None:
    """Counts into the Metrics artifact (the console shows them) and the datasets' metadata."""
    for name, art in outputs.items():
        art.metadata.update({"rows": result["split_rows"][name], "fingerprint": result["fingerprint"]})
    metrics.log_metric("rows_read", result["rows_read"])
    metrics.log_metric("rows_kept", result["rows_kept"])
    for reason in features.REJECT_REASONS:
        metrics.log_metric(f"rejected_{reason}", result["rejected"].get(reason, 0))
    for split, n in result["split_rows"].items():
        metrics.log_metric(f"{split}_rows", n)
    # A file at the artifact's path: kfp's local cache treats a missing one as a miss.
    with open(metrics.path, "w") as f:
        json.dump(result, f, indent=2)


def component(image: str) -> "PythonComponent":
    return dsl.component(stage_data, base_image=image, install_kfp_package=False)
