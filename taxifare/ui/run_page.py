"""One run as the console shows it: the DAG drawn from its record (taxifare.report.run draws it, live
durations filled in), each task with what it said, its parameters, metrics and artifacts, and
the evaluation visuals.

A task's outputs are shown generically, so a step added later (tuning trials, drift figures)
appears with no change here: a plain value is an output parameter; a dict named `metrics` (or
`*_metrics`) is a table of figures; any other dict is an artifact (`uri` plus its metadata), whose
file, when it lies inside the run's folder, is linked and, when it is a picture or an HTML page,
shown (an HTML page in a sandboxed frame); a list of objects (trials, say) is a table.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

from taxifare.report import run as run_report
from taxifare.runs import summary
from taxifare.runs.records import RunRecord, TaskRecord
from taxifare.runs.status import Status
from taxifare.ui import files

MAX_TEXT = 400  # a metadata value longer than this is cut in the page (the file has it whole)
MAX_TABLE_ROWS = 200
INLINE_TEXT_BYTES = 64 << 10
TABLE_FILE_BYTES = 1 << 20


@dataclass
class Artifact:
    name: str
    uri: str
    path: str | None  # relative to the run's folder, when it lies inside it
    what: str  # file kind (files.kind), "folder", or "missing"
    metadata: list[tuple[str, str]] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)
    text: str | None = None  # a small text file, shown as it is
    embedded: bool = False  # evaluate's report: its visuals are on the page already


@dataclass
class Task:
    name: str
    display: str
    state: str
    seconds: float | None
    condition: str
    upstream: tuple[str, ...]
    summary: list[str]
    error: str | None
    parameters: list[tuple[str, str]] = field(default_factory=list)
    metrics: list[tuple[str, float]] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)


def text(value: Any, limit: int = MAX_TEXT) -> str:
    """Any JSON value as a short line of text."""
    if isinstance(value, str):
        shown = value
    elif isinstance(value, float):
        shown = f"{value:.6g}"
    else:
        shown = json.dumps(value, default=str, separators=(", ", ": "))
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def table_of(items: Any) -> tuple[list[str], list[list[str]]] | None:
    """A list of JSON objects (e.g. tuning trials) as (columns, rows); None if it is not one."""
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        return None
    columns = list(dict.fromkeys(str(k) for i in items[:MAX_TABLE_ROWS] for k in i))[:30]
    rows = [[text(i.get(c, ""), 80) for c in columns] for i in items[:MAX_TABLE_ROWS]]
    return columns, rows


def elapsed(task: TaskRecord, now: float) -> float | None:
    if task.seconds is not None:
        return task.seconds
    if task.state == Status.RUNNING and isinstance(task.started, int | float):
        return max(now - task.started, 0.0)
    return None


def _artifact(record: RunRecord, name: str, value: dict[str, Any]) -> Artifact:
    uri = value.get("uri")
    uri = uri if isinstance(uri, str) else ""
    relative = files.within(record.folder, uri) if uri else None
    art = Artifact(name, uri, relative, "missing")
    for key, meta in value.items():
        if key == "uri":
            continue
        if (found := table_of(meta)) is not None:
            art.tables.append((str(key), *found))
        else:
            art.metadata.append((str(key), text(meta)))
    if relative is None:
        return art
    real = os.path.join(os.path.realpath(record.folder), relative)
    if os.path.isdir(real) and not os.path.islink(real):
        art.what = "folder"
        return art
    head = files.read_head(real, INLINE_TEXT_BYTES + 1)
    if head is None:
        return art
    art.what = files.kind(relative, head)
    if art.what == "html" and name == "report" and b"<!-- evaluation -->" in head:
        art.embedded = True
    elif art.what == "text" and len(head) <= INLINE_TEXT_BYTES:
        _inline_text(art, real, head)
    return art


def _inline_text(art: Artifact, path: str, head: bytes) -> None:
    """A small text file: a JSON list of objects becomes a table, anything else is shown as text."""
    body = head.decode("utf-8", "replace")
    try:
        found = table_of(json.loads(body))
    except (ValueError, RecursionError):
        found = None
    if found is not None:
        art.tables.append((os.path.basename(path), *found))
    elif body.strip():
        art.text = body


def task_view(record: RunRecord, name: str, now: float) -> Task:
    spec = next((t for t in record.dag if t.name == name), None)
    task = record.task(name)
    view = Task(name, spec.display if spec else name, str(task.state), elapsed(task, now),
                spec.condition if spec else "", spec.upstream if spec else (), list(task.summary),
                task.error)  # fmt: skip
    for key, value in task.outputs.items():
        if not isinstance(value, dict):
            view.parameters.append((key, text(value)))
        elif key == "metrics" or key.endswith("_metrics"):
            view.metrics += [(k, f) for k, v in value.items() if (f := summary.number(v)) is not None]
            view.parameters += [(f"{key}.{k}", text(v)) for k, v in value.items()
                                if k != "uri" and summary.number(v) is None]  # fmt: skip
        else:
            view.artifacts.append(_artifact(record, key, value))
    return view


def tasks(record: RunRecord, now: float | None = None) -> list[Task]:
    now = time.time() if now is None else now
    names = [t.name for t in record.dag] + [n for n in record.tasks if n not in {t.name for t in record.dag}]
    return [task_view(record, n, now) for n in dict.fromkeys(names)]


def dag_svg(record: RunRecord, now: float | None = None) -> str | None:
    """The run report's drawing of the DAG, with a running task's time so far; None if the record's DAG
    cannot be drawn (a damaged record)."""
    now = time.time() if now is None else now
    live = {n: msgspec.structs.replace(t, seconds=elapsed(t, now)) for n, t in record.tasks.items()}
    try:
        return run_report.dag_svg(msgspec.structs.replace(record, tasks=live))
    except (RecursionError, KeyError, ValueError, TypeError):
        return None


def evaluation(record: RunRecord) -> str | None:
    """Evaluate's own visuals, as the run report embeds them (None when the run has none yet)."""
    try:
        found = run_report.evaluation_fragment(record)
    except (OSError, UnicodeDecodeError):
        return None
    return found if found and "evaluate did not run" not in found else None


def lineage(record: RunRecord) -> dict[str, Any]:
    """data -> run -> version(s): where the run's data came from and what it registered."""
    change = record.registry_change
    return {
        "source": summary.source(record),
        "fingerprint": summary.staged(record, "fingerprint"),
        "test_fingerprint": summary.staged(record, "test_fingerprint"),
        "versions": list(change.new_versions) if change else [],
        "champion": list(change.champion) if change and change.champion else None,
    }
