"""The local run report: one self-contained page per run.

The DAG drawn as a graph from the run's record (each task's state, duration and headline; the
conditions; skipped tasks shown skipped), the parameters and data source, evaluate's visuals
(taken from its HTML artifact), and the lineage: data fingerprint -> run -> registered version.

The DAG is laid out in rows (a task one row below the lowest task it waits for) and drawn as
plain SVG here: a layout engine (graphviz) would be a system dependency for a few boxes.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import Any

from taxifare.report.html import escape, page, table
from taxifare.runs import dag as dags
from taxifare.runs.records import RunRecord

FILL = {"succeeded": "#dafbe1", "failed": "#ffebe9", "skipped": "#fff8c5", "running": "#ddf4ff", "pending": "#f6f8fa"}
STROKE = {"succeeded": "#1a7f37", "failed": "#cf222e", "skipped": "#9a6700", "running": "#0969da", "pending": "#59636e"}
EVALUATION = re.compile(r"<!-- evaluation -->(.*)<!-- /evaluation -->", re.S)
BOX_W, BOX_H, GAP, LEFT, SIDE = 360, 64, 44, 40, 30
KEY_CHARS = 48  # what fits in a box at 13px


def key_output(task: Any) -> str:
    """A task's one line in the drawing: its error, or the last line it said of itself."""
    text = task.error if str(task.state) in ("failed", "skipped") and task.error else (task.summary or [""])[-1]
    return text if len(text) <= KEY_CHARS else text[: KEY_CHARS - 1] + "…"


def layout(record: RunRecord) -> dict[str, tuple[float, float]]:
    """Each task's box (left, top): rows from the DAG's levels, tasks of a row side by side."""
    rows = dags.levels(record.dag)
    placed: dict[str, tuple[float, float]] = {}
    seen: dict[int, int] = {}
    for t in record.dag:
        row = rows[t.name]
        col = seen.get(row, 0)
        seen[row] = col + 1
        placed[t.name] = (LEFT + col * (BOX_W + SIDE), 20 + row * (BOX_H + GAP))
    return placed


def _box(t: dags.DagTask, record: RunRecord, x: float, y: float) -> str:
    task = record.task(t.name)
    state = str(task.state)
    took = f" · {task.seconds:.1f}s" if task.seconds is not None else ""
    return (
        f'<g class="task" data-task="{escape(t.name)}" data-state="{escape(state)}">'
        f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{FILL.get(state, "#fff")}" '
        f'stroke="{STROKE.get(state, "#59636e")}" stroke-width="2"/>'
        f'<text x="{x + 14}" y="{y + 24}" font-weight="bold">{escape(t.display)}</text>'
        f'<text x="{x + BOX_W - 14}" y="{y + 24}" text-anchor="end">{escape(state)}{escape(took)}</text>'
        f'<text x="{x + 14}" y="{y + 46}" fill="#59636e">{escape(key_output(task))}</text></g>'
    )


def _edge(src: tuple[float, float], dst: tuple[float, float], rows_apart: int) -> str:
    (x1, y1), (x2, y2) = src, dst
    if rows_apart > 1 and x1 == x2:  # skips a row: around the boxes between, on the right
        right = x1 + BOX_W
        return (
            f'<path d="M{right},{y1 + BOX_H / 2} C{right + 90},{y1 + BOX_H / 2} {right + 90},{y2 + BOX_H / 2} '
            f'{right},{y2 + BOX_H / 2}" fill="none" stroke="#59636e" marker-end="url(#arrow)"/>'
        )
    return (
        f'<line x1="{x1 + BOX_W / 2}" y1="{y1 + BOX_H}" x2="{x2 + BOX_W / 2}" y2="{y2}" stroke="#59636e" '
        'marker-end="url(#arrow)"/>'
    )


def dag_svg(record: RunRecord) -> str:
    boxes = layout(record)
    rows = dags.levels(record.dag)
    parts = [_box(t, record, *boxes[t.name]) for t in record.dag]
    edges = dags.direct_upstream(record.dag)  # an edge a longer path already implies is left out
    for t in record.dag:
        for up in edges[t.name]:
            if up in boxes:
                parts.append(_edge(boxes[up], boxes[t.name], rows[t.name] - rows[up]))
        if t.condition:
            x, y = boxes[t.name]
            state = str(record.task(t.name).state)
            word = {"skipped": f" (not {t.condition})", "pending": "", "running": ""}.get(state, f" ({t.condition})")
            parts.append(f'<text x="{x + BOX_W / 2 + 10}" y="{y - GAP // 2 + 5}" class="condition">'
                         f"if {escape(t.condition)}{escape(word)}</text>")  # fmt: skip
    width = max((x for x, _ in boxes.values()), default=LEFT) + BOX_W + 200
    height = max((y for _, y in boxes.values()), default=0) + BOX_H + GAP
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="13" role="img" aria-label="the run\'s DAG">'
        '<defs><marker id="arrow" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">'
        '<path d="M0,0 L10,4 L0,8 z" fill="#59636e"/></marker></defs>' + "".join(parts) + "</svg>"
    )


def _artifact(record: RunRecord, kind: str) -> str | None:
    """The path of a task's output artifact named `kind`, if it lies inside the run's folder (a record
    is untrusted input: nothing it names outside its folder is opened)."""
    root = os.path.realpath(record.folder)
    for task in record.tasks.values():
        out = task.outputs.get(kind)
        uri = out.get("uri") if isinstance(out, dict) else None
        if isinstance(uri, str) and os.path.realpath(uri).startswith(root + os.sep) and os.path.isfile(uri):
            return uri
    return None


def evaluation_fragment(record: RunRecord) -> str:
    """The evaluate step's own visuals, from its HTML artifact (empty when it did not run)."""
    uri = _artifact(record, "report")
    if not uri:
        return '<h2>Evaluation</h2><p class="muted">evaluate did not run</p>'
    with open(uri) as f:
        found = EVALUATION.search(f.read())
    return found.group(1) if found else ""


def tuning_fragment(record: RunRecord) -> str:
    """The tune step's trials table and metric by trial, from its HTML artifact (empty when the run did not tune)."""
    from taxifare.report import tuning

    uri = _artifact(record, "tuning_report")
    if not uri:
        return ""
    with open(uri) as f:
        return tuning.from_html(f.read())


def drift_fragment(record: RunRecord) -> str:
    """The drift section, when a task wrote a drift artifact (check_drift, stage_data)."""
    from taxifare.report import drift

    uri = _artifact(record, "drift")
    return drift.fragment(uri) if uri else ""


def _lineage(record: RunRecord) -> str:
    staged: dict[str, Any] = next(
        (t.outputs["train"] for t in record.tasks.values() if isinstance(t.outputs.get("train"), dict)), {}
    )
    fingerprint = str(staged.get("fingerprint", "–"))
    version = record.deployed_version or "no new version (the champion stays)"
    change = record.registry_change
    champion = f"champion {change.champion[0] or 'none'} -> {change.champion[1]}" if change and change.champion else (
        "champion unchanged"
    )  # fmt: skip
    return (
        f"<p>data <code>{escape(fingerprint)}</code> -> run <code>{escape(record.run_id)}</code> -> "
        f"<b>{escape(version)}</b> ({escape(champion)})</p>"
    )


def _params(record: RunRecord) -> str:
    params = record.params
    data = [(k, v) for k, v in params.items() if k.endswith("source") or k.startswith("bq_")]
    rest = [(k, v) for k, v in sorted(params.items()) if (k, v) not in data]
    rows = [(k, " ".join(map(str, v)) if isinstance(v, list) else v) for k, v in data + rest if v not in ("", None)]
    return table(["parameter", "value"], rows, numeric_from=2)


def html_page(record: RunRecord) -> str:
    started = dt.datetime.fromtimestamp(record.started).strftime("%Y-%m-%d %H:%M:%S")
    took = f", took {record.seconds:.1f}s" if record.seconds is not None else ""
    status = str(record.status)
    klass = {"succeeded": "ok", "failed": "bad"}.get(status, "skip")
    error = f'<p class="bad">{escape(record.failed_task or "")}: {escape(record.error or "")}</p>'
    body = [
        f"<h1>{escape(record.pipeline)} run {escape(record.run_id)}</h1>",
        f'<p><b class="{klass}">{escape(status)}</b> · started {started}{took} · runner {escape(record.runner)} · '
        f"log <code>{escape(record.log_path())}</code></p>",
        error if status == "failed" else "",
        "<h2>DAG</h2>",
        dag_svg(record),
        *(
            ["<h2>Lineage</h2>", _lineage(record)] if "deploy_target" in record.params else []
        ),  # a pipeline that deploys
        tuning_fragment(record),
        evaluation_fragment(record),
        drift_fragment(record),
        "<h2>Parameters and data</h2>",
        _params(record),
    ]
    return page(f"taxifare run {record.run_id}", "\n".join(body))


def write(record: RunRecord, out: str | None = None) -> str:
    """The report for a run record, at `out` (default: report.html in the run's folder); its path."""
    path = out or os.path.join(record.folder, "report.html")
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(html_page(record))
    os.replace(tmp, path)
    return path
