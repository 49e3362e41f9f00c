"""Which worker am I: the cluster from TF_CONFIG, or from Vertex AI's CLUSTER_SPEC.

Vertex AI custom jobs describe the replicas in CLUSTER_SPEC, by worker pool:
    {"cluster": {"workerpool0": ["host:port"], "workerpool1": ["host:port", ...]},
     "task": {"type": "workerpool0", "index": 0}}
Pool 0 is the chief, pool 1 the other workers (pools 2 and 3, parameter servers and
evaluators, are not used here). TensorFlow wants TF_CONFIG with "chief" and "worker".
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

POOL_ROLES = {"workerpool0": "chief", "workerpool1": "worker"}


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A TF_CONFIG-style cluster and this process's task in it."""

    spec: dict[str, list[str]]
    task_type: str
    task_index: int

    @property
    def workers(self) -> list[tuple[str, int]]:
        """Every worker, chief first: the order that numbers the input shards."""
        return [(role, i) for role in ("chief", "worker") for i in range(len(self.spec.get(role, [])))]

    @property
    def num_workers(self) -> int:
        return len(self.workers)

    @property
    def index(self) -> int:
        return self.workers.index((self.task_type, self.task_index))

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    def tf_config(self) -> dict[str, Any]:
        return {"cluster": self.spec, "task": {"type": self.task_type, "index": self.task_index}}


def from_environment(environ: Mapping[str, str]) -> Cluster | None:
    """The cluster when TF_CONFIG or CLUSTER_SPEC names more than one worker, else None."""
    if environ.get("TF_CONFIG"):
        config = json.loads(environ["TF_CONFIG"])
        cluster = _from_tf_config(config)
    elif environ.get("CLUSTER_SPEC"):
        cluster = _from_cluster_spec(json.loads(environ["CLUSTER_SPEC"]))
    else:
        return None
    if cluster is None or cluster.num_workers <= 1:
        return None
    return cluster


def _from_tf_config(config: Mapping[str, Any]) -> Cluster | None:
    spec = {role: list(hosts) for role, hosts in config.get("cluster", {}).items() if role in ("chief", "worker")}
    task = config.get("task") or {}
    if not spec or task.get("type") not in spec:
        return None  # an evaluator or parameter server, or no cluster at all
    return Cluster(spec, task["type"], int(task.get("index", 0)))


def _from_cluster_spec(config: Mapping[str, Any]) -> Cluster | None:
    pools = config.get("cluster", {})
    spec = {POOL_ROLES[p]: list(hosts) for p, hosts in pools.items() if p in POOL_ROLES and hosts}
    task = config.get("task") or {}
    role = POOL_ROLES.get(task.get("type", ""))
    if role is None or role not in spec:
        return None
    return Cluster(spec, role, int(task.get("index", 0)))


def strategy(cluster: Cluster | None) -> Any:
    """MultiWorkerMirroredStrategy for a cluster; TensorFlow's default (no-op) strategy otherwise."""
    import tensorflow as tf

    if cluster is None:
        return tf.distribute.get_strategy()
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster.spec), task_type=cluster.task_type, task_id=cluster.task_index, rpc_layer="grpc"
    )
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
