"""trainer/drift.py: a profile's bins, PSI, the counting of new rows, and a statistics file checked before use."""

from __future__ import annotations

import json

import numpy as np
import pytest

from taxifare.errors import DataError
from trainer import drift
from trainer.features import FEATURES


def _columns(n: int, seed: int = 0, shift: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cols = {name: rng.normal(-73.97 if "lon" in name else 40.75, 0.03, n) + shift for name in FEATURES[:4]}
    cols["passengers"] = rng.integers(1, 7, n).astype(float)
    return cols


def test_the_same_distribution_is_near_zero_a_shifted_one_is_flagged():
    reference = drift.profile(_columns(200_000))
    assert all(len(f["counts"]) == len(f["edges"]) + 1 for f in reference["features"].values())
    same, moved = drift.Tally(reference), drift.Tally(reference)
    same.add(_columns(50_000, seed=1))
    moved.add(_columns(50_000, seed=2, shift=0.02))
    calm, shifted = drift.compare(same, 0.25), drift.compare(moved, 0.25)
    assert calm["max_psi"] < 0.01 and not calm["flagged"]
    assert shifted["flagged"] and set(shifted["drifted"]) >= {"pickuplon", "pickuplat"}
    assert not drift.compare(moved, 0.0)["flagged"]  # 0: never
    assert drift.psi([10, 0, 10], [10, 0, 10]) == 0 and drift.psi([10, 0, 10], [0, 20, 0]) > 5  # empty bins are rare


def test_past_200k_rows_one_in_eight_counts_whatever_the_blocks():
    reference = drift.profile(_columns(10_000))
    cols = _columns(1_000_000, seed=3)
    found = []
    for block in (1_000_000, 130_000, 77_777):
        tally = drift.Tally(reference)
        for start in range(0, 1_000_000, block):
            tally.add({k: v[start : start + block] for k, v in cols.items()})
        assert (tally.rows, tally.seen) == (200_000 + 800_000 // 8, 1_000_000)
        found.append(tally.counts["pickuplat"])
    assert all(np.array_equal(found[0], other) for other in found[1:])


def test_statistics_files_are_checked_and_a_model_without_one_is_not_an_error(tmp_path):
    assert drift.load(str(tmp_path)) is None
    drift.save(str(tmp_path), drift.profile(_columns(1000)))
    assert drift.load(str(tmp_path))["rows"] == 1000
    damaged = json.loads((tmp_path / drift.STATS_FILE).read_text())
    damaged["features"]["passengers"]["counts"].append(3)
    (tmp_path / drift.STATS_FILE).write_text(json.dumps(damaged))
    with pytest.raises(DataError, match="not training statistics this taxifare reads"):
        drift.load(str(tmp_path))
    (tmp_path / drift.STATS_FILE).write_text("{trunc")
    with pytest.raises(DataError, match="not valid JSON"):
        drift.load(str(tmp_path))
