"""The training pipeline's tuning stage through kfp's local runner: tune -> train -> evaluate ->
deploy, the trials where users look (the run's view, `runs show`, the report, evaluate's artifact),
and `--hparams` reusing a run's or a study's best."""

from __future__ import annotations

import json
import os

import pytest
from cli_capture import run_cli

from taxifare.runs import records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, sample_dir):
    root = tmp_path_factory.mktemp("tuned")
    ws = {"runs": str(root / "runs"), "registry": str(root / "registry")}
    data = [f"--{s}-data={os.path.join(sample_dir, s + '.csv')}" for s in ("train", "valid", "test")]
    ws["where"] = [*data, "--runs-root", ws["runs"], "--registry", ws["registry"], "--train-steps", "200"]
    ws["tuned"] = run_cli("run", "--tune-trials", "3", "--tune-parallel-trials", "2", *ws["where"])
    return ws


def test_a_run_tunes_then_trains_with_the_best_trial(tuned):
    code, out, err = tuned["tuned"]
    assert code == 0, out + err
    record = records.load(tuned["runs"], "latest")
    assert [t.name for t in record.dag] == ["stage-data", "tune-hparams", "train-model", "evaluate-model",
                                            "deploy-model", "notify-failure"]  # fmt: skip
    tune, train = record.task("tune-hparams"), record.task("train-model")
    assert str(tune.state) == "succeeded" and str(train.state) == "succeeded"
    assert tune.summary[-1].startswith("3 trial(s)") and "best" in tune.summary[-1]
    with open(os.path.join(tune.outputs["study"]["uri"], "study.json")) as f:
        study = json.load(f)
    best = min((t for t in study["trials"] if t["state"] == "complete"), key=lambda t: t["value"])
    with open(train.outputs["metrics"]["uri"]) as f:
        trained = json.load(f)
    # Train got the best trial's values, and (same data, same seed) reproduces its score.
    assert trained["rmse"] == pytest.approx(best["value"], abs=1e-6)
    assert tune.outputs["learning_rate"] == best["params"]["learning_rate"]
    assert "tune-hparams" in out and "trial " in out


def test_the_trials_are_where_users_look(tuned):
    record = records.load(tuned["runs"], "latest")
    code, shown, _ = run_cli("runs", "show", record.run_id, "--runs-root", tuned["runs"])
    assert code == 0 and shown.count("│     trial ") == 3 and "best: trial" in shown
    with open(os.path.join(record.folder, "report.html")) as f:
        report = f.read()
    assert "<h2>Tuning</h2>" in report and "RMSE by trial" in report
    with open(record.task("evaluate-model").outputs["report"]["uri"]) as f:
        evaluation = f.read()
    assert "<h2>Tuning</h2>" in evaluation and "<h2>Evaluation</h2>" in evaluation


def test_hparams_reuses_a_runs_best_and_a_run_without_tuning_shows_none(tuned):
    first = records.load(tuned["runs"], "latest")
    code, out, err = run_cli("run", "--hparams", first.run_id, *tuned["where"])
    assert code == 0, out + err
    assert f"hyperparameters: run {first.run_id}'s tuning, its best trial" in out
    again = records.load(tuned["runs"], "latest")
    tune = again.task("tune-hparams")
    assert tune.summary == ["tuning off (tune_trials is 0): the given hyperparameters"]
    assert tune.outputs["learning_rate"] == first.task("tune-hparams").outputs["learning_rate"]
    with open(os.path.join(again.folder, "report.html")) as f:
        assert "<h2>Tuning</h2>" not in f.read()
    code, out, err = run_cli("run", "--hparams", "best", "--tune-trials", "2", *tuned["where"])
    assert code == 2 and "give one of them" in err


def test_hparams_from_a_file_is_checked(tuned, tmp_path):
    bad = tmp_path / "h.json"
    bad.write_text(json.dumps({"learning_rate": 0.01, "seed": 3}))
    code, _, err = run_cli("run", "--hparams", str(bad), *tuned["where"])
    assert code == 2 and "seed cannot be set so" in err
    code, _, err = run_cli("run", "--hparams", "nope", *tuned["where"])
    assert code == 2 and "no such study, run or file" in err
