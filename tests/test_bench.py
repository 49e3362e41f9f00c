"""Smoke tests of the benchmark harness's helpers (no timing is asserted, nothing is measured)."""

from __future__ import annotations

import datetime
import math
import os

import numpy as np
import pytest

from bench import report


def test_median_and_spread():
    assert report.median([3.0, 1.0, 2.0]) == 2.0
    assert report.median([1.0, 2.0, 3.0, 10.0]) == 2.5
    assert report.spread([3.0, 1.0, 2.0]) == (1.0, 3.0)
    assert math.isnan(report.median([]))
    assert all(math.isnan(v) for v in report.spread([]))
    assert math.isnan(report.ratio(1.0, 0.0))


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (712070.4, "examples/s", "712,070 examples/s"),
        (12.345, "s", "12.35 s"),
        (0.93712, "ratio", "0.937"),
        (4.6271, "RMSE $", "$4.627"),
        (19.1, "×", "19.1×"),
        (math.nan, "s", "n/a"),
    ],
)
def test_fmt(value, unit, text):
    assert report.fmt(value, unit) == text


def test_targets_compare_the_median():
    at_least = report.Target(">=", 400_000)
    figure = report.Figure("throughput", [390_000, 410_000, 420_000], "examples/s", "cmd", at_least)
    assert figure.median == 410_000 and figure.verdict == "PASS"
    figure.values = [100.0, 390_000, 500_000]
    assert figure.verdict == "FAIL"
    assert report.Target("<", 0.95).met(0.94) and not report.Target("<", 0.95).met(0.95)
    assert not report.Target("<=", 30).met(math.nan)
    assert report.Figure("untargeted", [1.0], "s", "cmd").verdict == ""


def test_render_lists_targets_commands_and_skips():
    trainer = report.Section("trainer", "Trainer", notes=["Data: generated."])
    trainer.add(
        "steady throughput", [5.0e5, 4.0e5, 6.0e5], "examples/s", "python -m trainer.task", report.Target(">=", 4e5)
    )
    trainer.add("peak RSS", [600.0], "MiB", "python -m trainer.task")
    trainer.add("RSS ratio", [1.01], "ratio", ("python -m trainer.task", "python -m trainer.task --input_mode stream"))
    serving = report.Section("serving", "Serving", skipped="serving not available")
    text = report.render(
        [trainer, serving],
        {"CPU": "test"},
        quick=True,
        command="python -m bench.run --quick",
        started=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        seconds=60.0,
        load_before="0.1",
        load_after="0.2",
    )
    assert "## 1. Trainer" in text and "## 4. Serving" in text
    assert "Skipped: serving not available" in text
    assert "| Trainer | steady throughput | ≥ 400,000 examples/s | 500,000 examples/s | **PASS** |" in text
    assert "400,000 examples/s – 600,000 examples/s (±20%)" in text
    assert "1. `python -m trainer.task`" in text and "Quick run" in text
    assert "| 1.010 | single run | 1 |  |  | (1), (2) |" in text


def test_machine_info_names_the_versions():
    info = report.machine_info()
    for key in ("CPU", "cores", "memory", "Python", "tensorflow", "kfp", "numpy", "pyarrow", "git commit"):
        assert info[key]


def test_busy_note_only_when_the_load_exceeds_the_cores():
    assert report.busy_note((0.5, 0.5, 0.5), None) == []
    note = report.busy_note((0.5, 0.5, 0.5), (64.0, 1.0, 1.0))
    assert len(note) == 1 and "busy" in note[0]
    assert report.load_text(None) == "unknown" and report.load_text((1.0, 2.0, 3.0)) == "1.00 / 2.00 / 3.00"


def test_markdown_tables_render_after_the_notes():
    section = report.Section("quality", "Quality", notes=["A note."])
    section.tables.append(report.markdown_table(["", "fold 0"], [["model RMSE", "$4.000"]]))
    text = report.render(
        [section], {}, quick=False, command="c", started=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        seconds=1.0, load_before="0", load_after="0",
    )  # fmt: skip
    assert "- A note.\n\n|  | fold 0 |\n| --- | --- |\n| model RMSE | $4.000 |" in text


def test_folds_are_stable_and_cover_every_key():
    from bench import quality

    keys = np.arange(5000).astype(str)
    folds = quality.fold_of(keys)
    assert np.array_equal(folds, quality.fold_of(keys)) and set(folds) == set(range(quality.FOLDS))
    assert np.bincount(folds).min() > 900  # about a fifth each


def test_the_gbm_reference_has_15_features_from_the_schema_constants():
    from bench import gbm
    from trainer import features as F

    jfk = F.AIRPORTS["jfk"]
    columns = {
        "pickuplon": np.array([jfk[0], F.CENTER_LON]), "pickuplat": np.array([jfk[1], F.CENTER_LAT]),
        "dropofflon": np.array([F.CENTER_LON, F.CENTER_LON]), "dropofflat": np.array([F.CENTER_LAT, F.CENTER_LAT]),
        "passengers": np.array([1.0, 2.0]),
    }  # fmt: skip
    x = gbm.features(columns)
    assert x.shape == (2, 15)
    assert x[0, 7] == pytest.approx(21.0, abs=1.0)  # JFK to Midtown: ~21 km as the crow flies
    assert x[0, 8] >= x[0, 7]  # the street grid is never shorter
    assert x[0, 9] == 0.0 and x[1, 7] == 0.0  # pickup at JFK; a trip that goes nowhere


def test_the_gbm_reference_learns_the_sample_data(sample_dir):
    from bench import gbm
    from trainer import sources

    train, _ = sources.read_columns(os.path.join(sample_dir, "train.csv"))
    test, _ = sources.read_columns(os.path.join(sample_dir, "test.csv"))
    fares = gbm.fit_predict(train, test)
    rmse = float(np.sqrt(np.mean((fares - test["fare_amount"]) ** 2)))
    assert rmse < 0.6 * float(np.std(test["fare_amount"]))
    assert np.array_equal(fares, gbm.fit_predict(train, test))  # fixed settings: same data, same fares


def test_the_quality_summary_ratios_mean_worst_and_seeds():
    from bench import quality

    folds = [quality.Scores("fold 0", [4.0, 5.0], 5.0, 8.0, [5.0, 5.0]),
             quality.Scores("fold 1", [3.0, 2.0], 2.5, 4.0, [3.0, 3.0])]  # fmt: skip
    valid = quality.Scores(quality.VALID, [4.5, 4.6], 5.0, 5.0, [5.0, 5.0])
    a, b = quality.per_seed(folds, valid, [42, 43])
    assert (a.seed, a.gbm_ratios, a.mean_rmse, a.valid_rmse) == (42, [0.8, 1.2], 3.5, 4.5)
    assert a.mean_gbm_ratio == pytest.approx(1.0) and a.worst_gbm_ratio == pytest.approx(1.2)
    assert b.gbm_ratios == [1.0, 0.8] and b.rule_ratios == [0.625, 0.5]
    table = quality.split_table(folds, valid)
    assert table[0] == f"|  | fold 0 | fold 1 | mean of folds | worst fold | {quality.VALID} |"
    assert "| ratio model / GBM | 0.900 | 1.000 | 0.950 | 1.000 | 0.910 |" in table
    assert "| model RMSE (tuned defaults) | $4.500 | $2.500 | $3.500 |  | $4.550 |" in table
    assert "| ratio previous defaults / GBM | 1.000 | 1.200 | 1.100 | 1.200 | 1.000 |" in table
    assert quality.seed_table([a, b])[2] == "| 42 | $4.000 | $3.000 | $3.500 | 1.000 | 1.200 | $4.500 |"


def test_the_quality_section_skips_without_the_lab_data(tmp_path, monkeypatch):
    from bench import Context, Settings, quality

    monkeypatch.setattr(quality, "LAB_TRAIN", str(tmp_path / "absent.csv"))
    section = quality.measure(Context(settings=Settings.quick_mode(), scratch=str(tmp_path)))
    assert section.skipped and "not present" in section.skipped and not section.figures


def test_the_batch_section_reads_what_taxifare_predict_says():
    from bench import batch

    said = (
        "scored 1,000,000 rows, rejected 10,000 (of 1,010,000 read)\n"
        "predictions: /t/p.csv (0.8s, 1,262,500 rows/s; 1.4 CPU-s)"
    )
    rate = batch._RATE.search(said)
    assert rate.group(2) == "1,262,500" and rate.group(3) == "1.4" and batch._SCORED.search(said).group(2) == "10,000"
