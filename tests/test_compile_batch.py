"""The committed pipeline-batch.yaml is what pipeline/batch.py compiles to, and on Vertex AI its scoring
step is a batch prediction job served by the pipeline's own image."""

from __future__ import annotations

import os

import pytest
import yaml

from pipeline import batch, compiler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _spec(tmp_path, **kwargs) -> dict:
    out = compiler.compile_pipeline(str(tmp_path / "p.yaml"), pipeline="batch", **kwargs)
    with open(out) as f:
        return yaml.safe_load(f)


def test_committed_pipeline_batch_yaml_is_up_to_date(tmp_path):
    out = compiler.compile_pipeline(str(tmp_path / "pipeline-batch.yaml"), pipeline="batch")
    with open(out) as fresh, open(os.path.join(ROOT, "pipeline-batch.yaml")) as committed:
        assert fresh.read() == committed.read(), "pipeline-batch.yaml is stale: run `make compile` and commit it"


def test_on_vertex_the_batch_job_step_runs_in_and_serves_with_the_pipelines_image(tmp_path):
    spec = _spec(tmp_path, target="vertex", image="example.com/taxifare:9")
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"resolve-model", "check-drift", "batch-predict"}
    assert tasks["batch-predict"]["dependentTasks"] == ["check-drift", "resolve-model"]
    for executor in spec["deploymentSpec"]["executors"].values():
        assert executor["container"]["image"] == "example.com/taxifare:9"
        assert "pip install" not in " ".join(executor["container"]["command"])
    wired = tasks["batch-predict"]["inputs"]["parameters"]
    assert wired["serving_image"]["runtimeValue"]["constant"] == "example.com/taxifare:9"
    assert wired["job_name"]["runtimeValue"]["constant"] == "{{$.pipeline_job_name}}"
    for name in ("batch_machine_type", "batch_starting_replicas", "batch_max_replicas", "input", "output"):
        assert wired[name] == {"componentInputParameter": name}
    assert tasks["resolve-model"]["inputs"]["parameters"]["registry_kind"]["runtimeValue"]["constant"] == "vertex"
    assert all(t["cachingOptions"] == {} for t in tasks.values())  # never from a cache


@pytest.mark.parametrize("target", ["local", "vertex"])
def test_every_batch_parameter_is_a_setting_with_its_default_and_help(tmp_path, target):
    compiled = _spec(tmp_path, target=target)["root"]["inputDefinitions"]["parameters"]
    assert sorted(compiled) == sorted(batch.defaults(target))
    for s in batch.parameters():
        assert compiled[s.name].get("defaultValue", "") == s.default and compiled[s.name]["description"] == s.help


def test_locally_the_batch_pipeline_scores_then_writes(tmp_path):
    tasks = _spec(tmp_path, target="local")["root"]["dag"]["tasks"]
    assert set(tasks) == {"resolve-model", "check-drift", "score-batch", "write-predictions"}
    assert "check-drift" in tasks["score-batch"]["dependentTasks"]
