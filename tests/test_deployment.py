"""deploy's work (taxifare/deployment.py): only a blessed candidate, registered with its metadata, and the
champion moved only if it is still the one evaluate beat."""

from __future__ import annotations

import json
import os

import pytest

from taxifare import deployment
from taxifare.errors import UsageError
from taxifare.registry.local import LocalRegistry
from trainer.config import DeployTarget


def _local(registry) -> DeployTarget:
    return DeployTarget(deploy_target="local", registry=str(registry))


def test_deploy_refuses_an_unblessed_candidate(trained, tmp_path):
    decision = tmp_path / "decision.json"
    decision.write_text(json.dumps({"blessed": False, "reason": "no"}))
    with pytest.raises(UsageError, match="did not bless"):
        deployment.deploy(trained["export_dir"], str(decision), "fp", _local(tmp_path / "reg"), "run")
    assert not os.path.exists(tmp_path / "reg" / "aliases.json")


def test_deploy_registers_with_metadata_and_promotes(trained, tmp_path):
    decision = {"blessed": True, "reason": "good", "candidate": {"rmse": 1.0}, "baseline": {"rmse": 2.0},
                "champion": None, "champion_version": None, "test_rows": 10}  # fmt: skip
    path = tmp_path / "decision.json"
    path.write_text(json.dumps(decision))
    done = deployment.deploy(trained["export_dir"], str(path), "abc123", _local(tmp_path / "reg"), "run-1")
    reg = LocalRegistry(str(tmp_path / "reg"))
    champion = reg.champion()
    assert champion.name == done.version == "v0001" and done.promoted
    assert champion.metadata["data_fingerprint"] == "abc123" and champion.metadata["run_id"] == "run-1"
    assert champion.metadata["metrics"]["candidate"]["rmse"] == 1.0
    # The move is in the champion's history: when, which run, from what, and why.
    (move,), problems = reg.history()
    assert (move.previous, move.to, move.run_id, move.reason, problems) == (None, "v0001", "run-1", "good", [])


def test_an_identical_candidate_adds_no_version(trained, tmp_path):
    """Same staged rows, same hyperparameters (seed included), same trainer code: the same model."""
    decision = {"blessed": True, "reason": "good", "candidate": {"rmse": 1.0}, "baseline": {"rmse": 2.0},
                "champion": None, "champion_version": None, "test_rows": 10}  # fmt: skip
    path = tmp_path / "decision.json"
    path.write_text(json.dumps(decision))
    info = {"hparams": {"seed": 42, "train_steps": 400}, "code": "abc"}
    first = deployment.deploy(trained["export_dir"], str(path), "fp1", _local(tmp_path / "reg"), "run-1",
                              model_info=info)  # fmt: skip
    decision.update(champion={"rmse": 1.0}, champion_version="v0001")
    path.write_text(json.dumps(decision))
    again = deployment.deploy(trained["export_dir"], str(path), "fp1", _local(tmp_path / "reg"), "run-2",
                              model_info=info)  # fmt: skip
    assert (first.version, again.version, again.promoted) == ("v0001", "v0001", False)
    assert again.note.startswith("identical to v0001")
    other_seed = {**info, "hparams": {"seed": 43, "train_steps": 400}}
    third = deployment.deploy(trained["export_dir"], str(path), "fp1", _local(tmp_path / "reg"), "run-3",
                              model_info=other_seed)  # fmt: skip
    assert third.version == "v0002" and third.promoted
    assert [v.name for v in LocalRegistry(str(tmp_path / "reg")).versions()] == ["v0001", "v0002"]


def test_deploy_does_not_overwrite_a_champion_that_moved_since_evaluation(trained, tmp_path):
    """Two runs at once: the one evaluated against v0001 must not replace v0002."""
    reg = LocalRegistry(str(tmp_path / "reg"))
    reg.promote(reg.register(trained["export_dir"], {"run_id": "a"}).name)
    decision = {"blessed": True, "reason": "ok", "candidate": {"rmse": 1.0}, "baseline": {"rmse": 2.0},
                "champion": {"rmse": 1.1}, "champion_version": "v0001", "test_rows": 10}  # fmt: skip
    path = tmp_path / "decision.json"
    path.write_text(json.dumps(decision))
    reg.promote(reg.register(trained["export_dir"], {"run_id": "b"}).name)  # another run won meanwhile
    # Its own outcome, not a failure: registered, not promoted, and why.
    done = deployment.deploy(trained["export_dir"], str(path), "fp", _local(reg.root), "run-c")
    assert (done.version, done.promoted) == ("v0003", False)
    assert "not promoted: champion moved to v0002 while this run was evaluated against v0001" in done.note
    assert reg.champion().name == "v0002"
    assert [v.name for v in reg.versions()] == ["v0001", "v0002", "v0003"]


def test_deploy_local_needs_an_absolute_registry(trained, tmp_path):
    decision = tmp_path / "decision.json"
    decision.write_text(json.dumps({"blessed": True, "reason": "", "candidate": {}, "baseline": {}, "champion": None,
                                    "test_rows": 1}))  # fmt: skip
    for registry in ("", "relative/dir"):
        with pytest.raises(UsageError, match="deploy_target=local needs registry=/an/absolute/path"):
            deployment.deploy(trained["export_dir"], str(decision), "fp", DeployTarget(registry=registry), "run")
    assert not os.path.exists("relative")
