from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from trainer import predict, sources, task
from trainer.config import DEFAULTS


def test_trained_model_beats_the_mean_and_exports_a_working_signature(trained, sample_dir):
    export_dir = trained["export_dir"]
    assert os.path.basename(os.path.dirname(export_dir)) == "exporter"
    assert os.path.isfile(os.path.join(export_dir, "saved_model.pb"))

    test, _ = sources.read_columns(os.path.join(sample_dir, "test.csv"))
    fares = test["fare_amount"]
    model = predict.Predictor(export_dir)
    raw = np.stack([test[n] for n in ("pickuplon", "pickuplat", "dropofflon", "dropofflat", "passengers")], 1)
    pred = model.predict(raw.astype(np.float32))
    rmse = float(np.sqrt(np.mean((pred - fares) ** 2)))
    mean_rmse = float(np.std(fares))
    assert rmse < 0.6 * mean_rmse, (rmse, mean_rmse)

    output_dir = os.path.dirname(os.path.dirname(os.path.dirname(export_dir)))
    with open(os.path.join(output_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["steps"] == 400 and metrics["examples_seen"] == 400 * DEFAULTS.train_batch_size
    assert metrics["rows_skipped"]["train"]  # the sample data carries a few dirty rows


def test_saved_model_loads_without_project_code(trained, python):
    """What TF Serving / Vertex's prebuilt container does: load and call the signatures."""
    code = f"""
import json, tensorflow as tf
m = tf.saved_model.load({trained["export_dir"]!r})
f = m.signatures["serving_default"]
args = dict(pickuplon=tf.constant([-73.98, -73.78]), pickuplat=tf.constant([40.75, 40.64]),
            dropofflon=tf.constant([-73.95, -73.98]), dropofflat=tf.constant([40.78, 40.75]),
            passengers=tf.constant([1.0, 2.0]))
out = f(**args)
keyed = m.signatures["with_key"](key=tf.constant(["a", "b"]), **args)
print(json.dumps({{"inputs": sorted(f.structured_input_signature[1]), "fares": out["fare_amount"].numpy().tolist(),
                  "keys": [k.decode() for k in keyed["key"].numpy()]}}))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True, cwd="/", env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["inputs"] == sorted(["pickuplon", "pickuplat", "dropofflon", "dropofflat", "passengers"])
    short, airport = result["fares"]
    assert 4 < short < 25 and airport > short  # a JFK trip costs more than a Midtown hop
    assert result["keys"] == ["a", "b"]


def test_tensorboard_events_and_checkpoints_are_written(trained):
    out = os.path.dirname(os.path.dirname(os.path.dirname(trained["export_dir"])))
    for split in ("train", "eval"):
        events = os.listdir(os.path.join(out, "tensorboard", split))
        assert any(e.startswith("events.out.tfevents") for e in events)
    import tensorflow as tf

    def tags(split: str) -> set[str]:
        found = set()
        for e in os.listdir(os.path.join(out, "tensorboard", split)):
            for record in tf.compat.v1.train.summary_iterator(os.path.join(out, "tensorboard", split, e)):
                found.update(v.tag for v in record.summary.value)
        return found

    assert {"rmse", "mae", "loss"} <= tags("eval")
    assert {"rmse", "loss"} <= tags("train")  # train RMSE beside the loss
    assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")).endswith("ckpt-400")


def test_same_seed_same_model(tmp_path, sample_dir):
    from trainer import train

    results = []
    for run in ("a", "b"):
        cfg = train.TrainConfig(
            train_data_paths=os.path.join(sample_dir, "train.csv"),
            eval_data_paths=os.path.join(sample_dir, "valid.csv"),
            output_dir=str(tmp_path / run),
            train_steps=60,
            checkpoint_every=60,
        )
        results.append(train.train_and_evaluate(cfg)["rmse"])
    assert results[0] == results[1]


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path, sample_dir, python):
    out = tmp_path / "out"
    cmd = [
        python, "-m", "trainer.task",
        "--train_data_paths", os.path.join(sample_dir, "train.csv"),
        "--eval_data_paths", os.path.join(sample_dir, "valid.csv"),
        "--output_dir", str(out),
        "--train_steps", "200000",
        "--checkpoint_every", "100",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not (out / "checkpoints" / "checkpoint").exists():
            assert proc.poll() is None, "trainer exited before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "export").exists()

    cmd[cmd.index("200000")] = "300"
    subprocess.run(cmd, check=True, capture_output=True)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from_step"] >= 100
    assert metrics["steps"] == max(300, metrics["resumed_from_step"])


def test_missing_training_file_fails_with_its_name(tmp_path, sample_dir, capsys):
    code = task.main(
        [
            "--train_data_paths", str(tmp_path / "missing-*.csv"),
            "--eval_data_paths", os.path.join(sample_dir, "valid.csv"),
            "--output_dir", str(tmp_path / "o"),
        ]
    )  # fmt: skip
    assert code == 2
    assert "no file matches" in capsys.readouterr().err


def test_flags_parse_like_the_lab(monkeypatch):
    args = task.build_parser().parse_args(
        ["--train_data_paths", "a", "--eval_data_paths", "b", "--job-dir", "gs://b/job", "--hidden_units", "8", "4"]
    )
    env = {"AIP_MODEL_DIR": "gs://b/model", "AIP_TENSORBOARD_LOG_DIR": "gs://b/tb", "AIP_CHECKPOINT_DIR": "gs://b/ck"}
    cfg = task.config_from_args(args, env)
    assert cfg.output_dir == "gs://b/job" and cfg.hidden_units == (8, 4)
    assert cfg.train_batch_size == DEFAULTS.train_batch_size
    assert (cfg.model_dir, cfg.tensorboard, cfg.checkpoints) == ("gs://b/model", "gs://b/tb", "gs://b/ck")
    # Both spellings, everywhere: the lab's and the dashed one.
    dashed = task.build_parser().parse_args(["--train-data-paths", "a", "--eval-data-paths", "b", "--train-steps", "7"])
    assert dashed.train_steps == 7 and dashed.train_data_paths == "a"


def test_help_explains_every_flag(python):
    out = subprocess.run([python, "-m", "trainer.task", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ("--train_data_paths", "--eval_data_paths", "--output_dir", "--train_steps", "--train_batch_size",
                 "--eval_steps", "--hidden_units", "--job-dir", "--learning_rate", "--seed"):  # fmt: skip
        assert flag in out


def test_predict_cli_prints_one_prediction_per_instance_and_echoes_keys(trained, tmp_path, capsys):
    from taxifare import cli

    instances = tmp_path / "test.json"
    instances.write_text(
        '{"pickuplon": -73.885262, "pickuplat": 40.773008, "dropofflon": -73.987232, "dropofflat": 40.732403,'
        ' "passengers": 2}\n\n'
        '{"pickuplon": -73.98, "pickuplat": 40.75, "dropofflon": -73.97, "dropofflat": 40.78, "passengers": 1,'
        ' "key": "trip-7"}\n'
    )
    output_dir = os.path.dirname(os.path.dirname(os.path.dirname(trained["export_dir"])))
    assert cli.main(["predict", "--model-dir", output_dir, "--json-instances", str(instances)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and "key" not in lines[0] and lines[1]["key"] == "trip-7"
    assert all(2.5 < line["fare_amount"] < 100 for line in lines)


_TRIP = '"pickuplat": 40.7, "dropofflon": -73.9, "dropofflat": 40.7'


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"pickuplon": -73.9, ' + _TRIP + "}", "line 2, field 'passengers': missing"),
        ('{"pickuplon": "x", ' + _TRIP + ', "passengers": 1}', "line 2, field 'pickuplon': not a number"),
        ("{not json", "line 2: not valid JSON"),
        ('{"pickuplon": NaN, ' + _TRIP + ', "passengers": 1}', "line 2, field 'pickuplon': must be a finite number"),
        ('{"pickuplon": 1e30, ' + _TRIP + ', "passengers": 1}', "line 2, field 'pickuplon': 1e+30 is outside"),
        ('{"pickuplon": -73.9, ' + _TRIP + ', "passengers": 1e20}', "line 2, field 'passengers': 1e+20 is outside"),
        ('{"pickuplon": -73.9, ' + _TRIP + ', "passengers": 1, "key": "\\udc80"}', "line 2, field 'key': is not valid"),
        ('{"pickuplon": -73.9, ' + _TRIP + ', "passengers": 1, "tip": 2}', "line 2, field 'tip': unknown field"),
    ],
)
def test_predict_cli_names_the_bad_line_and_field(trained, tmp_path, capsys, line, message):
    from taxifare import cli

    good = '{"pickuplon": -73.9, "pickuplat": 40.7, "dropofflon": -73.9, "dropofflat": 40.7, "passengers": 1}'
    instances = tmp_path / "bad.json"
    instances.write_text(good + "\n" + line + "\n")
    assert cli.main(["predict", "--model-dir", trained["export_dir"], "--json-instances", str(instances)]) == 1
    err = capsys.readouterr().err
    assert message in err and str(instances) in err and len(err.strip().splitlines()) == 1


def test_predict_reads_instances_lazily_in_batches():
    """`taxifare predict` holds one batch at a time: an endless stream still gives its first batch."""
    import itertools

    line = '{"pickuplon": -73.9, "pickuplat": 40.7, "dropofflon": -73.9, "dropofflat": 40.7, "passengers": 1}\n'
    batches = predict.iter_json_lines(itertools.repeat(line), batch=1000)
    assert len(next(batches)) == len(next(batches)) == 1000
    assert [len(b) for b in predict.iter_json_lines([line] * 5 + ["\n"], batch=2)] == [2, 2, 1]


def test_non_finite_fares_are_never_printed():
    from taxifare.errors import NotServable

    with pytest.raises(NotServable, match="instance 1"):
        predict.format_predictions(np.array([1.0, np.nan], np.float32), [None, None])
    with pytest.raises(NotServable, match="inf"):
        predict.check_fares(np.array([np.inf]), "the model")


def test_taxifare_train_takes_the_lab_flags(tmp_path, sample_dir, capsys):
    from taxifare import cli

    assert cli.main(["train", "--help"]) == 0
    assert "--train_data_paths" in capsys.readouterr().out
    code = cli.main(
        [
            "train",
            "--train_data_paths", os.path.join(sample_dir, "train.csv"),
            "--eval_data_paths", os.path.join(sample_dir, "valid.csv"),
            "--output_dir", str(tmp_path / "out"),
            "--train_steps", "20",
            "--hidden_units", "8", "4",
        ]
    )  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 20


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--checkpoint_every", "-5"], "checkpoint_every must be a whole number from 0 to 1,000,000,000, got -5"),
        (["--hidden_units", "0"], "hidden_units must be 1 to 16 whole numbers from 1 to 8192"),
        # Sane sizes: a typo is said, not tried (a 100M-unit layer, a 1e20-step run).
        (
            ["--hidden_units", "100000000"],
            "hidden_units must be 1 to 16 whole numbers from 1 to 8192, e.g. 64 16 4, got 100000000",
        ),
        (["--train_steps", "1e20"], "'1e20' is not an integer"),
        (["--train_steps", str(10**20)], "train_steps must be a whole number from 1 to 1,000,000,000"),
        (["--learning_rate", "50"], "learning_rate must be a number above 0 and at most 10, got 50"),
        (["--max_bad_fraction", "1.5"], "max_bad_fraction must be between 0 and 1, got 1.5"),
        (
            ["--train-steps", "0", "--seed", "-1"],
            "train_steps must be a whole number from 1 to 1,000,000,000, got 0; seed",
        ),
        (["--input_mode", "disk"], "invalid choice: 'disk'"),
        (["--learning_rate", "nan"], "'nan' is not a finite number"),
        (["--weight-decay", "inf"], "'inf' is not a finite number"),
        (["--train_steps", "ten"], "'ten' is not an integer"),
    ],
)
def test_bad_flags_are_refused_before_training(flags, message, capsys, tmp_path):
    argv = ["--train_data_paths", "a", "--eval_data_paths", "b", "--output_dir", str(tmp_path / "o"), *flags]
    try:
        code = task.main(argv)
    except SystemExit as exit_:  # argparse's own errors: a value that is not of the flag's type
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_an_output_dir_that_is_a_file_is_a_flag_error(tmp_path, capsys):
    (tmp_path / "o").write_text("not a directory")
    assert task.main(["--train_data_paths", "a", "--eval_data_paths", "b", "--output_dir", str(tmp_path / "o")]) == 2
    assert "output_dir" in capsys.readouterr().err


def test_resuming_with_other_settings_says_so(tmp_path, sample_dir, capsys):
    base = [
        "--train_data_paths", os.path.join(sample_dir, "train.csv"),
        "--eval_data_paths", os.path.join(sample_dir, "valid.csv"),
        "--output_dir", str(tmp_path / "o"),
    ]  # fmt: skip
    assert task.main([*base, "--train_steps", "10", "--hidden_units", "8"]) == 0
    assert task.main([*base, "--train_steps", "20", "--hidden_units", "16"]) == 2
    assert "cannot resume" in capsys.readouterr().err


def test_progress_events_are_written_and_read_back_the_same():
    from trainer import progress

    sent = progress.Progress(300, 3000, 12.3456, 3.21, 3.05, 812345.6, 4.25)
    assert (
        sent.line() == "step 300/3000: train loss 12.346, train rmse 3.210, eval rmse 3.050, 812,346 examples/s, 4.2s"
    )
    back = progress.parse("    [KFP Executor 11:04:20 INFO]: " + sent.event())  # kfp may indent or prefix it
    assert back == sent and back.eta == pytest.approx(4.25 * 9)
    first = progress.Progress(100, 3000, 1.0, 1.0, 1.0, None, 1.0)
    assert progress.parse(first.event()).examples_per_sec is None
    # Free text is never read back, a damaged event is no event, and other events are not progress.
    assert progress.parse(sent.line()) is None and progress.parse("exported /tmp/x: eval rmse 3.0") is None
    assert progress.parse(sent.event()[:-5]) is None
    assert progress.parse('{"taxifare_event":"progress","step":"x"}') is None
    assert progress.parse('{"taxifare_event":"summary","lines":["a"]}') is None
