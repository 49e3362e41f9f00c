"""Smoke tests of the benchmark harness's helpers (no timing is asserted, nothing is measured)."""

from __future__ import annotations

import datetime
import math

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
