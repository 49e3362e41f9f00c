"""Terminal views of a run (its DAG with task states, from the run's record) and of the model registry."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from typing import Any

from taxifare.runs.records import RunRecord, TaskRecord
from taxifare.runs.status import Status

ICONS = {"succeeded": "✔", "failed": "✘", "skipped": "⊘", "running": "…", "pending": "·"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def task_line(name: str, state: str, seconds: float | None) -> str:
    took = f"{seconds:6.1f}s" if seconds is not None else "       "
    return f"{ICONS.get(str(state), '?')} {name:<15} {state!s:<10} {took}"


def _details(task: TaskRecord, record: RunRecord) -> list[str]:
    """What the step said of itself (its summary event), then where its logs are, then its error."""
    lines = list(task.summary)
    if any(isinstance(o, dict) and o.get("log_dir") for o in task.outputs.values()):
        lines.append(f"tensorboard: taxifare tensorboard {record.run_id}")
    if task.error:
        lines.append(task.error)
    return lines


def dag(record: RunRecord) -> str:
    """The run's tasks in DAG order, each with its state, time and details; a condition above the
    tasks it guards."""
    lines: list[str] = []
    condition = ""
    for i, t in enumerate(record.dag):
        if i:
            shown = t.condition if t.condition != condition else ""
            lines.append(f"│ if {shown}" if shown else ("│ finally" if t.exit else "│"))
        condition = t.condition
        task = record.task(t.name)
        lines.append(task_line(t.name, task.state, task.seconds))
        lines.extend(f"│     {detail}" for detail in _details(task, record))
    return "\n".join(lines)


def _outcome(record: RunRecord) -> list[str]:
    status = record.status
    if status in (Status.RUNNING, Status.INTERRUPTED, Status.UNREADABLE):
        what = {Status.RUNNING: "still running", Status.INTERRUPTED: "INTERRUPTED", Status.UNREADABLE: "UNREADABLE"}
        return [f"{what[status]}: {record.error or 'no outcome yet'}"]
    change = record.registry_change
    if status == Status.FAILED:
        lines = [f"FAILED in task {record.failed_task or '?'}: {record.error or ''}"]
        if change and change.champion:
            lines.append("The champion moved: {} -> {}.".format(*change.champion))
        elif change and change.new_versions:
            lines.append(f"The champion was not changed; version(s) {', '.join(change.new_versions)} were "
                         "registered but not promoted.")  # fmt: skip
        else:
            lines.append("The registry and its champion were not changed.")
        return lines
    version = record.deployed_version
    if "deploy_target" not in record.params:  # a pipeline that deploys nothing (batch)
        return []
    return [f"deployed: {version}" if version else "deployed: nothing (the champion stays)"]


def summary(record: RunRecord) -> str:
    started = dt.datetime.fromtimestamp(record.started).strftime("%Y-%m-%d %H:%M:%S")
    head = f"run {record.run_id}  {str(record.status).upper()}  started {started}"
    if record.seconds is not None:
        head += f", took {record.seconds:.1f}s"
    lines = [head, "", dag(record), "", *_outcome(record)]
    lines.append(f"details: taxifare runs show {record.run_id}   log: {record.log_path()}")
    report = os.path.join(record.folder, "report.html")
    lines.append(f"report: {report}" if os.path.isfile(report) else f"report: taxifare runs report {record.run_id}")
    return "\n".join(lines)


def shorten(text: str, width: int) -> str:
    """At most `width` characters, cut at a word boundary with an ellipsis, never mid-word."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text[: max(width - 1, 0)].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def runs_table(runs: list[RunRecord], width: int | None = None) -> str:
    """Newest first; the last column (what the run came to) takes what the terminal (or `width`) has left."""
    if not runs:
        return "no runs yet: `taxifare run` starts one"
    width = width or shutil.get_terminal_size((120, 24)).columns
    head = f"{'RUN':<22} {'PIPELINE':<8} {'STATUS':<11} {'SECONDS':>7} {'RMSE':>7} {'DEPLOYED':<8} "
    room = max(width - len(head), 8)
    lines = [head + "OUTCOME"]
    for r in runs:
        rmse = r.metric("candidate_rmse")
        seconds = f"{r.seconds:.1f}" if r.seconds is not None else "-"
        lines.append(
            f"{r.run_id:<22.22} {r.pipeline:<8.8} {r.status!s:<11} {seconds:>7} "
            f"{(f'{rmse:.3f}' if rmse is not None else '-'):>7} {r.deployed_version or '-':<8.8} "
            + shorten(r.headline, room)
        )
    return "\n".join(lines)


def models_table(versions: list[Any], champion: str | None) -> str:
    """Each version's RMSE on its own run's test split, and which data that was (SOURCE, TEST): figures
    of different test sets are not comparable, so the table says which is which."""
    if not versions:
        return "no model versions yet: `taxifare run` trains and registers one"
    lines = [f"{'':2}{'VERSION':<8} {'CREATED':<20} {'RMSE':>7} {'BASELINE':>8} {'TEST':<12} {'SOURCE':<24} RUN"]
    for v in versions:
        mark = "★ " if v.name == champion else "  "
        if getattr(v, "problem", None):
            lines.append(f"✘ {v.name:<8} damaged: {v.problem}")
            continue
        m = _mapping(v.metadata.get("metrics"))
        rmse, base = _number(_mapping(m.get("candidate")).get("rmse")), _number(_mapping(m.get("baseline")).get("rmse"))
        test = v.metadata.get("test_fingerprint") or "?"
        source = v.metadata.get("source") or "? (not recorded)"
        lines.append(
            f"{mark}{v.name:<8} {v.metadata.get('created', '')!s:<20.20} {rmse:>7.3f} {base:>8.3f} "
            f"{test!s:<12.12} {_tail(str(source), 24):<24} {v.metadata.get('run_id', '')!s:.40}"
        )
    damaged = any(getattr(v, "problem", None) for v in versions)
    lines.append("★ = champion; RMSE on each run's own test split (TEST: its fingerprint)"
                 + (", ✘ = damaged (cannot be promoted or served)" if damaged else ""))  # fmt: skip
    return "\n".join(lines)


def version_json(version: Any, champion: str | None) -> dict[str, Any]:
    """A version for `--json`: name, champion, damaged (why, or null), and its metadata as registered."""
    meta = {k: v for k, v in version.metadata.items() if k != "files"}
    return {"version": version.name, "champion": version.name == champion, "damaged": version.problem,
            "model_dir": version.model_dir, "metadata": meta}  # fmt: skip


def history_table(moves: list[Any]) -> str:
    if not moves:
        return "the champion has not moved yet"
    lines = [f"{'WHEN':<20} {'FROM':<8} {'TO':<8} {'RUN':<24} REASON"]
    for m in moves:
        lines.append(f"{m.time:<20.20} {m.previous or '-':<8.8} {m.to:<8.8} {m.run_id or 'by hand':<24.24} {m.reason}")
    return "\n".join(lines)


def version_details(version: Any, champion: str | None, run: RunRecord | None) -> str:
    """One registry version: where it came from (run, data, parameters) and how it scored."""
    meta = version.metadata
    star = " ★ champion" if version.name == champion else ""
    lines = [f"{version.name}{star}  created {meta.get('created', '?')}", f"model: {version.model_dir}"]
    lines.append(f"run: {meta.get('run_id', '?')}   data fingerprint: {meta.get('data_fingerprint', '?')}")
    lines.append(f"data: {meta.get('source') or '? (not recorded)'}   test split: {meta.get('test_fingerprint', '?')}")
    metrics = _mapping(meta.get("metrics"))
    for who in ("candidate", "baseline", "champion"):
        if m := _mapping(metrics.get(who)):
            lines.append(f"  {who:<10} RMSE {_fmt(m.get('rmse'))}  MAE {_fmt(m.get('mae'))}")
    lines.append(f"decision: {meta.get('decision', '')}  (on {meta.get('test_rows', '?')} test trips)")
    if meta.get("replaced"):
        lines.append(f"replaced: {meta['replaced']}")
    if run:
        lines.append("parameters:")
        for k, v in sorted(run.params.items()):
            if v not in ("", None):
                lines.append(f"  {k} = {' '.join(map(str, v)) if isinstance(v, list) else v}")
    else:
        lines.append("parameters: the run's record is not under this --runs-root")
    return "\n".join(lines)


def _tail(text: str, width: int) -> str:
    """The end of a long text (a path's file names tell sources apart), marked as cut."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float("nan")
