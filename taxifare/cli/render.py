"""Terminal views of a run (its DAG with task states) and of the model registry."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from typing import Any

ICONS = {"succeeded": "✔", "failed": "✘", "skipped": "⊘", "running": "…", "pending": "·"}
DAG = [
    ("stage-data", "stage data", []),
    ("train-model", "train", ["stage-data"]),
    ("evaluate-model", "evaluate", ["train-model", "stage-data"]),
    ("deploy-model", "deploy", ["evaluate-model"]),
]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def task_line(name: str, state: str, seconds: float | None) -> str:
    took = f"{seconds:6.1f}s" if seconds is not None else "       "
    return f"{ICONS.get(state, '?')} {name:<15} {state:<10} {took}"


def _details(name: str, task: dict[str, Any], record: dict[str, Any]) -> list[str]:
    out = task.get("outputs", {})
    lines = []
    if name == "stage-data" and "metrics" in out:
        m = out["metrics"]
        rejected = {k[len("rejected_") :]: int(v) for k, v in m.items() if k.startswith("rejected_") and v}
        lines.append(
            f"rows read {int(m.get('rows_read', 0))}, kept {int(m.get('rows_kept', 0))}: "
            + " / ".join(f"{s} {int(m.get(s + '_rows', 0))}" for s in ("train", "valid", "test"))
        )
        if rejected:
            lines.append("rejected: " + ", ".join(f"{k} {v}" for k, v in rejected.items()))
    elif name == "train-model" and "metrics" in out:
        m = out["metrics"]
        lines.append(
            f"valid RMSE {_fmt(m.get('valid_rmse'))}, {int(m.get('steps', 0))} steps, "
            f"{_fmt(m.get('examples_per_sec', 0.0))} examples/s"
        )
        if "tensorboard" in out:
            lines.append(f"tensorboard: taxifare tensorboard {record['run_id']}")
    elif name == "evaluate-model":
        d = record.get("decision") or {}
        if d:
            champ = d.get("champion")
            lines.append(
                f"RMSE candidate {_fmt(d['candidate']['rmse'])} · baseline {_fmt(d['baseline']['rmse'])} · "
                f"champion {_fmt(champ['rmse']) + ' (' + str(d.get('champion_version')) + ')' if champ else 'none'}"
            )
            lines.append(("blessed: " if d.get("blessed") else "not blessed: ") + d.get("reason", ""))
    elif name == "deploy-model" and out.get("Output"):
        lines.append(f"registered {out['Output']} and moved the champion alias to it")
    if task.get("error"):
        lines.append(task["error"])
    return lines


def dag(record: dict[str, Any]) -> str:
    tasks = record.get("tasks", {})
    lines = []
    for i, (name, _label, _upstream) in enumerate(DAG):
        task = tasks.get(name, {"state": "pending"})
        lines.append(task_line(name, task.get("state", "pending"), task.get("seconds")))
        for detail in _details(name, task, record):
            lines.append(f"│     {detail}")
        if i + 1 < len(DAG):
            lines.append("│" if DAG[i + 1][0] != "deploy-model" else "│ if blessed")
    return "\n".join(lines)


def summary(record: dict[str, Any]) -> str:
    started = dt.datetime.fromtimestamp(record["started"]).strftime("%Y-%m-%d %H:%M:%S")
    head = f"run {record['run_id']}  {record['status'].upper()}  started {started}"
    if record.get("seconds") is not None:
        head += f", took {record['seconds']:.1f}s"
    lines = [head, "", dag(record), ""]
    if record["status"] in ("running", "interrupted", "unreadable"):
        what = {"running": "still running", "interrupted": "INTERRUPTED", "unreadable": "UNREADABLE"}
        lines.append(f"{what[record['status']]}: {record.get('error') or 'no outcome yet'}")
    elif record["status"] == "failed":
        lines.append(f"FAILED in task {record.get('failed_task', '?')}: {record.get('error', '')}")
        changed = record.get("registry_changed") or {}
        if changed.get("champion"):
            lines.append("The champion moved: {} -> {}.".format(*changed["champion"]))
        elif changed.get("new_versions"):
            lines.append(
                f"The champion was not changed; version(s) {', '.join(changed['new_versions'])} were registered "
                "but not promoted."
            )
        else:
            lines.append("The registry and its champion were not changed.")
    else:
        version = record.get("deployed_version")
        lines.append(f"deployed: {version}" if version else "deployed: nothing (the champion stays)")
        sample = (record.get("decision") or {}).get("sample")
        if sample:
            fare = sample["candidate"] if version or sample.get("champion") is None else sample["champion"]
            who = "new champion" if version else "champion"
            if version or sample.get("champion") is not None:
                inst = sample["instance"]
                lines.append(
                    f"sample prediction ({who}): ${fare:.2f} for a trip "
                    f"({inst['pickuplon']:.4f}, {inst['pickuplat']:.4f}) -> ({inst['dropofflon']:.4f}, "
                    f"{inst['dropofflat']:.4f}), {int(inst['passengers'])} passenger(s);"
                    f" actual ${sample['fare_amount']:.2f}"
                )
    lines.append(f"details: taxifare runs show {record['run_id']}   log: {record['run_dir']}/pipeline.log")
    report = os.path.join(record["run_dir"], "report.html")
    lines.append(f"report: {report}" if os.path.isfile(report) else f"report: taxifare runs report {record['run_id']}")
    return "\n".join(lines)


def shorten(text: str, width: int) -> str:
    """At most `width` characters, cut at a word boundary with an ellipsis, never mid-word."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text[: max(width - 1, 0)].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def runs_table(runs: list[dict[str, Any]], width: int | None = None) -> str:
    """Newest first; the decision column takes what the terminal (or `width`) has left."""
    if not runs:
        return "no runs yet: `taxifare run` starts one"
    width = width or shutil.get_terminal_size((120, 24)).columns
    head = f"{'RUN':<24} {'STATUS':<11} {'SECONDS':>8} {'CANDIDATE':>10} {'DEPLOYED':<9} "
    room = max(width - len(head), 8)
    lines = [head + "DECISION"]
    for r in runs:
        d = r.get("decision") or {}
        cand = d.get("candidate", {}).get("rmse")
        seconds = r.get("seconds")
        lines.append(
            f"{r['run_id']:<24} {r['status']:<11} {(f'{seconds:.1f}' if seconds is not None else '-'):>8} "
            f"{(f'{cand:.3f}' if cand is not None else '-'):>10} {r.get('deployed_version') or '-':<9} "
            + shorten(d.get("reason") or r.get("error") or "", room)
        )
    return "\n".join(lines)


def models_table(versions: list[Any], champion: str | None) -> str:
    if not versions:
        return "no model versions yet: `taxifare run` trains and registers one"
    lines = [f"{'':2}{'VERSION':<8} {'CREATED':<21} {'RMSE':>7} {'BASELINE':>8} {'DATA':<17} RUN"]
    for v in versions:
        mark = "★ " if v.name == champion else "  "
        if getattr(v, "problem", None):
            lines.append(f"✘ {v.name:<8} damaged: {v.problem}")
            continue
        m = _mapping(v.metadata.get("metrics"))
        rmse, base = _number(_mapping(m.get("candidate")).get("rmse")), _number(_mapping(m.get("baseline")).get("rmse"))
        lines.append(
            f"{mark}{v.name:<8} {v.metadata.get('created', '')!s:<21.21} {rmse:>7.3f} {base:>8.3f} "
            f"{v.metadata.get('data_fingerprint', '')!s:<17.17} {v.metadata.get('run_id', '')!s:.40}"
        )
    damaged = any(getattr(v, "problem", None) for v in versions)
    lines.append("★ = champion" + (", ✘ = damaged (cannot be promoted or served)" if damaged else ""))
    return "\n".join(lines)


def version_details(version: Any, champion: str | None, run: dict[str, Any] | None) -> str:
    """One registry version: where it came from (run, data, parameters) and how it scored."""
    meta = version.metadata
    star = " ★ champion" if version.name == champion else ""
    lines = [f"{version.name}{star}  created {meta.get('created', '?')}", f"model: {version.model_dir}"]
    lines.append(f"run: {meta.get('run_id', '?')}   data fingerprint: {meta.get('data_fingerprint', '?')}")
    metrics = meta.get("metrics", {})
    for who in ("candidate", "baseline", "champion"):
        if metrics.get(who):
            m = metrics[who]
            lines.append(f"  {who:<10} RMSE {_fmt(m.get('rmse'))}  MAE {_fmt(m.get('mae'))}")
    lines.append(f"decision: {meta.get('decision', '')}  (on {meta.get('test_rows', '?')} test trips)")
    if meta.get("replaced"):
        lines.append(f"replaced: {meta['replaced']}")
    if run:
        lines.append("parameters:")
        for k, v in sorted(run.get("params", {}).items()):
            if v not in ("", None):
                lines.append(f"  {k} = {' '.join(map(str, v)) if isinstance(v, list) else v}")
    else:
        lines.append("parameters: the run's record is not under this --runs-root")
    return "\n".join(lines)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float("nan")
