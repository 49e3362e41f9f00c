"""The committed pipeline.yaml is what the code compiles to, and compiling reads no environment."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from pipeline import compiler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_committed_pipeline_yaml_is_up_to_date(tmp_path):
    out = compiler.compile_pipeline(str(tmp_path / "pipeline.yaml"))
    with open(out) as fresh, open(os.path.join(ROOT, "pipeline.yaml")) as committed:
        assert fresh.read() == committed.read(), "pipeline.yaml is stale: run `make compile` and commit it"


def test_compiling_reads_no_environment(tmp_path):
    env = {**os.environ, "GOOGLE_CLOUD_PROJECT": "leak-me", "IMAGE": "leak/me:1", "HOME": str(tmp_path)}
    code = f"from pipeline import compiler; compiler.compile_pipeline({str(tmp_path / 'p.yaml')!r})"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=tmp_path)
    text = (tmp_path / "p.yaml").read_text()
    assert "leak" not in text and str(tmp_path) not in text
    with open(os.path.join(ROOT, "pipeline.yaml")) as f:
        assert text == f.read()


def test_every_step_runs_in_the_one_image_without_installing_packages(tmp_path):
    out = compiler.compile_pipeline(str(tmp_path / "p.yaml"), image="example.com/taxifare:9")
    with open(out) as f:
        spec = yaml.safe_load(f)
    executors = spec["deploymentSpec"]["executors"]
    assert set(executors) == {"exec-stage-data", "exec-train-model", "exec-evaluate-model", "exec-deploy-model"}
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == "example.com/taxifare:9"
        assert "pip install" not in " ".join(container["command"])
    defaults = spec["root"]["inputDefinitions"]["parameters"]
    from trainer.features import DEFAULTS

    assert defaults["train_steps"]["defaultValue"] == DEFAULTS.train_steps
    assert defaults["hidden_units"]["defaultValue"] == list(DEFAULTS.hidden_units)
