"""Evaluate's visuals: the comparison, the decision, the figures and the slice table.

`fragment` is the body the run report embeds; `page` wraps it as the step's HTML artifact
(the Vertex AI console and the KFP UI render it on the evaluate node); `markdown` is the same
tables for viewers that render Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taxifare.report.html import escape, number, page, table

MODELS = ("candidate", "baseline", "champion")


def _models(result: dict[str, Any]) -> list[str]:
    return [m for m in MODELS if result.get(m)]


def _comparison_rows(result: dict[str, Any]) -> list[list[Any]]:
    names = {
        "candidate": "candidate",
        "baseline": "distance rule",
        "champion": f"champion {result.get('champion_version') or ''}",
    }
    return [[names[m].strip(), result[m]["rmse"], result[m]["mae"]] for m in _models(result)]


def _slice_rows(result: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for s in result.get("slices", []):
        # A slice with no trips in the test split has no metrics (None): shown as a blank.
        rows.append([s["name"], s["rows"], *((s.get(m) or {}).get("rmse") for m in _models(result))])
    return rows


def fragment(result: dict[str, Any], figures: Sequence[str] = ()) -> str:
    verdict = "ok" if result.get("blessed") else "bad"
    word = "blessed" if result.get("blessed") else "not blessed"
    parts = [
        "<h2>Evaluation</h2>",
        f'<p>on {result.get("test_rows", 0):,} test trips: <b class="{verdict}">{word}</b>: '
        f"{escape(result.get('reason', ''))}</p>",
        table(["model", "RMSE ($)", "MAE ($)"], _comparison_rows(result)),
    ]
    if figures:
        parts.append('<div class="figures">' + "".join(figures) + "</div>")
    if result.get("slices"):
        headers = ["slice", "trips", *(f"{m} RMSE" for m in _models(result))]
        parts += ["<h2>By kind of trip</h2>", table(headers, _slice_rows(result))]
    return "\n".join(parts)


def html_page(result: dict[str, Any], figures: Sequence[str] = (), extra: str = "") -> str:
    """The artifact page; the markers let the run report take the fragment back out. `extra`: more
    sections after it (the run's tuning, when it tuned)."""
    title = "taxifare evaluation"
    body = f"<h1>{title}</h1>\n<!-- evaluation -->{fragment(result, figures)}<!-- /evaluation -->{extra}"
    return page(title, body)


def markdown(result: dict[str, Any]) -> str:
    def md_table(headers: Sequence[str], rows: list[list[Any]]) -> str:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(number(v) for v in row) + " |" for row in rows]
        return "\n".join(lines)

    word = "blessed" if result.get("blessed") else "not blessed"
    text = [
        f"**{word}**: {result.get('reason', '')}",
        "",
        md_table(["model", "RMSE ($)", "MAE ($)"], _comparison_rows(result)),
    ]
    if result.get("slices"):
        headers = ["slice", "trips", *(f"{m} RMSE" for m in _models(result))]
        text += ["", "### By kind of trip", "", md_table(headers, _slice_rows(result))]
    return "\n".join(text) + "\n"


def write(result: dict[str, Any], figures: Sequence[str], html_path: str, markdown_path: str,
          tuning: str = "") -> None:  # fmt: skip
    """The step's HTML artifact (rendered on the evaluate node) and its Markdown twin; self-contained.

    `tuning`: the tune step's study folder; when the run tuned, its trials table and metric by trial
    follow the evaluation (and its best trial the Markdown)."""
    extra, note = "", ""
    if tuning:
        from taxifare.report import tuning as tuning_report
        from taxifare.tuning import step

        study = step.read(tuning)
        if study is not None and study.trials:
            extra = tuning_report.fragment(study)
            note = f"\n### Tuning\n\n{tuning_report.headline(study)}\n\n{tuning_report.best_line(study)}\n"
    with open(html_path, "w") as f:
        f.write(html_page(result, figures, extra))
    with open(markdown_path, "w") as f:
        f.write(markdown(result) + note)
