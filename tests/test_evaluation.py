"""evaluate's work (taxifare/evaluation/): every model scored on the test split and its slices, and the gate."""

from __future__ import annotations

import os

import pytest

from taxifare.evaluation import gate, scoring
from taxifare.registry.local import LocalRegistry


def test_gate_decisions():
    base = {"rmse": 5.0}
    blessed, reason = gate.decide({"rmse": 5.1}, base, None, 0.02)
    assert not blessed and "does not beat the distance baseline" in reason
    blessed, reason = gate.decide({"rmse": 4.0}, base, None, 0.02)
    assert blessed and "no champion" in reason
    blessed, reason = gate.decide({"rmse": 4.0}, base, {"rmse": 3.95}, 0.02)
    assert blessed and "1.3% worse than the champion's 3.950, within the 2% tolerance" in reason
    blessed, reason = gate.decide({"rmse": 4.1}, base, {"rmse": 3.95}, 0.02)
    assert not blessed and "3.8% worse than the champion's 3.950, beyond the 2% tolerance" in reason
    # A better candidate says so (it used to read "within 2% of the champion" when it was 10% better).
    blessed, reason = gate.decide({"rmse": 3.6}, base, {"rmse": 4.0}, 0.02)
    assert blessed and "beats the baseline 5.000 and the champion's 4.000 by 10.0%" in reason
    # The same model retrained on the same data: deployed (not worse), and not said to "beat" it.
    blessed, reason = gate.decide({"rmse": 4.0}, base, {"rmse": 4.0}, 0.0)
    assert blessed and reason.endswith("equals the champion's")


def test_evaluation_breaks_errors_down_by_kind_of_trip(trained, sample_dir, tmp_path):
    from trainer import slices

    scored = scoring.checked_score(os.path.join(sample_dir, "test.csv"), os.path.join(sample_dir, "train.csv"),
                                    trained["export_dir"], "local", str(tmp_path / "reg"), 0.02)  # fmt: skip
    result = gate.assess(scored, 0.02)
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
    first = gate.assess(scoring.checked_score(*args, reg.root, 0.02), 0.02)
    assert first["champion"] is None and first["blessed"]
    assert first["candidate"]["rmse"] < first["baseline"]["rmse"]
    reg.promote(reg.register(trained["export_dir"], {"run_id": "r0"}).name)
    second = gate.assess(scoring.checked_score(*args, reg.root, 0.02), 0.02)
    assert second["champion_version"] == "v0001"
    assert second["champion"]["rmse"] == pytest.approx(second["candidate"]["rmse"], rel=1e-6)
    assert second["blessed"]


def test_a_champion_of_another_data_source_is_not_replaced_without_being_told(trained, sample_dir, tmp_path):
    """A demo on generated data once replaced a champion trained on the lab CSVs, on the demo's own test
    split. Figures of different sources are not compared; the gate says why and what lets it through."""
    reg = LocalRegistry(str(tmp_path / "reg"))
    lab = {"source": "files /data/taxi-*.csv", "schema": "s1", "test_fingerprint": "t1"}
    reg.promote(reg.register(trained["export_dir"], {"run_id": "r0", **lab}).name)
    args = (os.path.join(sample_dir, "test.csv"), os.path.join(sample_dir, "train.csv"), trained["export_dir"], "local")
    scored = scoring.checked_score(*args, reg.root, 0.02)
    assert scored.champion_lineage == lab
    demo = {"source": "generated sample", "schema": "s1", "test_fingerprint": "t2"}
    held = gate.assess(scored, 0.02, demo)
    assert not held["blessed"] and not held["comparable"]
    assert held["reason"] == (
        "the champion v0001 stays: it was trained on files /data/taxi-*.csv; this candidate on generated sample, "
        "so their figures are not comparable; allow_new_source (--allow-new-source) lets this candidate replace it"
    )
    allowed = gate.assess(scored, 0.02, demo, allow_new_source=True)
    assert allowed["blessed"] and allowed["reason"].endswith(
        "(a new data source: it was trained on files /data/taxi-*.csv; this candidate on generated sample)"
    )
    # The same source is compared as ever; another schema is another source; an unrecorded one is unknown.
    assert gate.assess(scored, 0.02, {**lab, "test_fingerprint": "t3"})["comparable"]
    assert "another feature schema" in gate.assess(scored, 0.02, {**lab, "schema": "s2"})["reason"]
    assert gate.other_source({"source": None}, lab) == "it records no data source (registered by an older taxifare)"
