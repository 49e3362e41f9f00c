"""What people look at, rendered in headless Chromium: evaluate's HTML artifact (the evaluate node
in the Vertex AI console and the KFP UI) and the local run report.

Both must render without a console error, fetch nothing but themselves, and show what they are
about (the screenshot is not blank; the text holds the tasks, the slices, the decision).
"""

from __future__ import annotations

import os
import pathlib
import re

import pytest
from browser import CHROMIUM, not_blank, render

from taxifare.evaluation import gate, scoring
from taxifare.report import evaluation as evaluation_page
from taxifare.report import run as run_report
from trainer import slices

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")


@pytest.fixture(scope="module")
def evaluation(trained, sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluation")
    scored = scoring.score(os.path.join(sample_dir, "test.csv"), os.path.join(sample_dir, "train.csv"),
                            trained["export_dir"], "local", str(out / "registry"))  # fmt: skip
    result = gate.assess(scored, 0.02)
    evaluation_page.write(result, scoring.figures(scored), str(out / "report.html"), str(out / "summary.md"))
    return out, result


@needs_chromium
def test_the_evaluation_artifact_renders_self_contained(evaluation):
    out, result = evaluation
    page = render(str(out / "report.html"))
    assert page.errors == []
    assert page.requests == [f"file://{out / 'report.html'}"]  # no CDN, no fonts, nothing fetched
    assert page.svg_count >= 2 and not_blank(page.png)
    for s in slices.SLICES:
        assert s.name in page.text
    assert "blessed" in page.text and f"{result['candidate']['rmse']:.3f}" in page.text


def test_the_markdown_twin_has_the_same_tables(evaluation):
    out, _ = evaluation
    text = (out / "summary.md").read_text()
    assert text.startswith("**blessed**") and "| candidate |" in text and "### By kind of trip" in text
    assert all(s.name in text for s in slices.SLICES)


def test_a_test_split_with_empty_slices_still_gets_its_visuals(trained, sample_dir, tmp_path):
    """A small test split has kinds of trip it holds none of: those slices have no metrics, and
    the artifacts show them blank instead of failing the evaluate step."""
    few = tmp_path / "few.csv"
    few.write_text("".join((pathlib.Path(sample_dir) / "test.csv").read_text().splitlines(keepends=True)[:4]))
    scored = scoring.score(str(few), os.path.join(sample_dir, "train.csv"), trained["export_dir"], "local",
                            str(tmp_path / "registry"))  # fmt: skip
    result = gate.assess(scored, 0.02)
    empty = [s["name"] for s in result["slices"] if s["rows"] == 0]
    assert empty and all(s["candidate"] is None for s in result["slices"] if s["rows"] == 0)
    evaluation_page.write(result, scoring.figures(scored), str(tmp_path / "r.html"), str(tmp_path / "s.md"))
    text = (tmp_path / "s.md").read_text()
    assert all(name in text for name in empty) and "None" not in text


def test_the_run_report_draws_every_task_with_its_state(tmp_path):
    from pipeline import training
    from taxifare.runs import dag
    from taxifare.runs.records import RunRecord, TaskRecord

    verdict = "not blessed: candidate RMSE 3.100 does not beat the distance baseline 3.000"
    tasks = {
        "stage-data": TaskRecord(name="stage-data", state="succeeded", seconds=1.0),
        "tune-hparams": TaskRecord(name="tune-hparams", state="succeeded", seconds=0.5),
        "train-model": TaskRecord(name="train-model", state="succeeded", seconds=5.0),
        "evaluate-model": TaskRecord(name="evaluate-model", state="succeeded", seconds=2.0, summary=[verdict]),
        "deploy-model": TaskRecord(name="deploy-model", state="skipped", error=f"skipped: {verdict}"),
        "notify-failure": TaskRecord(name="notify-failure", state="succeeded", summary=["nothing to report"]),
    }
    record = RunRecord(version=2, run_id="20261201-000000-abcdef", status="succeeded", started=0.0, seconds=12.5,
                       params={"source": "/data/trips.csv", "train_steps": 300}, tasks=tasks,
                       dag=dag.of_pipeline(training.build())).at(str(tmp_path))  # fmt: skip
    html = run_report.html_page(record)
    states = dict(re.findall(r'data-task="([^"]+)" data-state="([^"]+)"', html))
    assert states == {"stage-data": "succeeded", "tune-hparams": "succeeded", "train-model": "succeeded",
                      "evaluate-model": "succeeded", "deploy-model": "skipped",
                      "notify-failure": "succeeded"}  # fmt: skip
    assert "if blessed (not blessed)" in html and "skipped: not blessed" in html and ">evaluate<" in html
    assert "evaluate did not run" in html  # no artifact file for this made-up record: said, not crashed
