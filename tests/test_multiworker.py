"""Multi-worker training: the cluster from TF_CONFIG / CLUSTER_SPEC, and two real workers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cloud_fakes import free_port

from trainer import distribute

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_vertex_cluster_spec_becomes_chief_and_workers():
    spec = {"cluster": {"workerpool0": ["cmle-training-workerpool0-0:2222"],
                        "workerpool1": ["w-0:2222", "w-1:2222"]},
            "task": {"type": "workerpool1", "index": 1}, "job": "{}"}  # fmt: skip
    cluster = distribute.from_environment({"CLUSTER_SPEC": json.dumps(spec)})
    assert cluster is not None
    assert cluster.tf_config() == {
        "cluster": {"chief": ["cmle-training-workerpool0-0:2222"], "worker": ["w-0:2222", "w-1:2222"]},
        "task": {"type": "worker", "index": 1},
    }
    assert (cluster.num_workers, cluster.index, cluster.is_chief) == (3, 2, False)
    chief = distribute.from_environment({"CLUSTER_SPEC": json.dumps({**spec, "task": {"type": "workerpool0"}})})
    assert chief is not None and chief.is_chief and chief.index == 0


def test_tf_config_wins_and_a_single_worker_is_not_a_cluster():
    two = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}
    cluster = distribute.from_environment({"TF_CONFIG": json.dumps(two), "CLUSTER_SPEC": "{}"})
    assert cluster is not None and cluster.is_chief and cluster.num_workers == 2  # worker 0 is the chief
    one = {"cluster": {"workerpool0": ["a:1"]}, "task": {"type": "workerpool0", "index": 0}}
    assert distribute.from_environment({"CLUSTER_SPEC": json.dumps(one)}) is None
    assert distribute.from_environment({}) is None
    evaluator = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "evaluator", "index": 0}}
    assert distribute.from_environment({"TF_CONFIG": json.dumps(evaluator)}) is None


WORKER = """
import json, sys
from trainer import train
cfg = train.TrainConfig(train_data_paths=sys.argv[1], eval_data_paths=sys.argv[2], output_dir=sys.argv[3],
                        train_steps=60, checkpoint_every=30, train_batch_size=256, input_mode=sys.argv[4])
result = train.train_and_evaluate(cfg, progress=print)
print("RESULT " + json.dumps({k: result.get(k) for k in ("steps", "export_dir", "workers", "rmse")}))
"""


@pytest.mark.parametrize("input_mode", ["memory", pytest.param("stream", marks=pytest.mark.slow)])
def test_two_workers_train_together_and_only_the_chief_exports(sample_dir, tmp_path, input_mode):
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    out = tmp_path / "out"
    train_paths = ",".join(os.path.join(sample_dir, f"{s}.csv") for s in ("train", "test"))  # two files to shard
    procs = []
    for i in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
               "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}  # fmt: skip
        env.pop("CLUSTER_SPEC", None)
        args = [sys.executable, "-c", WORKER, train_paths, os.path.join(sample_dir, "valid.csv"), str(out), input_mode]
        procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))  # fmt: skip
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=240)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, text in zip(procs, outputs, strict=True):
        assert p.returncode == 0, text[-3000:]
    results = [json.loads(text.split("RESULT ", 1)[1].splitlines()[0]) for text in outputs]
    assert [r["steps"] for r in results] == [60, 60]
    assert results[0]["workers"] == 2 and results[1]["export_dir"] is None
    assert results[0]["rmse"] == pytest.approx(results[1]["rmse"], rel=1e-5)  # the same model on both
    exports = os.listdir(out / "export" / "exporter")
    assert len(exports) == 1 and os.path.isfile(out / "export" / "exporter" / exports[0] / "saved_model.pb")
    assert (out / "metrics.json").is_file() and (out / "checkpoints" / "checkpoint").is_file()
    assert "worker 1 of 2" in outputs[1]
