"""Batch scoring (taxifare/batch/): every row scored or rejected with its number and reason, in input
order, output marked complete only when it is; the same fares as the prediction server; drift."""

from __future__ import annotations

import csv
import gzip
import json
import os
import threading

import numpy as np
import pytest
from cli_capture import run_cli

from taxifare.batch import inputs, models, outputs, scoring
from taxifare.errors import DataError, RegistryError
from trainer import drift, sample_data

TRIP = "-73.98,40.75,-73.95,40.78"


@pytest.fixture(scope="module")
def model_dir(trained: dict) -> str:
    return trained["export_dir"]


@pytest.fixture(scope="module")
def predictor(model_dir: str):
    from trainer.predict import Predictor

    return Predictor(model_dir)


def _read(path: str) -> list[dict]:
    if path.endswith(".jsonl"):
        with open(path) as f:
            return [json.loads(line) for line in f]
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_labs_layout_with_bad_rows_every_one_scored_or_rejected_in_order(tmp_path, predictor):
    data = tmp_path / "trips.csv"
    data.write_text(
        f"6.0,{TRIP},2,a\n"
        f"7.0,0,0,-73.95,40.78,1,b\n"  # pickup outside NYC
        "8.0,-73.98,40.75\n"  # malformed: 3 fields
        "\n"  # a blank line is not a row
        f"9.0,{TRIP},seven,c\n"  # not a number
        f"9.0,{TRIP},,d\n"  # missing
        f"0,{TRIP},1,e\n"  # the label is not read: any fare will do
        f"10.0,{TRIP},9,f\n"  # passengers out of range
    )
    out = tmp_path / "preds.csv"
    result = scoring.score([str(data)], str(out), predictor.predict)
    assert (result.rows, result.scored) == (7, 2)
    assert dict(result.rejected) == {"pickup_outside_nyc": 1, "malformed_row": 1, "not_a_number": 1,
                                     "missing_value": 1, "passengers_out_of_range": 1}  # fmt: skip
    assert [r["key"] for r in _read(str(out))] == ["a", "e"]
    errors = _read(result.errors)
    assert result.errors == str(tmp_path / "preds.errors.csv")
    assert [(e["row"], e["key"], e["reason"]) for e in errors] == [
        ("2", "b", "pickup_outside_nyc"), ("3", "", "malformed_row"), ("4", "c", "not_a_number"),
        ("5", "d", "missing_value"), ("7", "f", "passengers_out_of_range"),
    ]  # fmt: skip
    assert "pickuplon: 0.0 is outside -74.5 to -72.8" in errors[0]["detail"]
    assert "passengers" in errors[4]["detail"] and "passengers" in errors[2]["detail"]
    assert outputs.is_complete(str(out)) and outputs.is_complete(result.errors)
    marker = json.loads((tmp_path / "preds.csv.complete").read_text())
    assert marker["complete"] and marker["scored"] == 2 and marker["rows_in_file"] == 2


def test_a_header_with_aliases_and_extra_columns_and_no_key_gzip_json_lines_out(tmp_path, predictor):
    data = tmp_path / "export.csv.gz"
    rows = ["vendor,passenger_count,dropoff_latitude,dropoff_longitude,pickup_latitude,pickup_longitude,tip"]
    rows += [f"v{i},1,40.78,-73.95,40.75,-73.98,{i}" for i in range(5)]
    data.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    out = tmp_path / "preds.jsonl"
    result = scoring.score([str(data)], str(out), predictor.predict)
    got = _read(str(out))
    assert [g["key"] for g in got] == [f"export.csv.gz:{n}" for n in range(1, 6)]  # file:row, as errors name rows
    assert len({g["fare_amount"] for g in got}) == 1 and result.scored == 5
    assert result.errors.endswith("preds.errors.jsonl") and _read(result.errors) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no data rows; is the file empty?"),
        (b"fare_amount,pickuplon,pickuplat,dropofflon,dropofflat,passengers,key\n", "no data rows"),
        (gzip.compress("".join(f"6.0,{TRIP},2,k{i}\n" for i in range(20000)).encode())[:-100], "truncated gzip"),
    ],
    ids=["empty", "header-only", "truncated-gzip"],
)
def test_files_without_rows_or_cut_short_fail_naming_the_file_and_leave_nothing_marked(
    tmp_path, predictor, content, message
):
    data = tmp_path / "trips.csv"
    data.write_bytes(content)
    out = tmp_path / "preds.csv"
    with pytest.raises(DataError, match=message) as err:
        scoring.score([str(data)], str(out), predictor.predict)
    assert str(data) in str(err.value)
    assert not outputs.is_complete(str(out))


def test_an_output_over_its_own_input_or_a_folder_is_refused_before_anything_is_written(tmp_path, predictor):
    from taxifare.errors import UsageError

    data = tmp_path / "trips.csv"
    data.write_text(f"6.0,{TRIP},2,a\n")
    with pytest.raises(UsageError, match="would overwrite the input"):
        scoring.score([str(data)], str(data), predictor.predict)
    assert data.read_text() == f"6.0,{TRIP},2,a\n"
    with pytest.raises(UsageError, match="is a folder"):
        scoring.score([str(data)], str(tmp_path), predictor.predict)


def test_a_run_that_fails_midway_leaves_no_marker_even_where_one_was(tmp_path, predictor, sample_dir):
    out = tmp_path / "preds.csv"
    out.write_text("key,fare_amount\nold,1\n")
    (tmp_path / "preds.csv.complete").write_text("{}")  # a previous run's
    calls = []

    def broken(raw: np.ndarray) -> np.ndarray:
        calls.append(len(raw))
        if len(calls) > 1:
            raise RuntimeError("the model went away")
        return predictor.predict(raw)

    big = tmp_path / "big.csv"
    sample_data.write_csv(sample_data.generate(200_000, seed=5), str(big))
    with pytest.raises(RuntimeError, match="went away"):
        scoring.score([str(big)], str(out), broken)
    assert not outputs.is_complete(str(out)) and "old" not in out.read_text()
    assert threading.active_count() < 10  # the reading and writing threads ended


def test_json_lines_with_aliases_bad_lines_and_integer_keys(tmp_path, predictor):
    good = {"pickuplon": -73.98, "pickuplat": 40.75, "dropofflon": -73.95, "dropofflat": 40.78}
    lines = [
        json.dumps({**good, "passengers": 1, "key": 7, "fare_amount": 9.5}),  # extra fields are ignored
        "{not json",
        json.dumps({**good, "passenger_count": 2}),  # an alias; no key
        "",
        json.dumps({**good, "passengers": "2"}),  # a string is not a number
        json.dumps([1, 2]),
    ]
    data = tmp_path / "trips.jsonl"
    data.write_text("\n".join(lines) + "\n")
    result = scoring.score([str(data)], str(tmp_path / "p.csv"), predictor.predict)
    assert [r["key"] for r in _read(str(tmp_path / "p.csv"))] == ["7", "trips.jsonl:3"]
    errors = [(e["row"], e["reason"]) for e in _read(result.errors)]
    assert errors == [("2", "malformed_row"), ("5", "not_a_number"), ("6", "malformed_row")]


def test_standard_input_through_the_command_line(tmp_path, model_dir, monkeypatch):
    data = f"6.0,{TRIP},2,a\n6.0,{TRIP},3,b\n".encode()
    read, write = os.pipe()
    saved = os.dup(0)
    os.write(write, data)
    os.close(write)
    os.dup2(read, 0)
    try:
        code, out, err = run_cli("predict", "--data", "-", "--out", str(tmp_path / "p.csv"), "--model", model_dir)
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(read)
    assert code == 0, err
    assert "scored 2 rows, rejected 0 (of 2 read)" in out
    assert [r["key"] for r in _read(str(tmp_path / "p.csv"))] == ["a", "b"]


def test_batch_fares_equal_the_prediction_servers(tmp_path, model_dir, predictor, sample_dir):
    """The same rows through `taxifare serve` over HTTP and through batch scoring: the same answers."""
    from serving_helpers import ServerProcess

    data = os.path.join(sample_dir, "valid.csv")
    result = scoring.score([data], str(tmp_path / "p.csv"), predictor.predict)
    batch = {r["key"]: float(r["fare_amount"]) for r in _read(str(tmp_path / "p.csv"))}
    parts = list(inputs.read([data]))
    instances = [
        {**dict(zip(("pickuplon", "pickuplat", "dropofflon", "dropofflat", "passengers"), map(float, row),
                    strict=True)), "key": key}
        for part in parts for row, key in zip(part.raw.tolist(), part.keys.to_pylist(), strict=True)
    ]  # fmt: skip
    server = ServerProcess(["--model-dir", model_dir], str(tmp_path / "serve.log"))
    try:
        server.wait_ready()
        online = {}
        for start in range(0, len(instances), 500):
            status, _, body = server.call("POST", "/predict", {"instances": instances[start : start + 500]})
            assert status == 200, body
            online.update({p["key"]: p["fare_amount"] for p in body["predictions"]})
    finally:
        server.stop()
    assert len(online) == len(batch) == result.scored > 500
    assert online == batch


def test_drift_is_reported_against_the_models_training_statistics(tmp_path, model_dir, predictor, sample_dir):
    reference = drift.load(model_dir)
    assert reference is not None and set(reference["features"]) == set(drift.PROFILED)
    same = scoring.score([os.path.join(sample_dir, "test.csv")], str(tmp_path / "a.csv"), predictor.predict,
                         reference=reference)  # fmt: skip
    assert same.drift is not None and not same.drift["flagged"] and same.drift["max_psi"] < 0.1
    moved = tmp_path / "moved.csv"
    trips = sample_data.generate(3000, seed=9)
    trips["dropofflat"] = np.clip(trips["dropofflat"] + 0.05, 40.2, 41.7)  # every drop-off 5 km further north
    sample_data.write_csv(trips, str(moved))
    shifted = scoring.score([str(moved)], str(tmp_path / "b.csv"), predictor.predict, reference=reference)
    assert shifted.drift["flagged"] and "dropofflat" in shifted.drift["drifted"]
    lines = drift.summary(shifted.drift, "v0001")
    assert lines[-1].startswith("DRIFT: ") and "dropofflat" in lines[-1]
    assert drift.metrics(shifted.drift)["drift_flagged"] == 1.0


def test_the_model_is_the_champion_a_version_or_a_folder(tmp_path, model_dir):
    from taxifare.registry.local import LocalRegistry

    registry = str(tmp_path / "registry")
    with pytest.raises(RegistryError, match="no champion"):
        models.local("", registry)
    reg = LocalRegistry(registry)
    reg.promote(reg.register(model_dir, {"run_id": "r1"}).name)
    reg.register(model_dir, {"run_id": "r2"})
    assert models.local("", registry).version == "v0001"
    assert models.local("v0002", registry).version == "v0002"
    assert models.local(model_dir).model_dir == model_dir
    assert drift.load(models.local("", registry).model_dir) is not None  # the statistics travel with the version
