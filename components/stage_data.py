"""Step 1, stage_data: read a source, validate every row, split deterministically by key."""

import dataclasses
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

from taxifare.errors import DataError, UsageError
from trainer import features, settings, sources
from trainer.settings import non_negative, open_fraction, setting

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


@dataclasses.dataclass(frozen=True)
class Source:
    """Where stage_data reads rows and how it splits them: the step's settings, checked once."""

    source: str = setting("", "CSV file, glob or comma-separated list (local, gs://, https://) to split by key")
    train_source: str = setting("", "instead of source: the training rows, as given")
    valid_source: str = setting("", "with train_source: the validation rows")
    test_source: str = setting("", "with train_source: the test rows")
    valid_fraction: float = setting(features.VALID_FRACTION, "share of keys that go to the validation split",
                                    open_fraction)  # fmt: skip
    test_fraction: float = setting(features.TEST_FRACTION, "share of keys that go to the test split", open_fraction)
    bq_table: str = setting(
        "", "instead of files: a BigQuery trips table, e.g. bigquery-public-data.new_york.tlc_yellow_trips_2015"
    )
    bq_query: str = setting("", "instead of files: BigQuery SQL returning the schema's columns")
    bq_sample: int = setting(0, "with bq_table/bq_query: keep one trip in N by a repeatable hash (0: all)",
                             non_negative)  # fmt: skip

    @property
    def separate(self) -> dict[str, str]:
        return {"train": self.train_source, "valid": self.valid_source, "test": self.test_source}

    def problems(self) -> list[str]:
        """Each setting's own check, then how they go together."""
        found = settings.problems(self)
        if not found and self.valid_fraction + self.test_fraction >= 1:
            found.append("valid_fraction and test_fraction must sum to less than 1")
        files = bool(self.source) or any(self.separate.values())
        if (self.bq_table or self.bq_query) and files:
            found.append("give a BigQuery source (bq_table or bq_query) or file sources, not both")
        if self.bq_table and self.bq_query:
            found.append("give bq_table or bq_query, not both")
        if self.source and any(self.separate.values()):
            found.append("give either source (split by key) or train/valid/test sources, not both")
        if not self.source and not (self.bq_table or self.bq_query) and not all(self.separate.values()):
            missing = ", ".join(f"{k}_source" for k, v in self.separate.items() if not v)
            found.append(f"no data: give source, bq_table, or all of train/valid/test sources (missing: {missing})")
        return found

    def check(self) -> "Source":
        if found := self.problems():
            raise UsageError("; ".join(found))
        return self


def stage(
    out_paths: dict[str, str],
    src: Source,
    max_bad_fraction: float = features.DEFAULT_MAX_BAD_FRACTION,
    project: str = "",
    export_dir: str = "",
    bq_client: Any = None,
) -> dict:
    """Write validated train/valid/test CSVs (canonical header) and return the counts.

    With bq_table or bq_query the rows are first exported from BigQuery to CSV files under
    export_dir (gs:// or local), which then count as `source`.
    """
    src.check()  # before anything costs: a BigQuery export costs money and time
    if src.bq_table or src.bq_query:
        if not export_dir:
            raise UsageError("a BigQuery source needs export_dir: where the exported CSV files go")
        from taxifare.cloud import bigquery

        exported = bigquery.export_source(export_dir, src.bq_table, src.bq_query, src.bq_sample, project, bq_client)
        src = dataclasses.replace(src, source=exported, bq_table="", bq_query="")
    totals = sources.ReadStats()
    counts = _write_splits(out_paths, src, max_bad_fraction, totals)
    empty = [s for s in SPLITS if counts[s] == 0]
    if empty:
        raise DataError(f"split(s) {', '.join(empty)} got no rows", "add data or change the fractions")
    return {
        "rows_read": totals.rows,
        "rows_kept": totals.kept,
        "rejected": dict(sorted(totals.rejected.items())),
        "split_rows": counts,
        "files": totals.files,
        "fingerprint": fingerprint(out_paths[s] for s in SPLITS),
    }


def _write_splits(
    out_paths: dict[str, str], src: Source, max_bad_fraction: float, totals: sources.ReadStats
) -> dict[str, int]:
    """Validated rows to one CSV per split: by key hash from `source`, or as given per split."""
    counts = dict.fromkeys(SPLITS, 0)
    writers: dict[str, pacsv.CSVWriter] = {}

    def chunks(spec: str) -> Any:
        return sources.iter_chunks(sources.expand_paths(spec), max_bad_fraction=max_bad_fraction, totals=totals)

    def write(split: str, chunk: sources.Columns, mask: np.ndarray | None = None) -> None:
        writers[split].write_batch(_batch(chunk, mask))
        counts[split] += len(chunk[features.KEY]) if mask is None else int(mask.sum())

    try:
        for split in SPLITS:
            os.makedirs(os.path.dirname(out_paths[split]) or ".", exist_ok=True)
            writers[split] = pacsv.CSVWriter(out_paths[split], _schema())
        if src.source:
            for chunk in chunks(src.source):
                which = split_index(chunk[features.KEY], src.valid_fraction, src.test_fraction)
                for i, split in enumerate(SPLITS):
                    if (which == i).any():
                        write(split, chunk, which == i)
        else:
            for split, spec in src.separate.items():
                for chunk in chunks(spec):
                    write(split, chunk)
    finally:
        for writer in writers.values():
            writer.close()
    return counts


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
    """Validate the source rows and split them by a hash of their key."""
    import os

    from components.stage_data import Source, record, stage

    outputs = {"train": train, "valid": valid, "test": test}
    src = Source(source, train_source, valid_source, test_source, valid_fraction, test_fraction, bq_table, bq_query,
                 bq_sample)  # fmt: skip
    export_dir = os.path.join(os.path.dirname(train.uri), "bq-export")
    result = stage({n: art.path for n, art in outputs.items()}, src, max_bad_fraction, project, export_dir)
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
