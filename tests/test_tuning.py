"""The local tuner: its search space and bad input, and a real study (Optuna, worker processes, the
real trainer) with a crashing trial, a NaN trial and a killed study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from taxifare.cli import main
from taxifare.errors import UsageError
from taxifare.tuning import records, space, study
from trainer import sample_data, settings
from trainer.config import HParams

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_declared_spaces_are_valid_and_beside_the_settings():
    assert space.check_declared() == []
    names = [p.name for p in space.build()]
    assert names == ["train_batch_size", "hidden_units", "learning_rate", "weight_decay", "huber_delta"]
    assert "train_steps" in space.tunable() and "seed" not in space.tunable()  # the budget: only when named
    assert [p.name for p in space.build(["train_steps"])] == ["train_steps"]
    specs = {s["parameter_id"]: s for s in space.to_vertex(space.build())}
    assert specs["learning_rate"] == {"parameter_id": "learning_rate", "scale_type": "UNIT_LOG_SCALE",
                                      "double_value_spec": {"min_value": 0.0001, "max_value": 0.03}}  # fmt: skip
    assert "64,16,4" in specs["hidden_units"]["categorical_value_spec"]["values"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("learning_rate=0.01:0.01", "learning_rate: the range 0.01..0.01 is empty"),
        ("learning_rate=0.1:0.01", "learning_rate: the range 0.1..0.01 is inverted"),
        ("learning_rate=0:0.1:log", "learning_rate: a log-scale range must start above 0"),
        ("weight_decay=0.1:20", "weight_decay: the range end 20 must be from 0 to 10"),
        ("train_steps=10:20.5", "train_steps: a range of whole numbers needs whole ends"),
        ("hidden_units=64,0|32", "hidden_units: choice 64 0 must be 1 to 16 whole numbers"),
        ("learnig_rate=0.1:1", "unknown tuning parameter 'learnig_rate'; did you mean learning_rate?"),
        ("learning_rate=fast", "learning_rate: 'fast' is not a range"),
    ],
)
def test_a_bad_space_is_one_line_before_anything_runs(spec, message, capsys, tmp_path):
    code = main(["tune", "--space", spec, "--runs-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not os.path.exists(tmp_path / "studies")  # nothing was written


def test_an_unknown_parameter_to_search_names_the_tunable_ones(capsys, tmp_path):
    assert main(["tune", "--search", "seed", "--runs-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown tuning parameter 'seed'" in err and "learning_rate" in err


def test_choices_and_ranges_parse_to_the_settings_types():
    (units,) = space.build(["hidden_units"], {"hidden_units": "64,16,4|32,8"})
    assert units.search.values == ((64, 16, 4), (32, 8)) and units.value("32,8") == (32, 8)
    (steps,) = space.build(["train_steps"], {"train_steps": "500:2000"})
    assert (steps.kind, steps.search.scale, steps.value(1234.4)) == ("integer", "log", 1234)
    tuned = space.hparams(HParams(), {"learning_rate": 0.01, "hidden_units": [32, 8]})
    assert tuned.hidden_units == (32, 8) and tuned.learning_rate == 0.01
    with pytest.raises(UsageError, match="learning_rate must be a number above 0"):
        space.hparams(HParams(), {"learning_rate": -1.0})
    assert settings.search_problem(space.tunable()["huber_delta"], settings.span(5, 1)) is not None


def _sample(tmp_path, rows=3000):
    out = tmp_path / "data"
    sample_data.write_splits(str(out), rows, 0)
    return str(out / "train.csv"), str(out / "valid.csv")


@pytest.mark.slow
def test_a_study_records_every_trial_and_fails_a_crashed_and_a_diverged_one(tmp_path, monkeypatch):
    faults = tmp_path / "faults"
    faults.mkdir()
    monkeypatch.setenv("TAXIFARE_TEST_FAULTS", str(faults))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
    train, valid = _sample(tmp_path)
    cfg = study.StudyConfig(train=train, valid=valid, params=space.build(), base=HParams(train_steps=200),
                            trials=5, parallel=2, prune=False, train_function="tuning_faults:train")  # fmt: skip
    seen = []
    folder, result = study.run(cfg, str(tmp_path / "runs"), seen.append)
    assert [t.number for t in result.trials] == [0, 1, 2, 3, 4] and len(seen) == 5
    # Trial 0 trains the given settings: the bar the search has to beat.
    assert result.trials[0].given and result.trials[0].params["hidden_units"] == list(HParams().hidden_units)
    assert result.trials[0].params["learning_rate"] == HParams().learning_rate
    failed = {t.error.split(" (")[0].split(":")[0] for t in result.trials if t.state == "failed"}
    assert failed == {"its worker process died", "diverged at step 100"}, [t.error for t in result.trials]
    done = [t for t in result.trials if t.state == "complete"]
    assert len(done) == 3 and result.best in done and result.status == "finished"
    assert all(t.curve and t.seconds and set(t.params) == set(space.tunable()) - {"train_steps"} for t in done)
    assert result.best_hparams()["train_steps"] == 200
    again = records.read(folder)  # what is on disk is what was returned
    assert [(t.number, t.state, t.value) for t in again.trials] == [(t.number, t.state, t.value) for t in result.trials]
    # Nothing a trial trained is left to become a model.
    left = [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files if f == "saved_model.pb"]
    assert not left and not os.listdir(os.path.join(folder, "trials"))


@pytest.mark.slow
def test_a_killed_study_keeps_its_finished_trials(tmp_path):
    train, valid = _sample(tmp_path)
    runs = tmp_path / "runs"
    argv = [sys.executable, "-m", "taxifare.cli", "tune", "--trials", "20", "--parallel", "1", "--train-steps", "200",
            "--train-data", train, "--valid-data", valid, "--runs-root", str(runs)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline, folder = time.monotonic() + 240, None
    while time.monotonic() < deadline:
        found = records.list_studies(str(runs))
        if found and found[0][1].count("complete") >= 1:
            folder = found[0][0]
            break
        time.sleep(0.5)
    assert folder, "no trial finished in time"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)
    with open(os.path.join(folder, "config.json")) as f:
        assert json.load(f)["trials"] == 20
    workers = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).count(folder)]
    assert not workers, "the study's workers outlived it"
    killed = records.read(folder)
    assert killed.status == "interrupted" and killed.count("complete") >= 1 and killed.best is not None
    assert all(t.state != "running" for t in killed.trials)


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.slow
def test_tune_splits_data_by_key_and_prints_the_trials_table_and_the_best(tmp_path, capsys):
    train, _ = _sample(tmp_path)
    code = main(["tune", "--trials", "2", "--parallel", "1", "--train-steps", "100", "--data", train,
                 "--runs-root", str(tmp_path / "runs")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "split by key" in out and "searching: train_batch_size" in out
    table = out[out.index("\n#  ") :]
    assert "state" in table and "learning_rate" in table and "the given settings" in table
    assert "best: trial" in out and "reuse: taxifare run --hparams" in out
    ((folder, study_record),) = records.list_studies(str(tmp_path / "runs"))
    assert os.path.isfile(os.path.join(folder, "data", "train.csv")) and len(study_record.trials) == 2
