"""deploy's work (taxifare/deployment.py): only a blessed candidate, registered with its metadata, and the
champion moved only if it is still the one evaluate beat."""

from __future__ import annotations

import json
import os

import pytest

from taxifare import deployment
from taxifare.errors import ChampionMoved, UsageError
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
    version = deployment.deploy(trained["export_dir"], str(path), "abc123", _local(tmp_path / "reg"), "run-1")
    champion = LocalRegistry(str(tmp_path / "reg")).champion()
    assert champion.name == version == "v0001"
    assert champion.metadata["data_fingerprint"] == "abc123" and champion.metadata["run_id"] == "run-1"
    assert champion.metadata["metrics"]["candidate"]["rmse"] == 1.0


def test_deploy_does_not_overwrite_a_champion_that_moved_since_evaluation(trained, tmp_path):
    """Two runs at once: the one evaluated against v0001 must not replace v0002."""
    reg = LocalRegistry(str(tmp_path / "reg"))
    reg.promote(reg.register(trained["export_dir"], {"run_id": "a"}).name)
    decision = {"blessed": True, "reason": "ok", "candidate": {"rmse": 1.0}, "baseline": {"rmse": 2.0},
                "champion": {"rmse": 1.1}, "champion_version": "v0001", "test_rows": 10}  # fmt: skip
    path = tmp_path / "decision.json"
    path.write_text(json.dumps(decision))
    reg.promote(reg.register(trained["export_dir"], {"run_id": "b"}).name)  # another run won meanwhile
    with pytest.raises(ChampionMoved, match="champion moved to v0002 while this run was evaluated against v0001"):
        deployment.deploy(trained["export_dir"], str(path), "fp", _local(reg.root), "run-c")
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
