"""The committed pipeline.yaml is what the code compiles to, and compiling reads no environment."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
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


def _tasks(spec: dict) -> dict:
    """Every task of the spec, whatever group it is in (the exit handler's, a condition's)."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def _spec(tmp_path, **kwargs) -> dict:
    out = compiler.compile_pipeline(str(tmp_path / "p.yaml"), **kwargs)
    with open(out) as f:
        return yaml.safe_load(f)


def test_every_local_step_runs_in_the_one_image_without_installing_packages(tmp_path):
    spec = _spec(tmp_path, target="local", image="example.com/taxifare:9")
    executors = spec["deploymentSpec"]["executors"]
    assert set(executors) == {"exec-stage-data", "exec-tune-hparams", "exec-train-model", "exec-evaluate-model",
                              "exec-deploy-model", "exec-notify-failure"}  # fmt: skip
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == "example.com/taxifare:9"
        assert "pip install" not in " ".join(container["command"])


def test_every_parameter_is_defined_once_in_the_steps_settings(tmp_path):
    """The compiled pipeline's parameters are exactly the settings the pipeline takes, with their defaults and help."""
    from pipeline import training

    for target in ("local", "vertex"):
        compiled = _spec(tmp_path, target=target)["root"]["inputDefinitions"]["parameters"]
        expected = training.defaults(target)
        assert sorted(compiled) == sorted(expected)
        for name, value in expected.items():
            assert compiled[name].get("defaultValue", "") == value, name
    described = _spec(tmp_path)["root"]["inputDefinitions"]["parameters"]
    for s in training.parameters():
        assert described[s.name]["description"] == s.help  # what the Vertex AI console shows


@pytest.mark.parametrize("target", ["local", "vertex"])
def test_each_steps_inputs_are_described_by_the_same_settings(tmp_path, target):
    """A step's parameter inputs carry their setting's help (written once), and none goes undescribed.

    On vertex, training is gcpc's custom-job component, which rebuilds the inputs without their
    descriptions: that step alone is not described in pipeline.yaml (said in the README)."""
    from pipeline import training

    helps = {s.name: s.help for s in training.parameters()}
    components = _spec(tmp_path, target=target)["components"]
    steps = {name: c for name, c in components.items() if "executorLabel" in c}
    assert len(steps) == (9 if target == "vertex" else 6)
    if target == "vertex":
        assert "worker_pool_specs" in steps.pop("comp-train-model")["inputDefinitions"]["parameters"]
        # GCPC's own op, described by GCPC.
        assert "study_spec_metrics" in steps.pop("comp-hyperparameter-tuning-job")["inputDefinitions"]["parameters"]
    for step in steps.values():
        for name, given in step["inputDefinitions"].get("parameters", {}).items():
            assert given.get("description"), f"{name} has no description"
            if name in helps:
                assert given["description"] == helps[name], name


def test_vertex_target_trains_in_a_custom_job_on_the_chosen_machines(tmp_path):
    from pipeline.machines import TrainingMachines

    machines = TrainingMachines(
        machine_type="n1-highmem-8",
        accelerator_type="NVIDIA_TESLA_T4",
        accelerator_count=2,
        replica_count=3,
        boot_disk_size_gb=200,
    )
    spec = _spec(tmp_path, target="vertex", image="example.com/taxifare:9", machines=machines)
    local = _spec(tmp_path, target="local")

    # Same tasks on both targets but tuning's: vertex runs a tuning job in a branch (test_tuning_vertex.py).
    def steps(tasks: dict) -> set[str]:
        return {t for t in tasks if not t.startswith("condition")}

    assert steps(local["root"]["dag"]["tasks"]) - {"tune-hparams"} == steps(spec["root"]["dag"]["tasks"])
    executors = spec["deploymentSpec"]["executors"]
    for name in ("exec-stage-data", "exec-evaluate-model", "exec-deploy-model"):
        assert executors[name]["container"]["image"] == "example.com/taxifare:9"
    assert "custom_job" in " ".join(
        executors["exec-train-model"]["container"]["command"] + executors["exec-train-model"]["container"]["args"]
    )
    train_inputs = spec["components"]["comp-train-model"]["inputDefinitions"]["parameters"]
    pools = train_inputs["worker_pool_specs"]["defaultValue"]
    assert pools[0]["container_spec"]["image_uri"] == "example.com/taxifare:9"
    assert pools[0]["machine_spec"] == {
        "machine_type": "n1-highmem-8",
        "accelerator_type": "NVIDIA_TESLA_T4",
        "accelerator_count": 2,
    }
    assert pools[0]["replica_count"] == 1 and pools[1]["replica_count"] == 2
    assert pools[0]["disk_spec"]["boot_disk_size_gb"] == 200
    # The custom job's account is the run's: the pipeline's `service_account` parameter, set at submit time.
    train_task = _tasks(spec)["train-model"]
    given = train_task["inputs"]["parameters"]
    assert given["service_account"] == {"componentInputParameter": "pipelinechannel--service_account"}


def test_machine_options_are_checked_before_compiling():
    import pytest

    from pipeline.machines import TrainingMachines
    from taxifare.errors import UsageError

    with pytest.raises(UsageError, match="accelerator type and a positive accelerator count"):
        TrainingMachines(accelerator_type="NVIDIA_TESLA_T4")
    with pytest.raises(UsageError, match="replica count"):
        TrainingMachines(replica_count=0)


def test_steps_that_read_changing_state_never_come_from_a_cache(tmp_path):
    """Same source path with new rows, or a new champion, must not reuse an old run's outputs."""
    for target in ("local", "vertex"):
        spec = _spec(tmp_path, target=target)
        tasks = _tasks(spec)
        # Nor train: its inputs are the splits stage_data writes anew every run, so its cache key never repeats.
        for name in ("stage-data", "train-model", "evaluate-model", "deploy-model", "notify-failure"):
            assert tasks[name]["cachingOptions"] == {}, (target, name)  # enableCache false is left out


def test_evaluate_declares_its_html_and_markdown_visuals(tmp_path):
    """What the Vertex AI console and the KFP UI render on the evaluate node."""
    spec = _spec(tmp_path)
    outputs = spec["components"]["comp-evaluate-model"]["outputDefinitions"]["artifacts"]
    assert outputs["report"]["artifactType"]["schemaTitle"] == "system.HTML"
    assert outputs["summary"]["artifactType"]["schemaTitle"] == "system.Markdown"
    assert outputs["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"


def test_the_vertex_spec_has_the_exit_handler_and_the_deploy_imports_the_evaluation():
    """The committed pipeline.yaml (golden): every step inside an exit handler whose task runs however the run
    ended and tells notify_webhook of a failure; deploy registers the version with its evaluation."""
    with open(os.path.join(ROOT, "pipeline.yaml")) as f:
        spec = yaml.safe_load(f)
    root = spec["root"]["dag"]["tasks"]
    assert set(root) == {"exit-handler-1", "notify-failure"}
    notify = root["notify-failure"]
    assert notify["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    assert notify["dependentTasks"] == ["exit-handler-1"]
    inputs = notify["inputs"]["parameters"]
    assert inputs["status"] == {"taskFinalStatus": {"producerTask": "exit-handler-1"}}
    assert inputs["notify_webhook"] == {"componentInputParameter": "notify_webhook"}
    inside = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    assert {"stage-data", "train-model", "evaluate-model"} <= set(inside)
    assert "deploy-model" in _tasks(spec)
    for name in ("notify_webhook", "notify_emails", "tensorboard", "encryption_key", "network"):
        assert name in spec["root"]["inputDefinitions"]["parameters"], name
    # The evaluation import: deploy's `registered` artifact (the version and its ModelEvaluation), said in its
    # description, which the console shows.
    deploy = spec["components"]["comp-deploy-model"]
    assert deploy["outputDefinitions"]["artifacts"]["registered"]["artifactType"]["schemaTitle"] == "system.Artifact"
    assert "ModelEvaluation with the test split's metrics and slices" in " ".join(
        spec["deploymentSpec"]["executors"]["exec-deploy-model"]["container"]["command"]
    )


def test_with_emails_vertex_ai_mails_after_the_run_and_its_webhook_handler(tmp_path):
    """kfp takes one exit handler per pipeline body: the run (with its webhook handler) becomes a sub-pipeline of
    one whose exit task is gcpc's VertexNotificationEmailOp, reading notify_emails."""
    spec = _spec(tmp_path, email=True)
    root = spec["root"]["dag"]["tasks"]
    assert set(root) == {"exit-handler-1", "vertex-pipelines-notification-email"}
    mail = root["vertex-pipelines-notification-email"]
    assert mail["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    assert mail["inputs"]["parameters"]["recipients"] == {"componentInputParameter": "notify_emails"}
    executor = spec["deploymentSpec"]["executors"][spec["components"][mail["componentRef"]["name"]]["executorLabel"]]
    assert "VertexNotificationEmail" in executor["container"]["args"]
    tasks = _tasks(spec)
    assert tasks["notify-failure"]["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    assert {"stage-data", "train-model", "evaluate-model", "deploy-model"} <= set(tasks)
