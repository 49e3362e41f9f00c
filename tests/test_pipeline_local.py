"""The whole DAG through kfp's local runner: both branches of the gate, and failure safety."""

from __future__ import annotations

import json
import os

import pytest

from pipeline import cli, local_run
from registry.local import LocalRegistry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    return {"runs": str(root / "runs"), "registry": str(root / "registry")}


def _params(sample_dir: str, **overrides) -> dict:
    params = {f"{s}_source": os.path.join(sample_dir, f"{s}.csv") for s in ("train", "valid", "test")}
    params.update({"train_steps": 300, **overrides})
    return params


def test_good_candidate_is_deployed_then_a_worse_one_is_not(workspace, sample_dir):
    first = local_run.run(workspace["runs"], workspace["registry"], _params(sample_dir))
    assert first["status"] == "succeeded", first.get("error")
    assert [first["tasks"][t]["state"] for t in ("stage-data", "train-model", "evaluate-model", "deploy-model")] == [
        "succeeded"
    ] * 4
    assert first["decision"]["blessed"] and first["deployed_version"] == "v0001"
    reg = LocalRegistry(workspace["registry"])
    champion = reg.champion()
    assert champion.name == "v0001" and champion.metadata["run_id"].startswith("taxifare-")
    assert champion.metadata["data_fingerprint"]

    # Two steps of training cannot beat the distance rule: the gate must hold.
    second = local_run.run(workspace["runs"], workspace["registry"], _params(sample_dir, train_steps=2))
    assert second["status"] == "succeeded"
    assert second["decision"]["blessed"] is False
    assert "does not beat the distance baseline" in second["decision"]["reason"]
    assert second["decision"]["champion_version"] == "v0001"
    assert second["tasks"]["deploy-model"]["state"] == "skipped"
    assert second["deployed_version"] is None
    assert reg.champion().name == "v0001" and len(reg.versions()) == 1

    listed = [r["run_id"] for r in local_run.list_runs(workspace["runs"])]
    assert set(listed) >= {first["run_id"], second["run_id"]}
    assert first["run_id"] != second["run_id"]


def test_bad_data_fails_the_run_names_the_task_and_leaves_the_champion(workspace, sample_dir, tmp_path, capsys):
    reg = LocalRegistry(workspace["registry"])
    before = (reg.aliases(), [v.name for v in reg.versions()])
    bad = tmp_path / "bad.csv"
    bad.write_text("8.5,0,0,-73.97,40.76,1,k1\n" * 50 + "8.5,-73.98,40.75,-73.97,40.76,1,k2\n")
    code = cli.main(["run", "--data", str(bad), "--runs-root", workspace["runs"], "--registry", workspace["registry"],
                     "--train-steps", "10"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED in task stage-data" in out and "pickup_outside_nyc=50" in out
    assert "champion were not changed" in out
    assert (reg.aliases(), [v.name for v in reg.versions()]) == before
    run_id = out.split("taxifare runs show ")[1].split()[0]
    record = local_run.load(workspace["runs"], run_id)
    assert record["status"] == "failed" and record["failed_task"] == "stage-data"
    assert record["tasks"]["train-model"]["state"] == "skipped"

    assert cli.main(["runs", "show", run_id, "--runs-root", workspace["runs"]]) == 0
    assert "✘ stage-data" in capsys.readouterr().out

    # The same command works once the data is fixed.
    from trainer import sample_data

    sample_data.write_csv(sample_data.generate(3000, seed=11), str(bad))
    code = cli.main(["run", "--data", str(bad), "--runs-root", workspace["runs"], "--registry", workspace["registry"],
                     "--train-steps", "10"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "SUCCEEDED" in out and "not blessed" in out  # ten steps cannot beat the champion


def test_runs_and_models_commands(workspace, capsys):
    assert cli.main(["runs", "list", "--runs-root", workspace["runs"]]) == 0
    listing = capsys.readouterr().out
    assert "succeeded" in listing and "failed" in listing
    assert cli.main(["models", "list", "--registry", workspace["registry"]]) == 0
    assert "★ v0001" in capsys.readouterr().out
    assert cli.main(["models", "promote", "v0042", "--registry", workspace["registry"]]) == 2
    assert "no version 'v0042'" in capsys.readouterr().err


def test_run_record_is_json_with_task_durations(workspace):
    runs = local_run.list_runs(workspace["runs"])
    ok = next(r for r in runs if r["deployed_version"])
    with open(os.path.join(ok["run_dir"], "run.json")) as f:
        record = json.load(f)
    for name in ("stage-data", "train-model", "evaluate-model", "deploy-model"):
        assert record["tasks"][name]["state"] == "succeeded"
        assert isinstance(record["tasks"][name]["seconds"], float)
