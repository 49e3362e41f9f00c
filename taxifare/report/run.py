"""The local run report: one self-contained page per run.

The DAG drawn as a graph (each task's state, duration and key output; the `blessed` condition;
a skipped deploy shown skipped), the parameters and data source, evaluate's visuals (taken from
its HTML artifact), and the lineage: data fingerprint -> run -> registered version.

The DAG is four fixed tasks in a column, so it is drawn here as plain SVG: a layout engine
(graphviz) would be a system dependency for a drawing that never changes shape.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import Any

from taxifare.report.html import escape, page, table

TASKS = (  # (name, what feeds it)
    ("stage-data", ()),
    ("train-model", ("stage-data",)),
    ("evaluate-model", ("stage-data", "train-model")),
    ("deploy-model", ("evaluate-model",)),
)
FILL = {"succeeded": "#dafbe1", "failed": "#ffebe9", "skipped": "#fff8c5", "running": "#ddf4ff", "pending": "#f6f8fa"}
STROKE = {"succeeded": "#1a7f37", "failed": "#cf222e", "skipped": "#9a6700", "running": "#0969da", "pending": "#59636e"}
EVALUATION = re.compile(r"<!-- evaluation -->(.*)<!-- /evaluation -->", re.S)
BOX_W, BOX_H, GAP, LEFT = 360, 64, 44, 40


def key_output(name: str, task: dict[str, Any], record: dict[str, Any]) -> str:
    out = task.get("outputs", {})
    metrics = out.get("metrics") or {}
    decision = record.get("decision") or {}
    if task.get("state") == "failed":
        return (task.get("error") or "failed")[:70]
    if name == "stage-data" and metrics:
        return f"{int(metrics.get('rows_kept', 0)):,} rows kept of {int(metrics.get('rows_read', 0)):,}"
    if name == "train-model" and metrics.get("valid_rmse") is not None:
        return f"valid RMSE {metrics['valid_rmse']:.3f} after {int(metrics.get('steps', 0))} steps"
    if name == "evaluate-model" and decision:
        return f"RMSE {decision['candidate']['rmse']:.3f} vs baseline {decision['baseline']['rmse']:.3f}"
    if name == "deploy-model":
        if out.get("Output"):
            return f"registered {out['Output']}, now the champion"
        return "skipped: not blessed" if task.get("state") == "skipped" else ""
    return ""


def dag_svg(record: dict[str, Any]) -> str:
    tasks = record.get("tasks", {})
    parts, y_of = [], {}
    for i, (name, _) in enumerate(TASKS):
        y = 20 + i * (BOX_H + GAP)
        y_of[name] = y
        task = tasks.get(name, {"state": "pending"})
        state = task.get("state", "pending")
        took = f" · {task['seconds']:.1f}s" if task.get("seconds") is not None else ""
        parts.append(
            f'<g class="task" data-task="{escape(name)}" data-state="{escape(state)}">'
            f'<rect x="{LEFT}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{FILL.get(state, "#fff")}" '
            f'stroke="{STROKE.get(state, "#59636e")}" stroke-width="2"/>'
            f'<text x="{LEFT + 14}" y="{y + 24}" font-weight="bold">{escape(name)}</text>'
            f'<text x="{LEFT + BOX_W - 14}" y="{y + 24}" text-anchor="end">{escape(state)}{escape(took)}</text>'
            f'<text x="{LEFT + 14}" y="{y + 46}" fill="#59636e">{escape(key_output(name, task, record))}</text></g>'
        )
    for name, inputs in TASKS:
        for source in inputs:
            parts.append(_edge(y_of[source], y_of[name], skip=source == "stage-data" and name == "evaluate-model"))
    deploy = tasks.get("deploy-model", {})
    taken = deploy.get("state") not in ("skipped", "pending", None)
    label_y = y_of["deploy-model"] - GAP // 2 + 5
    word = "blessed" if taken else "not blessed"
    parts.append(f'<text x="{LEFT + BOX_W / 2 + 10}" y="{label_y}" class="condition">if blessed ({word})</text>')
    height = 20 + len(TASKS) * (BOX_H + GAP)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LEFT * 2 + BOX_W + 200}" height="{height}" '
        'font-family="sans-serif" font-size="13" role="img" aria-label="the run\'s DAG">'
        '<defs><marker id="arrow" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">'
        '<path d="M0,0 L10,4 L0,8 z" fill="#59636e"/></marker></defs>' + "".join(parts) + "</svg>"
    )


def _edge(y_from: float, y_to: float, skip: bool) -> str:
    x = LEFT + BOX_W / 2
    if skip:  # stage-data's test split goes around train to evaluate
        x2 = LEFT + BOX_W
        return (
            f'<path d="M{x2},{y_from + BOX_H / 2} C{x2 + 90},{y_from + BOX_H / 2} {x2 + 90},{y_to + BOX_H / 2} '
            f'{x2},{y_to + BOX_H / 2}" fill="none" stroke="#59636e" marker-end="url(#arrow)"/>'
        )
    return f'<line x1="{x}" y1="{y_from + BOX_H}" x2="{x}" y2="{y_to}" stroke="#59636e" marker-end="url(#arrow)"/>'


def evaluation_fragment(record: dict[str, Any]) -> str:
    """The evaluate step's own visuals, from its HTML artifact (empty when it did not run)."""
    uri = ((record.get("tasks", {}).get("evaluate-model", {}).get("outputs") or {}).get("report") or {}).get("uri")
    if not uri or not os.path.isfile(uri):
        return '<h2>Evaluation</h2><p class="muted">evaluate did not run</p>'
    with open(uri) as f:
        found = EVALUATION.search(f.read())
    return found.group(1) if found else ""


def _lineage(record: dict[str, Any]) -> str:
    staged = (record.get("tasks", {}).get("stage-data", {}).get("outputs") or {}).get("train") or {}
    fingerprint = staged.get("fingerprint", "–")
    version = record.get("deployed_version") or "no new version (the champion stays)"
    changed = (record.get("registry_changed") or {}).get("champion")
    champion = f"champion {changed[0] or 'none'} -> {changed[1]}" if changed else "champion unchanged"
    return (
        f"<p>data <code>{escape(fingerprint)}</code> -> run <code>{escape(record['run_id'])}</code> -> "
        f"<b>{escape(version)}</b> ({escape(champion)})</p>"
    )


def _params(record: dict[str, Any]) -> str:
    params = record.get("params", {})
    data = [(k, v) for k, v in params.items() if k.endswith("source") or k.startswith("bq_")]
    rest = [(k, v) for k, v in sorted(params.items()) if (k, v) not in data]
    rows = [(k, " ".join(map(str, v)) if isinstance(v, list) else v) for k, v in data + rest if v not in ("", None)]
    return table(["parameter", "value"], rows, numeric_from=2)


def html_page(record: dict[str, Any]) -> str:
    started = dt.datetime.fromtimestamp(record["started"]).strftime("%Y-%m-%d %H:%M:%S")
    took = f", took {record['seconds']:.1f}s" if record.get("seconds") is not None else ""
    status = record["status"]
    klass = {"succeeded": "ok", "failed": "bad"}.get(status, "skip")
    error = f'<p class="bad">{escape(record.get("failed_task", ""))}: {escape(record.get("error", ""))}</p>'
    log = f"{record.get('run_dir', '')}/pipeline.log"
    runner = record.get("runner", "subprocess")
    body = [
        f"<h1>run {escape(record['run_id'])}</h1>",
        f'<p><b class="{klass}">{escape(status)}</b> · started {started}{took} · runner {escape(runner)} · '
        f"log <code>{escape(log)}</code></p>",
        error if status == "failed" else "",
        "<h2>DAG</h2>",
        dag_svg(record),
        "<h2>Lineage</h2>",
        _lineage(record),
        evaluation_fragment(record),
        "<h2>Parameters and data</h2>",
        _params(record),
    ]
    return page(f"taxifare run {record['run_id']}", "\n".join(body))


def write(record: dict[str, Any], out: str | None = None) -> str:
    """The report for a run record, at `out` (default: report.html in the run's folder); its path."""
    path = out or os.path.join(record["run_dir"], "report.html")
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(html_page(record))
    os.replace(tmp, path)
    return path
