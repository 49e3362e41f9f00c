"""The whole DAG through kfp's local runner: both branches of the gate, and failure safety."""

from __future__ import annotations

import contextlib
import io
import json
import os

import pytest

from pipeline import local_run
from taxifare import cli
from taxifare.registry.local import LocalRegistry

pytestmark = pytest.mark.slow


def _params(sample_dir: str, registry: str, **overrides) -> dict:
    params = {f"{s}_source": os.path.join(sample_dir, f"{s}.csv") for s in ("train", "valid", "test")}
    params.update({"train_steps": 300, "registry": registry, **overrides})
    return params


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def history(tmp_path_factory, sample_dir):
    """One workspace, built whole by this fixture (so each test also passes alone): a deployed run,
    a run the gate stopped, and a run that failed on bad data."""
    root = tmp_path_factory.mktemp("pipeline")
    ws = {"runs": str(root / "runs"), "registry": str(root / "registry")}
    ws["first"] = local_run.run(ws["runs"], _params(sample_dir, ws["registry"]))
    # Two steps of training cannot beat the distance rule: the gate must hold.
    ws["second"] = local_run.run(ws["runs"], _params(sample_dir, ws["registry"], train_steps=2))
    bad = root / "bad.csv"
    bad.write_text("8.5,0,0,-73.97,40.76,1,k1\n" * 50 + "8.5,-73.98,40.75,-73.97,40.76,1,k2\n")
    ws["bad_data"] = str(bad)
    ws["failed"] = _cli("run", "--data", str(bad), "--runs-root", ws["runs"], "--registry", ws["registry"],
                        "--train-steps", "10")  # fmt: skip
    return ws


def test_good_candidate_is_deployed_then_a_worse_one_is_not(history):
    first, second = history["first"], history["second"]
    assert first["status"] == "succeeded", first.get("error")
    assert [first["tasks"][t]["state"] for t in ("stage-data", "train-model", "evaluate-model", "deploy-model")] == [
        "succeeded"
    ] * 4
    assert first["decision"]["blessed"] and first["deployed_version"] == "v0001"
    reg = LocalRegistry(history["registry"])
    champion = reg.champion()
    # One run id: the version records the id `taxifare runs show` takes.
    assert champion.name == "v0001" and champion.metadata["run_id"] == first["run_id"]
    assert champion.metadata["data_fingerprint"]

    assert second["status"] == "succeeded"
    assert second["decision"]["blessed"] is False
    assert "does not beat the distance baseline" in second["decision"]["reason"]
    assert second["decision"]["champion_version"] == "v0001"
    assert second["tasks"]["deploy-model"]["state"] == "skipped"
    assert second["deployed_version"] is None
    assert reg.champion().name == "v0001"

    listed = [r["run_id"] for r in local_run.list_runs(history["runs"])]
    assert set(listed) >= {first["run_id"], second["run_id"]}
    assert first["run_id"] != second["run_id"]


def test_bad_data_fails_the_run_names_the_task_and_leaves_the_champion(history, tmp_path):
    code, out, _ = history["failed"]
    assert code == 1
    assert "FAILED in task stage-data" in out and "pickup_outside_nyc=50" in out
    assert "champion were not changed" in out
    reg = LocalRegistry(history["registry"])
    assert reg.champion().name == "v0001"
    run_id = out.split("taxifare runs show ")[1].split()[0]
    record = local_run.load(history["runs"], run_id)
    assert record["status"] == "failed" and record["failed_task"] == "stage-data"
    assert record["tasks"]["train-model"]["state"] == "skipped"
    code, shown, _ = _cli("runs", "show", run_id, "--runs-root", history["runs"])
    assert code == 0 and "✘ stage-data" in shown

    # The same command works once the data is fixed.
    from trainer import sample_data

    fixed = tmp_path / "fixed.csv"
    sample_data.write_csv(sample_data.generate(3000, seed=11), str(fixed))
    code, out, _ = _cli("run", "--data", str(fixed), "--runs-root", history["runs"], "--registry",
                        history["registry"], "--train-steps", "10")  # fmt: skip
    assert code == 0, out
    assert "SUCCEEDED" in out and "not blessed" in out  # ten steps cannot beat the champion
    assert reg.champion().name == "v0001"


def test_runs_and_models_commands(history):
    runs = ["--runs-root", history["runs"]]
    code, listing, _ = _cli("runs", "list", *runs)
    assert code == 0 and "succeeded" in listing and "failed" in listing
    code, out, _ = _cli("models", "list", "--registry", history["registry"])
    assert code == 0 and "★ v0001" in out and history["first"]["run_id"] in out
    code, _, err = _cli("models", "promote", "v0042", "--registry", history["registry"])
    assert code == 1 and "no version 'v0042'" in err

    # A run by its id, `latest`, a unique prefix, or the kfp job name of its pipeline root.
    first = history["first"]
    newest = local_run.list_runs(history["runs"])[0]["run_id"]
    assert _cli("runs", "show", "latest", *runs)[1].startswith(f"run {newest} ")
    assert _cli("runs", "show", first["run_id"][:-2], *runs)[1].startswith(f"run {first['run_id']} ")
    assert _cli("runs", "show", first["kfp_job_name"], *runs)[1].startswith(f"run {first['run_id']} ")
    code, _, err = _cli("runs", "show", "2", *runs)  # every run id starts with the year
    assert code == 2 and "matches" in err and "type more of the id" in err
    code, _, err = _cli("runs", "show", "nope", *runs)
    assert code == 2 and "no run 'nope'" in err and first["run_id"] in err


def test_run_record_is_json_with_task_durations(history):
    with open(os.path.join(history["first"]["run_dir"], "run.json")) as f:
        record = json.load(f)
    for name in ("stage-data", "train-model", "evaluate-model", "deploy-model"):
        assert record["tasks"][name]["state"] == "succeeded"
        assert isinstance(record["tasks"][name]["seconds"], float)
    assert record["params"]["run_id"] == record["run_id"]
    # kfp's per-task temporary folders went under the run's folder, and are gone with the run.
    assert not os.path.exists(os.path.join(history["first"]["run_dir"], "tmp"))
