"""The batch pipeline's drift check: the input counted into the bins of the model's training statistics
(trainer/drift.py), from files a block at a time, or from a BigQuery table by one query.

For a table, BigQuery does the counting: `RANGE_BUCKET(value, [edges])` is the bin numpy's
`searchsorted(edges, value, side="right")` gives, so the figures are the ones the same rows would
give read from a file; only rows whose features are inside the feature table's ranges count (as the
files' valid rows do).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taxifare.errors import UsageError
from trainer import drift as profiles
from trainer import features

BQ_PREFIX = "bq://"


def check_input(
    model_dir: str, spec: str, threshold: float, project: str = "", bq: Any = None
) -> dict[str, Any] | None:
    """The drift report of the input `spec` (files, or bq://PROJECT.DATASET.TABLE) against the model in
    `model_dir`, or None when the model has no training statistics."""
    reference = profiles.load(model_dir)
    if reference is None:
        return None
    tally = profiles.Tally(reference)
    read = rejected = 0
    if spec.startswith(BQ_PREFIX):
        _count_table(tally, table_of(spec), project, bq)
        read = tally.rows
    else:
        from taxifare.batch import inputs

        for part in inputs.read(inputs.expand(spec)):
            tally.add(part.columns)
            read, rejected = read + part.rows, rejected + len(part.rejects)
    report = profiles.compare(tally, threshold)
    report.update(input=spec, rows_read=read, rows_rejected=rejected)
    return report


def table_of(uri: str) -> str:
    """PROJECT.DATASET.TABLE from bq://PROJECT.DATASET.TABLE, checked."""
    from taxifare.cloud import bigquery

    if not uri.startswith(BQ_PREFIX):
        raise UsageError(f"{uri!r} is not a BigQuery table", "give bq://PROJECT.DATASET.TABLE")
    return bigquery.check_table(uri[len(BQ_PREFIX) :])


def distance_sql() -> str:
    """trainer.drift.distance_km in BigQuery SQL."""
    dx = f"((dropofflon - pickuplon) * {features.KM_PER_DEG_LON!r})"
    dy = f"((dropofflat - pickuplat) * {features.KM_PER_DEG_LAT!r})"
    return f"SQRT({dx} * {dx} + {dy} * {dy})"


def counts_query(table: str, reference: Mapping[str, Any]) -> str:
    """One query: for each profiled feature, the valid rows in each of the reference's bins."""
    valid = " AND ".join(
        f"{name} BETWEEN {low!r} AND {high!r}" for name, (low, high) in features.RANGES.items()
    )  # the table's columns are the feature table's names (as the batch job sends them)
    parts = []
    for name in profiles.PROFILED:
        value = distance_sql() if name == profiles.DISTANCE else name
        edges = ", ".join(repr(float(e)) for e in reference["features"][name]["edges"])
        parts.append(
            f"SELECT '{name}' AS feature, RANGE_BUCKET({value}, [{edges}]) AS bin, COUNT(*) AS n "
            f"FROM `{table}` WHERE {valid} GROUP BY bin"
        )
    return "\nUNION ALL\n".join(parts)


def _count_table(tally: profiles.Tally, table: str, project: str, bq: Any) -> None:
    from taxifare.cloud import bigquery

    client = bq if bq is not None else bigquery.client(project)
    bins: dict[str, dict[int, int]] = {name: {} for name in profiles.PROFILED}
    for row in client.query(counts_query(table, tally.reference)).result():
        bins[row["feature"]][int(row["bin"])] = int(row["n"])
    for name in profiles.PROFILED:
        tally.add_counts(name, bins[name])


def markdown(report: Mapping[str, Any] | None, model: str) -> str:
    """The report as the Markdown the Vertex AI console and the KFP UI show on the step."""
    lines = ["# Drift", ""]
    lines += [f"{line}  " for line in profiles.summary(report, model)]
    if report and report["psi"]:
        lines += ["", "| feature | PSI | |", "| --- | ---: | --- |"]
        for name, value in report["psi"].items():
            mark = "**drifted**" if name in report["drifted"] else ""
            lines.append(f"| {name} | {value:.3f} | {mark} |")
        seen = report.get("rows_seen", report["rows"])
        lines += [
            "",
            f"{seen:,} valid rows ({report['rows']:,} counted) against {report['reference_rows']:,} training rows.",
        ]
    return "\n".join(lines) + "\n"
