"""Unit tests of the plain functions behind each pipeline step."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from components import deploy, evaluate, stage_data
from taxifare.errors import ChampionMoved, UsageError
from taxifare.registry.local import LocalRegistry, RegistryError
from trainer import sources


def test_split_by_key_hash_is_stable_and_close_to_the_fractions():
    keys = [f"trip-{i}" for i in range(20000)]
    first = stage_data.split_index(keys, 0.1, 0.2)
    assert np.array_equal(first, stage_data.split_index(list(reversed(keys)), 0.1, 0.2)[::-1])
    shares = np.bincount(first, minlength=3) / len(keys)
    assert shares == pytest.approx([0.7, 0.1, 0.2], abs=0.015)


def test_stage_splits_one_source_by_key_and_counts_rejects(tmp_path, sample_dir):
    out = {s: str(tmp_path / f"{s}.csv") for s in stage_data.SPLITS}
    source = os.path.join(sample_dir, "*.csv")
    result = stage_data.stage(out, stage_data.Source(source=source, valid_fraction=0.2, test_fraction=0.2))
    assert result["rows_kept"] == sum(result["split_rows"].values())
    assert result["rows_read"] - result["rows_kept"] == sum(result["rejected"].values()) > 0
    keys = {}
    for split, path in out.items():
        cols, stats = sources.read_columns(path, max_bad_fraction=0.0)  # staged files are clean
        assert stats.kept == result["split_rows"][split]
        keys[split] = set(cols["key"])
    assert not keys["train"] & keys["test"] and not keys["valid"] & keys["test"]
    again_out = {s: str(tmp_path / f"again-{s}.csv") for s in stage_data.SPLITS}
    again = stage_data.stage(again_out, stage_data.Source(source=source, valid_fraction=0.2, test_fraction=0.2))
    assert again["fingerprint"] == result["fingerprint"]


def test_stage_with_separate_sources_keeps_them_apart(tmp_path, sample_dir):
    out = {s: str(tmp_path / f"{s}.csv") for s in stage_data.SPLITS}
    given = {f"{s}_source": os.path.join(sample_dir, f"{s}.csv") for s in stage_data.SPLITS}
    result = stage_data.stage(out, stage_data.Source(**given))
    for split in stage_data.SPLITS:
        _, stats = sources.read_columns(os.path.join(sample_dir, f"{split}.csv"))
        assert result["split_rows"][split] == stats.kept


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no data"),
        ({"source": "x.csv", "train_source": "y.csv"}, "not both"),
        ({"source": "x.csv", "valid_fraction": 0.6, "test_fraction": 0.5}, "sum to less than 1"),
    ],
)
def test_stage_rejects_bad_parameters(tmp_path, kwargs, message):
    with pytest.raises(UsageError, match=message):
        stage_data.stage({s: str(tmp_path / s) for s in stage_data.SPLITS}, stage_data.Source(**kwargs))


def test_gate_decisions():
    base = {"rmse": 5.0}
    blessed, reason = evaluate.decide({"rmse": 5.1}, base, None, 0.02)
    assert not blessed and "does not beat the distance baseline" in reason
    blessed, reason = evaluate.decide({"rmse": 4.0}, base, None, 0.02)
    assert blessed and "no champion" in reason
    blessed, reason = evaluate.decide({"rmse": 4.0}, base, {"rmse": 3.95}, 0.02)
    assert blessed and "1.3% worse than the champion's 3.950, within the 2% tolerance" in reason
    blessed, reason = evaluate.decide({"rmse": 4.1}, base, {"rmse": 3.95}, 0.02)
    assert not blessed and "3.8% worse than the champion's 3.950, beyond the 2% tolerance" in reason
    # A better candidate says so (it used to read "within 2% of the champion" when it was 10% better).
    blessed, reason = evaluate.decide({"rmse": 3.6}, base, {"rmse": 4.0}, 0.02)
    assert blessed and "beats the baseline 5.000 and the champion's 4.000 by 10.0%" in reason
    # The same model retrained on the same data: deployed (not worse), and not said to "beat" it.
    blessed, reason = evaluate.decide({"rmse": 4.0}, base, {"rmse": 4.0}, 0.0)
    assert blessed and reason.endswith("equals the champion's")


def test_evaluation_breaks_errors_down_by_kind_of_trip(trained, sample_dir, tmp_path):
    from trainer import slices

    scored = evaluate.checked_score(os.path.join(sample_dir, "test.csv"), os.path.join(sample_dir, "train.csv"),
                                    trained["export_dir"], "local", str(tmp_path / "reg"), 0.02)  # fmt: skip
    result = evaluate.assess(scored, 0.02)
    by_name = {s["name"]: s for s in result["slices"]}
    assert list(by_name) == [s.name for s in slices.SLICES]
    bands = [by_name[s.name]["rows"] for s in slices.SLICES if s.name.startswith("distance")]
    assert sum(bands) == result["test_rows"]  # the distance bands partition the trips
    groups = [by_name[s.name]["rows"] for s in slices.SLICES if s.name.startswith("passengers")]
    assert sum(groups) == result["test_rows"]
    assert 0 < by_name["inside manhattan"]["rows"] < result["test_rows"]
    assert by_name["airport jfk"]["rows"] > 0  # the sample data has JFK flat fares
    for s in result["slices"]:
        if s["rows"]:
            assert s["candidate"]["rmse"] >= 0 and s["baseline"]["rmse"] >= 0 and s["champion"] is None


def test_slices_geometry():
    import numpy as np

    from trainer import slices

    times_square, brooklyn, jfk = (-73.9855, 40.7580), (-73.9442, 40.6782), (-73.7781, 40.6413)
    lon, lat = (
        np.array([p[0] for p in (times_square, brooklyn, jfk)]),
        np.array([p[1] for p in (times_square, brooklyn, jfk)]),
    )
    assert slices.inside(slices.MANHATTAN, lon, lat).tolist() == [True, False, False]
    cols = {"pickuplon": lon[[0, 0]], "pickuplat": lat[[0, 0]], "dropofflon": lon[[1, 2]], "dropofflat": lat[[1, 2]],
            "passengers": np.array([1.0, 5.0])}  # fmt: skip
    masks = slices.masks(cols)
    assert masks["airport jfk"].tolist() == [False, True] and masks["passengers 5-6"].tolist() == [False, True]
    assert masks["distance 5-10 km"].tolist() == [True, False] and masks["distance 20+ km"].tolist() == [False, True]


def test_evaluate_scores_candidate_baseline_and_champion(trained, sample_dir, tmp_path):
    reg = LocalRegistry(str(tmp_path / "reg"))
    args = (os.path.join(sample_dir, "test.csv"), os.path.join(sample_dir, "train.csv"), trained["export_dir"], "local")
    first = evaluate.assess(evaluate.checked_score(*args, reg.root, 0.02), 0.02)
    assert first["champion"] is None and first["blessed"]
    assert first["candidate"]["rmse"] < first["baseline"]["rmse"]
    reg.promote(reg.register(trained["export_dir"], {"run_id": "r0"}).name)
    second = evaluate.assess(evaluate.checked_score(*args, reg.root, 0.02), 0.02)
    assert second["champion_version"] == "v0001"
    assert second["champion"]["rmse"] == pytest.approx(second["candidate"]["rmse"], rel=1e-6)
    assert second["blessed"]


def test_registry_versions_are_immutable_and_champion_moves_atomically(trained, tmp_path):
    reg = LocalRegistry(str(tmp_path / "reg"))
    assert reg.champion() is None and reg.versions() == []
    v1 = reg.register(trained["export_dir"], {"run_id": "a"})
    v2 = reg.register(trained["export_dir"], {"run_id": "b"})
    assert [v.name for v in reg.versions()] == ["v0001", "v0002"]
    assert reg.champion() is None  # registering does not promote
    reg.promote(v2.name)
    assert reg.champion().name == "v0002"
    reg.promote(v1.name)  # rollback
    assert reg.champion().name == "v0001" and os.path.isfile(os.path.join(v2.model_dir, "saved_model.pb"))
    assert v1.metadata["run_id"] == "a" and "created" in v1.metadata
    with pytest.raises(RegistryError, match=r"no version 'v0009'.*known: v0001, v0002"):
        reg.promote("v0009")
    assert not [n for n in os.listdir(reg.versions_dir) if n.startswith(".incoming")]


def _local(registry) -> deploy.DeployTarget:
    return deploy.DeployTarget(deploy_target="local", registry=str(registry))


def test_deploy_refuses_an_unblessed_candidate(trained, tmp_path):
    decision = tmp_path / "decision.json"
    decision.write_text(json.dumps({"blessed": False, "reason": "no"}))
    with pytest.raises(UsageError, match="did not bless"):
        deploy.deploy(trained["export_dir"], str(decision), "fp", _local(tmp_path / "reg"), "run")
    assert not os.path.exists(tmp_path / "reg" / "aliases.json")


def test_deploy_registers_with_metadata_and_promotes(trained, tmp_path):
    decision = {"blessed": True, "reason": "good", "candidate": {"rmse": 1.0}, "baseline": {"rmse": 2.0},
                "champion": None, "champion_version": None, "test_rows": 10}  # fmt: skip
    path = tmp_path / "decision.json"
    path.write_text(json.dumps(decision))
    version = deploy.deploy(trained["export_dir"], str(path), "abc123", _local(tmp_path / "reg"), "run-1")
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
        deploy.deploy(trained["export_dir"], str(path), "fp", _local(reg.root), "run-c")
    assert reg.champion().name == "v0002"
    assert [v.name for v in reg.versions()] == ["v0001", "v0002", "v0003"]


def test_deploy_local_needs_an_absolute_registry(trained, tmp_path):
    decision = tmp_path / "decision.json"
    decision.write_text(json.dumps({"blessed": True, "reason": "", "candidate": {}, "baseline": {}, "champion": None,
                                    "test_rows": 1}))  # fmt: skip
    for registry in ("", "relative/dir"):
        with pytest.raises(UsageError, match="deploy_target=local needs registry=/an/absolute/path"):
            deploy.deploy(trained["export_dir"], str(decision), "fp", deploy.DeployTarget(registry=registry), "run")
    assert not os.path.exists("relative")


def test_version_names_cannot_escape_the_registry(tmp_path):
    with pytest.raises(RegistryError, match="not a version name"):
        LocalRegistry(str(tmp_path)).promote("../../etc/v0001")
