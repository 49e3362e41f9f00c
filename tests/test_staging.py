"""stage_data's work (taxifare/staging.py): validate, split by key hash, count rejects."""

from __future__ import annotations

import os

import numpy as np
import pytest

from taxifare import staging
from taxifare.errors import UsageError
from trainer import sources
from trainer.config import Source


def test_split_by_key_hash_is_stable_and_close_to_the_fractions():
    keys = [f"trip-{i}" for i in range(20000)]
    first = staging.split_index(keys, 0.1, 0.2)
    assert np.array_equal(first, staging.split_index(list(reversed(keys)), 0.1, 0.2)[::-1])
    shares = np.bincount(first, minlength=3) / len(keys)
    assert shares == pytest.approx([0.7, 0.1, 0.2], abs=0.015)


def test_stage_splits_one_source_by_key_and_counts_rejects(tmp_path, sample_dir):
    out = {s: str(tmp_path / f"{s}.csv") for s in staging.SPLITS}
    source = os.path.join(sample_dir, "*.csv")
    result = staging.stage(out, Source(source=source, valid_fraction=0.2, test_fraction=0.2))
    assert result["rows_kept"] == sum(result["split_rows"].values())
    assert result["rows_read"] - result["rows_kept"] == sum(result["rejected"].values()) > 0
    keys = {}
    for split, path in out.items():
        cols, stats = sources.read_columns(path, max_bad_fraction=0.0)  # staged files are clean
        assert stats.kept == result["split_rows"][split]
        keys[split] = set(cols["key"])
    assert not keys["train"] & keys["test"] and not keys["valid"] & keys["test"]
    again_out = {s: str(tmp_path / f"again-{s}.csv") for s in staging.SPLITS}
    again = staging.stage(again_out, Source(source=source, valid_fraction=0.2, test_fraction=0.2))
    assert again["fingerprint"] == result["fingerprint"]


def test_stage_with_separate_sources_keeps_them_apart(tmp_path, sample_dir):
    out = {s: str(tmp_path / f"{s}.csv") for s in staging.SPLITS}
    given = {f"{s}_source": os.path.join(sample_dir, f"{s}.csv") for s in staging.SPLITS}
    result = staging.stage(out, Source(**given))
    for split in staging.SPLITS:
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
        staging.stage({s: str(tmp_path / s) for s in staging.SPLITS}, Source(**kwargs))


def _champion_with_statistics(tmp_path, sample_dir) -> str:
    """A local registry whose champion carries the training statistics of the sample's train split."""
    from taxifare.registry.local import LocalRegistry
    from trainer import drift

    model = tmp_path / "export"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"")  # the registry checks the file is there, not what it holds
    cols, _ = sources.read_columns(os.path.join(sample_dir, "train.csv"))
    drift.save(str(model), drift.profile(cols))
    reg = LocalRegistry(str(tmp_path / "registry"))
    reg.promote(reg.register(str(model), {"run_id": "r1", "source": f"files {tmp_path / 'feed.csv'}"}).name)
    return reg.root


def test_staged_rows_are_compared_with_the_champions_training_data_and_a_shift_stops_the_run(tmp_path, sample_dir):
    from taxifare.errors import DataError
    from trainer import sample_data

    registry = _champion_with_statistics(tmp_path, sample_dir)
    champion, reference, source = staging.champion_profile("local", registry)
    feed = tmp_path / "feed.csv"  # the champion's source: new rows arrive at the same path
    assert champion == "the champion v0001" and reference is not None and source == f"files {feed}"
    assert staging.champion_profile("local", str(tmp_path / "none")) == ("", None, None)
    out = {s: str(tmp_path / f"{s}.csv") for s in staging.SPLITS}
    sample_data.write_csv(sample_data.generate(4000, seed=12), str(feed))
    same = staging.stage(out, Source(source=str(feed)), reference=reference, drift_threshold=0.25)
    assert not same["drift"]["flagged"] and staging.metrics(same)["drift_max_psi"] < 0.1
    staging.check_drift(same, champion, source)  # nothing to stop
    assert staging.summary(same, champion)[-1].startswith("drift vs the training data of the champion v0001: PSI")

    trips = sample_data.generate(4000, seed=13)
    trips["passengers"] = np.full(len(trips["passengers"]), 6.0)  # every cab full: a feed that changed
    sample_data.write_csv(trips, str(feed))
    shifted = staging.stage(out, Source(source=str(feed)), reference=reference, drift_threshold=0.25)
    assert shifted["drift"]["drifted"] == ["passengers"]
    with pytest.raises(DataError, match=r"moved from the training data of the champion v0001 \(PSI passengers") as err:
        staging.check_drift(shifted, champion, source)
    assert "--drift-threshold" in str(err.value) and "stopped before training" in str(err.value)
    unchecked = staging.stage(out, Source(source=str(feed)), reference=reference, drift_threshold=0.0)
    staging.check_drift(unchecked, champion, source)  # 0: the check is off
    # Rows of another source differ by nature: reported, not stopped (the gate decides: allow_new_source).
    moved = tmp_path / "elsewhere.csv"
    sample_data.write_csv(trips, str(moved))
    other = staging.stage(out, Source(source=str(moved)), reference=reference, drift_threshold=0.25)
    assert other["drift"]["flagged"]
    staging.check_drift(other, champion, source)
    with pytest.raises(DataError, match="stopped before training"):  # a champion of no recorded source: checked
        staging.check_drift(other, champion, None)
