"""Plausible outputs: for every instance inside the schema's ranges the exported model answers a
finite fare between the $2.50 flag fare and the largest training fare, through both loaders
(tf.saved_model.load, which evaluate and `taxifare serve` use, and TF Serving's session loader).
The bounds are graph constants taken from the training data and saved in feature_stats.json.
"""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest

from trainer import data, predict, servable, sources, task
from trainer import features as F

GRID_STEPS = 5  # values per coordinate, the box's edges included: 5**4 pickup x dropoff pairs
RANDOM_POINTS = 300
FAR_PICKUP = (-73.137, 41.366)  # inside the box, far from any trip in the lab's data
MIDTOWN = (F.CENTER_LON, F.CENTER_LAT)


def _output_dir(export_dir: str) -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(export_dir)))


def _stats(trained: dict) -> dict:
    with open(os.path.join(_output_dir(trained["export_dir"]), "feature_stats.json")) as f:
        return json.load(f)


def nyc_box_instances() -> np.ndarray:
    """[N, 5]: a coarse grid over the whole box (edges included) x passenger counts, plus random points."""
    lons, lats = np.linspace(*F.NYC_LON, GRID_STEPS), np.linspace(*F.NYC_LAT, GRID_STEPS)
    low, high = F.PASSENGERS_RANGE
    grid = list(itertools.product(lons, lats, lons, lats, (low, (low + high) // 2, high)))
    rng = np.random.default_rng(0)
    uniform = np.stack(
        [
            rng.uniform(*F.NYC_LON, RANDOM_POINTS),
            rng.uniform(*F.NYC_LAT, RANDOM_POINTS),
            rng.uniform(*F.NYC_LON, RANDOM_POINTS),
            rng.uniform(*F.NYC_LAT, RANDOM_POINTS),
            rng.integers(low, high + 1, RANDOM_POINTS),
        ],
        axis=1,
    )
    return np.concatenate([np.array(grid), uniform]).astype(np.float32)


def both_loaders(export_dir: str, raw: np.ndarray) -> dict[str, np.ndarray]:
    session = servable.session_run(export_dir, predict.SIGNATURE, servable.probe_feeds(raw))
    return {
        "tf.saved_model.load": predict.Predictor(export_dir).predict(raw),
        "session loader": np.asarray(session[predict.OUTPUT]).reshape(-1),
    }


def test_every_fare_in_the_nyc_box_is_plausible_through_both_loaders(trained):
    cap = _stats(trained)["fare_max"]
    raw = nyc_box_instances()
    assert 2000 < len(raw) < 3000  # bounded: this runs in every `make test`
    for loader, fares in both_loaders(trained["export_dir"], raw).items():
        assert fares.shape == (len(raw),), loader
        assert np.isfinite(fares).all(), loader
        assert fares.min() >= F.FARE_RANGE[0], (loader, float(fares.min()))
        assert fares.max() <= cap, (loader, float(fares.max()), cap)


def test_a_pickup_far_outside_the_data_gets_a_fare_within_the_cap(trained):
    cap = _stats(trained)["fare_max"]
    raw = np.array([[*FAR_PICKUP, *MIDTOWN, 1.0], [*MIDTOWN, *FAR_PICKUP, 1.0]], np.float32)
    for loader, fares in both_loaders(trained["export_dir"], raw).items():
        assert np.isfinite(fares).all() and (F.FARE_RANGE[0] <= fares).all() and (fares <= cap).all(), loader


def test_the_bounds_are_stored_and_come_from_the_training_data(trained, sample_dir):
    import tensorflow as tf

    from trainer import model

    stats = _stats(trained)
    assert set(model.STATS_KEYS) <= set(stats)
    raw, fares = data.to_arrays(sources.read_columns(os.path.join(sample_dir, "train.csv"))[0])
    assert stats["fare_min"] == F.FARE_RANGE[0]
    assert stats["fare_max"] == pytest.approx(float(fares.max()))
    engineered = model.engineer(tf.constant(raw)).numpy().astype(np.float64)
    q = F.FEATURE_CLIP_QUANTILE
    np.testing.assert_allclose(stats["feature_min"], np.quantile(engineered, q, axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["feature_max"], np.quantile(engineered, 1 - q, axis=0), rtol=1e-6)
    # The quantiles clip something: the trip distance (km, column 2) reaches past them both ways.
    assert engineered[:, 2].min() < stats["feature_min"][2] < stats["feature_max"][2] < engineered[:, 2].max()


@pytest.mark.parametrize("fare_mean", [-1e4, 1e4])
def test_the_bounds_hold_in_the_export_whatever_the_network_answers(tmp_path, fare_mean):
    """A network whose every answer is far out of range: served fares sit on the bounds, training sees it raw."""
    from trainer import model

    stats = {
        "mean": [0.0] * 12, "variance": [1.0] * 12, "fare_mean": fare_mean,
        "feature_min": [-1e3] * 12, "feature_max": [1e3] * 12, "fare_min": F.FARE_RANGE[0], "fare_max": 80.0,
    }  # fmt: skip
    net = model.build((8, 4), stats, seed=1)
    expected = F.FARE_RANGE[0] if fare_mean < 0 else 80.0
    raw = servable.PROBE
    assert np.all(np.abs(net(raw, training=True).numpy()) > 1000)  # the loss sees the error unclipped
    export_dir = model.export(net, str(tmp_path / "export"))
    for loader, fares in both_loaders(export_dir, raw).items():
        np.testing.assert_array_equal(fares, np.full(len(raw), expected, np.float32), err_msg=loader)


def test_resuming_from_an_older_trainers_stats_is_refused(tmp_path, sample_dir, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "feature_stats.json").write_text(json.dumps({"mean": [0.0] * 12, "variance": [1.0] * 12, "fare_mean": 11}))
    argv = [
        "--train_data_paths", os.path.join(sample_dir, "train.csv"),
        "--eval_data_paths", os.path.join(sample_dir, "valid.csv"),
        "--output_dir", str(out), "--train_steps", "10",
    ]  # fmt: skip
    assert task.main(argv) == 2
    err = capsys.readouterr().err
    assert "older trainer" in err and "feature_min" in err and "fresh --output_dir" in err
