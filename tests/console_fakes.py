"""Run records and a registry made by hand for the console's fast tests: the same files a real run
and a real deploy write (run.json through taxifare.runs.records, the registry's layout), without
training anything."""

from __future__ import annotations

import json
import os
import time

from taxifare.runs import records
from taxifare.runs.dag import DagTask
from taxifare.runs.records import RegistryChange, RunRecord, TaskRecord
from trainer.progress import Progress

DAG = [
    DagTask("stage-data", "stage data"),
    DagTask("train-model", "train", ("stage-data",)),
    DagTask("evaluate-model", "evaluate", ("stage-data", "train-model")),
    DagTask("deploy-model", "deploy", ("evaluate-model",), "blessed", "evaluate-model"),
]
EVALUATION = (
    "<html><body><!-- evaluation --><h2>Evaluation</h2><p>By kind of trip</p><!-- /evaluation --></body></html>"
)


def _artifact(folder: str, task: str, name: str, text: str | None = None, **meta: object) -> dict:
    path = os.path.join(folder, "pipeline-root", task, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if text is None:
        os.makedirs(path, exist_ok=True)
    else:
        with open(path, "w") as f:
            f.write(text)
    return {"uri": path, **meta}


def _log(folder: str, task: str, lines: list[str]) -> None:
    os.makedirs(os.path.join(folder, "tasks"), exist_ok=True)
    with open(os.path.join(folder, "tasks", f"{task}.log"), "a") as f:
        f.writelines(line + "\n" for line in lines)


def curve(steps: int, rate: float) -> list[str]:
    """The progress events a training task prints, falling at `rate`."""
    out = []
    for i in range(1, 11):
        rmse = 2.4 + 3 / (1 + rate * i)
        p = Progress(step=steps * i // 10, total=steps, loss=rmse**2, rmse=rmse, eval_rmse=rmse + 0.05,
                     examples_per_sec=500000.0, elapsed=float(i))  # fmt: skip
        out.append("    " + p.event())
    return out


def run(runs_root: str, run_id: str, *, status: str = "succeeded", train_steps: int = 300, rmse: float = 2.5,
        blessed: bool = True, version: str | None = "v0001", previous: str | None = None, upto: int = 4,
        started: float | None = None) -> RunRecord:  # fmt: skip
    """A training run's folder: record, task logs, artifacts. `upto`: how many tasks have finished (the
    next one is running when the run is)."""
    folder = os.path.join(runs_root, run_id)
    os.makedirs(folder, exist_ok=True)
    started = started if started is not None else time.time() - 60
    data = {"fingerprint": "16d0479d0134818d", "test_fingerprint": "912b77be0ca2f356", "source": "generated sample"}
    outputs = {
        "stage-data": {"train": _artifact(folder, "stage-data", "train", "a,b\n1,2\n", rows=16000.0, **data),
                       "metrics": {"uri": "", "rows_read": 20200.0, "rows_kept": 20000.0}},
        "train-model": {"model": _artifact(folder, "train-model", "model", hparams={"train_steps": train_steps}),
                        "tensorboard": _artifact(folder, "train-model", "tensorboard", log_dir="x"),
                        "metrics": {"uri": "", "valid_rmse": rmse + 0.05, "steps": float(train_steps)}},
        "evaluate-model": {"Output": blessed, "report": _artifact(folder, "evaluate-model", "report", EVALUATION),
                           "metrics": {"uri": "", "candidate_rmse": rmse, "baseline_rmse": 3.2,
                                       "slice_airport_jfk_candidate_rmse": rmse + 1},
                           "decision": {"uri": "", "blessed": blessed, "reason": "because"}},
        "deploy-model": {"Output": version or ""},
    }  # fmt: skip
    tasks = {}
    for i, t in enumerate(DAG):
        if i < upto:
            state = "skipped" if t.name == "deploy-model" and not blessed else "succeeded"
            tasks[t.name] = TaskRecord(name=t.name, state=state, started=started + i, seconds=1.0 + i,
                                       outputs=outputs[t.name] if state == "succeeded" else {},
                                       summary=[f"{t.display} said its piece"])  # fmt: skip
            _log(folder, t.name, [f"{t.name} log line"] + (curve(train_steps, 0.5) if t.name == "train-model" else []))
        elif i == upto and status == "running":
            tasks[t.name] = TaskRecord(name=t.name, state="running", started=time.time() - 5)
            _log(folder, t.name, [f"{t.name} is running"])
    change = RegistryChange(champion=[previous, version], new_versions=[version]) if version and blessed else None
    record = RunRecord(version=records.VERSION, run_id=run_id, status=status, started=started,
                       seconds=None if status == "running" else 42.0, dag=DAG, tasks=tasks,
                       params={"train_steps": train_steps, "learning_rate": 0.001, "run_id": run_id,
                               "train_source": "/data/train.csv"},
                       registry_change=change).at(folder)  # fmt: skip
    records.save(record)
    with open(os.path.join(folder, "pipeline.log"), "a") as f:
        f.write(f"run {run_id}\n")
    return record


def registry(root: str, versions: dict[str, dict], champion: str | None, moves: list[dict]) -> str:
    """A registry folder: each version's metadata as given (anything: it is untrusted), a model file."""
    for name, meta in versions.items():
        os.makedirs(os.path.join(root, "versions", name, "model"), exist_ok=True)
        with open(os.path.join(root, "versions", name, "model", "saved_model.pb"), "wb") as f:
            f.write(b"not a model")
        with open(os.path.join(root, "versions", name, "metadata.json"), "w") as f:
            json.dump(meta, f)
    if champion:
        with open(os.path.join(root, "aliases.json"), "w") as f:
            json.dump({"champion": champion}, f)
    with open(os.path.join(root, "history.jsonl"), "w") as f:
        f.writelines(json.dumps(m) + "\n" for m in moves)
    return root


def version_meta(run_id: str, rmse: float, **extra: object) -> dict:
    return {"run_id": run_id, "created": "2026-12-01T10:00:00Z", "source": "generated sample",
            "data_fingerprint": "16d0479d0134818d", "test_fingerprint": "912b77be0ca2f356", "test_rows": 2000,
            "metrics": {"candidate": {"rmse": rmse, "mae": 1.8}, "baseline": {"rmse": 3.2, "mae": 2.1},
                        "champion": None},
            "decision": "candidate beats the baseline", "hparams": {"train_steps": 300.0}, **extra}  # fmt: skip
