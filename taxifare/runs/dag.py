"""A pipeline's DAG as its compiled spec states it: tasks, display names, edges, conditions.

The run record, the terminal views, the HTML report and the console all draw the DAG from this,
so a step added to a pipeline appears everywhere with no other edit. Control-flow groups
(`dsl.If`, `dsl.ExitHandler`, loops) are not drawn as tasks: their tasks are, each carrying the
group's condition, and an exit task runs after all the others whatever happened.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

_CHANNEL = re.compile(r"pipelinechannel--(.+)")


@dataclasses.dataclass(frozen=True)
class DagTask:
    name: str  # kfp's task name, e.g. "train-model" (what kfp's local runner and the outputs use)
    display: str  # the display name set in the pipeline, e.g. "train"
    upstream: tuple[str, ...] = ()  # the tasks it waits for (data and ordering)
    condition: str = ""  # the name of the dsl.If group it is in ("" : always runs when its inputs do)
    condition_task: str = ""  # the task whose output the condition reads
    exit: bool = False  # an exit handler's task: runs after the others, even when they fail


def from_spec(spec: Mapping[str, Any]) -> list[DagTask]:
    """The tasks of a compiled pipeline spec (the YAML's or the PipelineSpec's dict), upstream first."""
    components = spec.get("components", {})
    tasks: dict[str, DagTask] = {}
    _walk(spec["root"]["dag"], components, tasks, _Group({}))
    return order(tasks.values())


@dataclasses.dataclass(frozen=True)
class _Group:
    """What the tasks of a control-flow group inherit from it."""

    channels: Mapping[str, tuple[str, ...]]  # the group's inputs -> the tasks that produce them
    upstream: tuple[str, ...] = ()  # what the group waits for
    condition: str = ""
    condition_task: str = ""


def _walk(dag: Mapping[str, Any], components: Mapping[str, Any], out: dict[str, DagTask], group: _Group) -> None:
    """Add the tasks of `dag`, a pipeline's root or a group inside it."""
    groups = {name: _leaves(t, components) for name, t in dag.get("tasks", {}).items()}
    for name, task in dag.get("tasks", {}).items():
        upstream = set(_producers(task, group.channels)) | set(group.upstream)
        for dep in task.get("dependentTasks", []):
            upstream.update(groups.get(dep) or (dep,))
        inner = components.get(task["componentRef"]["name"], {}).get("dag")
        if inner is not None:
            _walk(inner, components, out, _inner_group(name, task, group, upstream))
            continue
        exit_task = task.get("triggerPolicy", {}).get("strategy") == "ALL_UPSTREAM_TASKS_COMPLETED"
        display = task.get("taskInfo", {}).get("name", name)
        out[name] = DagTask(
            name, display, tuple(sorted(upstream - {name})), group.condition, group.condition_task, exit_task
        )


def _inner_group(name: str, task: Mapping[str, Any], outer: _Group, upstream: set[str]) -> _Group:
    """A group task's inputs, wait and condition, as its own tasks see them."""
    channels = dict(outer.channels)
    for kind in ("artifacts", "parameters"):
        for key, ref in task.get("inputs", {}).get(kind, {}).items():
            channels[key] = tuple(_producers({"inputs": {kind: {key: ref}}}, outer.channels))
    condition = task.get("triggerPolicy", {}).get("condition", "")
    if not condition:
        return _Group(channels, tuple(upstream), outer.condition, outer.condition_task)
    return _Group(channels, tuple(upstream), task.get("taskInfo", {}).get("name", name), _condition_source(task))


def _leaves(task: Mapping[str, Any], components: Mapping[str, Any]) -> tuple[str, ...]:
    """The tasks inside a group (for an edge that waits on the whole group), () for a plain task."""
    inner = components.get(task["componentRef"]["name"], {}).get("dag")
    if inner is None:
        return ()
    names: list[str] = []
    for name, t in inner.get("tasks", {}).items():
        names.extend(_leaves(t, components) or (name,))
    return tuple(names)


def _producers(task: Mapping[str, Any], channels: Mapping[str, tuple[str, ...]]) -> Iterable[str]:
    for kind in ("artifacts", "parameters"):
        for ref in task.get("inputs", {}).get(kind, {}).values():
            for key in ("taskOutputArtifact", "taskOutputParameter"):
                if key in ref:
                    yield ref[key]["producerTask"]
            for key in ("componentInputArtifact", "componentInputParameter"):
                if key in ref:
                    yield from channels.get(ref[key], ())


def _condition_source(task: Mapping[str, Any]) -> str:
    """The task whose output a dsl.If reads (pipelinechannel--<task>-<output> in the condition)."""
    params = task.get("inputs", {}).get("parameters", {})
    producers = [p["taskOutputParameter"]["producerTask"] for p in params.values() if "taskOutputParameter" in p]
    return producers[0] if producers else ""


def order(tasks: Iterable[DagTask]) -> list[DagTask]:
    """Upstream first (by depth, then as declared); exit tasks last."""
    by_name = {t.name: t for t in tasks}
    depth: dict[str, int] = {}

    def level(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in depth:
            ups = [u for u in by_name[name].upstream if u in by_name and u not in seen]
            depth[name] = 1 + max((level(u, seen | {name}) for u in ups), default=-1)
        return depth[name]

    index = {name: i for i, name in enumerate(by_name)}
    return sorted(by_name.values(), key=lambda t: (t.exit, level(t.name), index[t.name]))


def levels(tasks: Iterable[DagTask]) -> dict[str, int]:
    """Each task's row in a drawing: one below the lowest of its upstream tasks."""
    rows: dict[str, int] = {}
    for t in order(tasks):
        rows[t.name] = 1 + max((rows[u] for u in t.upstream if u in rows), default=-1)
    return rows


def of_pipeline(pipeline: Any) -> list[DagTask]:
    """The DAG of a kfp pipeline object (a GraphComponent), from the spec kfp compiles for it."""
    from google.protobuf import json_format

    return from_spec(json_format.MessageToDict(pipeline.pipeline_spec))


def to_json(tasks: Iterable[DagTask]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(t) for t in tasks]


def direct_upstream(tasks: Iterable[DagTask]) -> dict[str, tuple[str, ...]]:
    """Each task's upstream tasks less those it also reaches through another (a drawing's edges)."""
    by_name = {t.name: t for t in tasks}
    reach: dict[str, set[str]] = {}

    def ancestors(name: str) -> set[str]:
        if name not in reach:
            reach[name] = set()
            for up in by_name[name].upstream if name in by_name else ():
                reach[name] |= {up} | ancestors(up)
        return reach[name]

    return {
        t.name: tuple(u for u in t.upstream if not any(u in ancestors(o) for o in t.upstream if o != u))
        for t in by_name.values()
    }
