"""The batch pipeline through kfp's local runner: `taxifare run --pipeline batch` resolves the champion,
checks drift, scores and writes; its record, views and report show each step, the drift among them."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from cli_capture import run_cli

from taxifare.registry.local import LocalRegistry
from taxifare.runs import records
from trainer import sample_data

pytestmark = pytest.mark.slow

STEPS = ["resolve-model", "check-drift", "score-batch", "write-predictions"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, trained):
    root = tmp_path_factory.mktemp("batch")
    registry = LocalRegistry(str(root / "registry"))
    registry.promote(registry.register(trained["export_dir"], {"run_id": "trained"}).name)
    return {"root": root, "runs": str(root / "runs"), "registry": registry.root}


def _run(ws: dict, *argv: str) -> tuple[int, str, records.RunRecord]:
    code, out, err = run_cli("run", "--pipeline", "batch", "--runs-root", ws["runs"], "--registry", ws["registry"],
                          *argv)  # fmt: skip
    return code, out + err, records.load(ws["runs"], "latest")


def test_a_batch_run_scores_the_input_with_the_champion_and_writes_where_asked(workspace, sample_dir):
    out = workspace["root"] / "preds" / "trips.csv"
    code, said, record = _run(workspace, "--data", os.path.join(sample_dir, "test.csv"), "--param", f"output={out}")
    assert code == 0, said
    assert record.pipeline == "batch" and [t.name for t in record.dag] == STEPS
    assert all(record.tasks[s].state == "succeeded" for s in STEPS)
    assert "model: v0001 (champion of" in record.tasks["resolve-model"].summary[0]
    assert record.tasks["check-drift"].summary[0].startswith("drift vs the training data of v0001")
    scored = record.tasks["score-batch"].summary[0]
    assert scored.startswith("scored ") and "rejected" in scored
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and set(rows[0]) == {"key", "fare_amount"}
    assert os.path.isfile(f"{out}.complete") and os.path.isfile(workspace["root"] / "preds" / "trips.errors.csv")
    assert record.metric("drift_max_psi") is not None and record.metric("rows_scored") == len(rows)
    assert "deployed:" not in said  # a batch run deploys nothing
    with open(os.path.join(record.folder, "report.html")) as f:
        page = f.read()
    assert "<h2>Drift</h2>" in page and "no feature moved beyond PSI 0.25" in page
    assert all(f'data-task="{s}"' in page for s in STEPS)


def test_an_input_that_drifted_is_scored_and_the_run_flagged(workspace):
    moved = workspace["root"] / "moved.csv"
    trips = sample_data.generate(3000, seed=21)
    trips["pickuplat"] = np.clip(trips["pickuplat"] + 0.06, 40.2, 41.7)
    trips["dropofflat"] = np.clip(trips["dropofflat"] + 0.06, 40.2, 41.7)
    sample_data.write_csv(trips, str(moved))
    code, said, record = _run(workspace, "--data", str(moved), "--drift-threshold", "0.2")
    assert code == 0, said
    assert record.tasks["check-drift"].outputs["Output"] is True
    assert record.headline.startswith("flagged: the input drifted")
    assert record.tasks["score-batch"].state == "succeeded"  # flagged, not stopped: scoring was asked for
    drift = record.task("check-drift").outputs["drift"]
    with open(drift["uri"]) as f:
        report = json.load(f)
    assert report["flagged"] and "pickuplat" in report["drifted"] and report["threshold"] == 0.2
    with open(os.path.join(record.folder, "report.html")) as f:
        assert "flagged: " in f.read()


def test_batch_parameters_are_checked_before_anything_runs(workspace):
    code, said, _ = _run(workspace, "--data", "gs://b/x.csv", "--param", "output=gs://b/out/")
    assert code == 2 and "output: a local run writes a local file" in said
    code, said, _ = _run(workspace, "--param", "input=bq://p.d.t")
    assert code == 2 and "BigQuery tables need Vertex AI" in said
    code, said, _ = _run(workspace, "--param", "output=/tmp/p.jsonl")
    assert code == 2 and "named as jsonl but output_format is csv" in said
    code, said, _ = _run(workspace, "--train-data", "x.csv")
    assert code == 2 and "--data FILES" in said


def test_a_training_run_on_data_that_drifted_from_the_champions_stops_before_training(workspace):
    moved = workspace["root"] / "moved-train.csv"
    trips = sample_data.generate(3000, seed=22)
    trips["passengers"] = np.full(len(trips["passengers"]), 6.0)
    sample_data.write_csv(trips, str(moved))
    code, out, _ = run_cli("run", "--data", str(moved), "--runs-root", workspace["runs"], "--registry",
                        workspace["registry"], "--train-steps", "10")  # fmt: skip
    assert code == 1
    assert "FAILED in task stage-data" in out and "stopped before training, nothing deployed" in out
    assert "--drift-threshold" in out
    record = records.load(workspace["runs"], "latest")
    assert record.tasks["train-model"].state == "skipped" and record.tasks["stage-data"].summary[-1].startswith("DRIFT")
    assert LocalRegistry(workspace["registry"]).champion().name == "v0001"
