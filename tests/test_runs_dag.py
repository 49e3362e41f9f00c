"""A pipeline's DAG is described once, by the pipeline: the record, the terminal views and the report
take tasks, edges, conditions and display names from its compiled spec, so a new step shows up
everywhere with no other edit. (No `from __future__ import annotations`: kfp reads the components' annotations.)"""

import re

import pytest
from kfp import dsl

from pipeline import training
from taxifare.cli import render
from taxifare.report import run as run_report
from taxifare.runs import dag, local
from taxifare.runs.status import Status


def test_the_training_pipelines_dag_comes_from_its_spec():
    tasks = dag.of_pipeline(training.build())
    assert [(t.name, t.display, t.condition, t.condition_task, t.exit) for t in tasks] == [
        ("stage-data", "stage data", "", "", False),
        ("tune-hparams", "tune", "", "", False),
        ("train-model", "train", "", "", False),
        ("evaluate-model", "evaluate", "", "", False),
        ("deploy-model", "deploy", "blessed", "evaluate-model", False),
        ("notify-failure", "notify", "", "", True),  # the exit handler's task: after all the others, always
    ]
    # deploy reads the model, the decision and the test split: every producer is upstream of it.
    assert tasks[4].upstream == ("evaluate-model", "stage-data", "train-model")
    assert dag.direct_upstream(tasks)["deploy-model"] == ("evaluate-model",)
    assert dag.direct_upstream(tasks)["notify-failure"] == ("deploy-model",)
    assert dag.levels(tasks) == {"stage-data": 0, "tune-hparams": 1, "train-model": 2, "evaluate-model": 3,
                                 "deploy-model": 4, "notify-failure": 5}  # fmt: skip
    # The vertex target draws the same steps, its tuning as a branch: a tuning job and its best
    # trial when tune_trials > 0, else the tune step (passing the given hyperparameters).
    on_vertex = dag.of_pipeline(training.build(target="vertex"))
    assert {(t.name, t.condition) for t in on_vertex} == {
        ("stage-data", ""), ("tune-hparams", "given"), ("tuning-job-spec", "tune"),
        ("hyperparameter-tuning-job", "tune"), ("best-trial", "tune"), ("train-model", ""),
        ("evaluate-model", ""), ("deploy-model", "blessed"), ("notify-failure", ""),
    }  # fmt: skip
    order = [t.name for t in on_vertex]  # the branches' tasks side by side, in either order
    assert order.index("tuning-job-spec") < order.index("hyperparameter-tuning-job") < order.index("best-trial")
    assert order[0] == "stage-data" and order[-4:] == [
        "train-model",
        "evaluate-model",
        "deploy-model",
        "notify-failure",
    ]
    assert {"best-trial", "tune-hparams"} <= set(next(t for t in on_vertex if t.name == "train-model").upstream)
    # With emails, Vertex AI's email follows everything, the webhook's task included.
    emailed = dag.of_pipeline(training.build(target="vertex", email=True))
    assert emailed[:-1] == on_vertex and (emailed[-1].display, emailed[-1].exit) == ("email", True)
    assert "notify-failure" in emailed[-1].upstream


# A pipeline the project does not have: its steps are new, one of them behind a condition that
# holds and one behind a condition that does not, and one in an exit handler.
@dsl.component(base_image="python:3.11", install_kfp_package=False)
def count_rows(rows: int) -> int:
    """A new step: says what it did, as every step does."""
    from trainer import events

    events.summary(f"counted {rows} rows", f"{rows} rows is {'many' if rows > 10 else 'few'}")
    return rows


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def double(n: int) -> int:
    from trainer import events

    events.summary(f"doubled {n} to {2 * n}")
    return 2 * n


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def tidy_up():
    from trainer import events

    events.summary("tidied up")


def _extra_pipeline():
    @dsl.pipeline(name="extra")
    def extra(rows: int = 42):
        tidy = tidy_up().set_display_name("tidy up")
        with dsl.ExitHandler(tidy, name="always"):
            counted = count_rows(rows=rows).set_display_name("count rows")
            with dsl.If(counted.output > 10, name="many"):
                double(n=counted.output).set_display_name("double it")
            with dsl.If(counted.output > 1000, name="huge"):
                double(n=counted.output).set_display_name("double again")

    return extra


def test_a_new_pipelines_tasks_conditions_and_exit_task_are_read_from_its_spec():
    tasks = {t.name: t for t in dag.of_pipeline(_extra_pipeline())}
    assert set(tasks) == {"count-rows", "double", "double-2", "tidy-up"}
    assert (tasks["double"].condition, tasks["double"].condition_task) == ("many", "count-rows")
    assert tasks["double-2"].condition == "huge" and tasks["double"].upstream == ("count-rows",)
    assert tasks["tidy-up"].exit and set(tasks["tidy-up"].upstream) >= {"count-rows", "double", "double-2"}
    assert dag.order(tasks.values())[-1].name == "tidy-up"


@pytest.mark.slow
def test_a_new_step_appears_in_the_record_views_and_report_with_no_other_edit(tmp_path):
    record = local.run(str(tmp_path / "runs"), {"rows": 42}, pipeline="extra", built=_extra_pipeline())
    assert record.status == Status.SUCCEEDED, record.error
    states = {name: str(t.state) for name, t in record.tasks.items()}
    assert states == {"count-rows": "succeeded", "double": "succeeded", "double-2": "skipped", "tidy-up": "succeeded"}
    assert record.tasks["count-rows"].summary == ["counted 42 rows", "42 rows is many"]
    assert record.tasks["double"].outputs["Output"] == 84
    assert record.tasks["double-2"].error == "skipped by the condition 'huge': 42 rows is many"
    shown = render.summary(record)
    for text in ("count-rows", "│     counted 42 rows", "│ if many", "double-2", "│ if huge", "│     doubled 42 to 84"):
        assert text in shown, shown
    html = run_report.html_page(record)
    drawn = dict(re.findall(r'data-task="([^"]+)" data-state="([^"]+)"', html))
    assert drawn == states and "count rows" in html and "if huge (not huge)" in html and "extra run" in html


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def where_am_i() -> str:
    import os
    import sys

    return f"{os.getpid()} {os.getppid()} {'tensorflow' in sys.modules}"


@pytest.mark.slow
def test_tasks_run_in_children_of_one_warm_python_that_imported_tensorflow_once(tmp_path):
    """The subprocess runner forks each task from a Python that imported TensorFlow and the project once
    for the run; kfp's own runner (warm=False) starts a fresh Python per task, which has imported nothing."""
    from taxifare.runs import subprocess_runner

    @dsl.pipeline(name="where")
    def where():
        first = where_am_i().set_display_name("first")
        second = where_am_i().set_display_name("second").after(first)
        where_am_i().set_display_name("third").after(second)

    record = local.run(str(tmp_path / "runs"), {}, pipeline="where", built=where)
    assert record.status == Status.SUCCEEDED, record.error
    said = [record.tasks[t].outputs["Output"].split() for t in ("where-am-i", "where-am-i-2", "where-am-i-3")]
    assert len({parent for _, parent, _ in said}) == 1 and len({pid for pid, _, _ in said}) == 3
    # TensorFlow was imported once, while the run was set up, before the first task was forked.
    assert [tf for *_, tf in said] == ["True", "True", "True"]
    cold = subprocess_runner.SubprocessRunner(warm=False)
    original = local.runner
    try:
        local.runner = lambda name, image: cold  # type: ignore[assignment]
        record = local.run(str(tmp_path / "runs"), {}, pipeline="where", built=where)
    finally:
        local.runner = original
    assert record.status == Status.SUCCEEDED, record.error
    assert record.tasks["where-am-i"].outputs["Output"].split()[2] == "False"
