"""stage_data's work: read a source, validate every row, split deterministically by key.

The rows go to one CSV per split (train, valid, test) with the canonical header; with a
BigQuery source they are first exported to CSV files (taxifare/cloud/bigquery.py). A trip's
split is a stable hash of its key, so it never changes split between runs or sources.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from taxifare.errors import DataError, UsageError
from trainer import data_files, drift, features, sources
from trainer.config import Source

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
    schema = _schema()
    return pa.record_batch(
        [pa.array(pick(columns[c]), type=t) for c, t in zip(schema.names, schema.types, strict=True)], schema=schema
    )


def stage(
    out_paths: dict[str, str],
    src: Source,
    max_bad_fraction: float = features.DEFAULT_MAX_BAD_FRACTION,
    project: str = "",
    export_dir: str = "",
    bq_client: Any = None,
    reference: dict[str, Any] | None = None,
    drift_threshold: float = 0.0,
) -> dict:
    """Write validated train/valid/test CSVs (canonical header) and return the counts.

    With bq_table or bq_query the rows are first exported from BigQuery to CSV files under
    export_dir (gs:// or local), which then count as `source`. With `reference` (the champion's
    training statistics) the staged rows are compared with it: the result's "drift" (check_drift
    stops a run on it).
    """
    src.check()  # before anything costs: a BigQuery export costs money and time
    given = src
    if src.bq_table or src.bq_query:
        if not export_dir:
            raise UsageError("a BigQuery source needs export_dir: where the exported CSV files go")
        from taxifare.cloud import bigquery

        exported = bigquery.export_source(export_dir, src.bq_table, src.bq_query, src.bq_sample, project, bq_client)
        src = dataclasses.replace(src, source=exported, bq_table="", bq_query="")
    totals = sources.ReadStats()
    tally = drift.Tally(reference) if reference is not None else None
    counts = _write_splits(out_paths, src, max_bad_fraction, totals, tally)
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
        "test_fingerprint": fingerprint([out_paths["test"]]),
        "source": source_identity(given),
        "schema": features.SCHEMA.fingerprint(),
        "drift": drift.compare(tally, drift_threshold) if tally is not None else None,
    }


def source_identity(src: Source) -> str:
    """Where the rows come from, in words a model's lineage keeps: a BigQuery table or query, the
    generated sample, or the files as given (a pattern names the same source whatever rows it holds)."""
    from trainer import sample_data

    if src.bq_table or src.bq_query:
        what = (
            f"table {src.bq_table}"
            if src.bq_table
            else f"query {hashlib.sha256(src.bq_query.encode()).hexdigest()[:12]}"
        )
        return f"bigquery {what}" + (f" (1 in {src.bq_sample})" if src.bq_sample > 1 else "")
    specs = [src.source] if src.source else list(src.separate.values())
    paths = [p for spec in specs for p in spec.split(",") if p]
    made = [sample_data.generated(p) if "://" not in p else None for p in paths]
    if paths and all(made):
        return "generated sample"
    return "files " + (src.source or ";".join(f"{k}={v}" for k, v in src.separate.items()))


def _write_splits(
    out_paths: dict[str, str],
    src: Source,
    max_bad_fraction: float,
    totals: sources.ReadStats,
    tally: drift.Tally | None = None,
) -> dict[str, int]:
    """Validated rows to one CSV per split: by key hash from `source`, or as given per split (each
    counted into `tally`'s bins too)."""
    counts = dict.fromkeys(SPLITS, 0)
    writers: dict[str, pacsv.CSVWriter] = {}

    def chunks(spec: str) -> Any:
        paths = data_files.expand_paths(spec)
        for chunk in sources.iter_chunks(paths, max_bad_fraction=max_bad_fraction, totals=totals):
            if tally is not None:
                tally.add(chunk)
            yield chunk

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


def fingerprint(paths: Iterable[str]) -> str:
    """The staged rows' identity: the same rows in the same files, the same fingerprint."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def metrics(result: dict) -> dict[str, float]:
    """The counts as flat metrics (what the console's Metrics artifact shows), and the drift's when compared."""
    out: dict[str, float] = {"rows_read": result["rows_read"], "rows_kept": result["rows_kept"]}
    out.update({f"rejected_{r}": result["rejected"].get(r, 0) for r in features.REJECT_REASONS})
    out.update({f"{split}_rows": n for split, n in result["split_rows"].items()})
    if result.get("drift"):
        out.update(drift.metrics(result["drift"]))
    return out


def champion_profile(
    deploy_target: str, registry: str, project: str = "", region: str = ""
) -> tuple[str, Any, str | None]:
    """The current champion's name, training statistics (None for a champion trained before they were
    saved) and data source (None where not recorded); ("", None, None) when there is no champion yet."""
    if deploy_target == "vertex":
        from taxifare.registry.vertex import VertexRegistry

        found = VertexRegistry(project, region, registry).champion()
        return (found.model, drift.load(found.artifact_uri), None) if found else ("", None, None)
    from taxifare.registry.local import LocalRegistry

    champion = LocalRegistry(registry).champion() if registry else None
    if champion is None:
        return "", None, None
    source = champion.metadata.get("source")
    return f"the champion {champion.name}", drift.load(champion.model_dir), source if isinstance(source, str) else None


def check_drift(result: dict, champion: str, champion_source: str | None = None) -> None:
    """Stop a training run whose new data moved from the champion's beyond the threshold: a feed that changed
    (a unit, a swapped column) would otherwise train a model that the evaluation, on a test split of the
    same changed data, could bless. For new rows of the champion's own source, or a champion whose source
    is not recorded: data of another source differs by nature, and whether it may replace the champion is
    the gate's question (allow_new_source)."""
    report = result.get("drift")
    if report and report["flagged"] and champion_source in (None, result.get("source")):
        moved = ", ".join(f"{n} {report['psi'][n]:.2f}" for n in report["drifted"])
        raise DataError(
            f"the staged data moved from the training data of {champion} (PSI {moved}, beyond "
            f"{report['threshold']:g}): stopped before training, nothing deployed",
            "if the change is real, rerun with a higher --drift-threshold (or 0 to leave the check out)",
        )


def summary(result: dict, champion: str = "") -> list[str]:
    splits = " / ".join(f"{s} {result['split_rows'][s]}" for s in SPLITS)
    lines = [f"rows read {result['rows_read']}, kept {result['rows_kept']}: {splits}"]
    rejected = [(r, result["rejected"].get(r, 0)) for r in features.REJECT_REASONS]
    if shown := [f"{reason} {n}" for reason, n in rejected if n]:
        lines.append("rejected: " + ", ".join(shown))
    if champion:
        lines += drift.summary(result.get("drift"), champion)
    return lines
