"""A run in a few stable fields: what `taxifare runs list --json` prints and the console's runs table shows.

Everything here reads a RunRecord, whose `params` and task `outputs` are free-form (a record is
untrusted input): a value of an unexpected type is passed over, never a crash. The keys of
`to_json` are documented in the README and kept stable.
"""

from __future__ import annotations

import math
import time
from typing import Any

from taxifare.runs.records import RunRecord
from taxifare.runs.status import Status

# Parameters that say where the data came from (shown as the data source, not as parameters).
SOURCE_PARAMS = ("source", "train_source", "valid_source", "test_source", "bq_table", "bq_query")
# Parameters a local run sets itself: the same in every run, never what tells runs apart.
PLUMBING = ("run_id", "registry", "deploy_target", "project", "region", "bucket")


def number(value: Any) -> float | None:
    """A finite int or float (not a bool), as a float; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _artifacts(record: RunRecord) -> list[tuple[str, str, dict[str, Any]]]:
    """(task, output name, artifact) for every dict output, tasks in DAG order (then any others)."""
    names = [t.name for t in record.dag] + [n for n in record.tasks if n not in {t.name for t in record.dag}]
    out = []
    for name in names:
        task = record.tasks.get(name)
        for key, value in (task.outputs if task else {}).items():
            if isinstance(value, dict):
                out.append((name, key, value))
    return out


def metrics(record: RunRecord) -> dict[str, float]:
    """Every figure the run's Metrics artifacts logged (outputs named `metrics` or `*_metrics`), by
    name; a name two tasks logged keeps the first task's (in DAG order)."""
    found: dict[str, float] = {}
    for _, key, artifact in _artifacts(record):
        if key == "metrics" or key.endswith("_metrics"):
            for name, value in artifact.items():
                figure = number(value)
                if figure is not None and isinstance(name, str):
                    found.setdefault(name, figure)
    return found


def staged(record: RunRecord, field: str) -> str | None:
    """A field the staging step wrote on its datasets (source, fingerprint, test_fingerprint)."""
    for _, _, artifact in _artifacts(record):
        value = artifact.get(field)
        if isinstance(value, str) and value:
            return value
    return None


def source(record: RunRecord) -> str | None:
    """Where the run's data came from: what staging said (e.g. `generated sample`), else its parameters."""
    said = staged(record, "source")
    if said:
        return said
    given = [f"{k} {v}" for k in SOURCE_PARAMS if isinstance(v := record.params.get(k), str) and v]
    return "; ".join(given) or None


def parameters(record: RunRecord) -> dict[str, Any]:
    """The run's parameters less its data source and the plumbing every local run sets."""
    return {k: v for k, v in record.params.items() if k not in SOURCE_PARAMS and k not in PLUMBING}


def duration(record: RunRecord, now: float | None = None) -> float | None:
    """Seconds the run took, or has taken so far while it runs."""
    if record.seconds is not None:
        return record.seconds
    if record.status == Status.RUNNING and record.started:
        return max((now or time.time()) - record.started, 0.0)
    return None


def outcome(record: RunRecord) -> str:
    """What the run came to, in a line: its error, or the last line of the last step that said one."""
    try:
        return record.headline
    except (AttributeError, TypeError):  # a record's DAG is what it says; a damaged one says nothing
        return record.error or ""


def to_json(record: RunRecord) -> dict[str, Any]:
    """One run for `runs list --json` (stable keys, documented in the README)."""
    change = record.registry_change
    return {
        "run_id": record.run_id,
        "pipeline": record.pipeline,
        "status": str(record.status),
        "started": record.started,
        "seconds": record.seconds,
        "source": source(record),
        "data_fingerprint": staged(record, "fingerprint"),
        "test_fingerprint": staged(record, "test_fingerprint"),
        "params": record.params,
        "metrics": metrics(record),
        "outcome": outcome(record),
        "deployed_version": record.deployed_version,
        "champion_change": list(change.champion) if change and change.champion else None,
        "failed_task": record.failed_task,
        "error": record.error,
        "folder": record.folder,
    }
