"""Run the DAG on kfp's local runner and keep a record of every run under one runs root.

Each run gets its own folder `<runs_root>/<run_id>/` holding kfp's pipeline root, the full
log (`pipeline.log`) and `run.json`: parameters, each task's state, duration and outputs,
the decision and the error if any. `taxifare runs list/show` read those records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import secrets
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from typing import IO, Any

from pipeline import pipeline as pipeline_lib
from pipeline.images import DEFAULT_IMAGE
from taxifare.errors import UsageError

ANSI = re.compile(r"\x1b\[[0-9;]*m")
_START = re.compile(r"Executing task '([^']+)'")
_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
RUNNERS = ("subprocess", "container")
SAMPLE_ROWS = 20_000
SAMPLE_SEED = 0


@dataclasses.dataclass
class TaskRecord:
    name: str
    state: str = "pending"  # running, succeeded, failed, skipped
    started: float | None = None
    seconds: float | None = None
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None


def new_run_dir(runs_root: str) -> tuple[str, str]:
    """A fresh folder per run: mkdir fails rather than reuse, so concurrent runs never share one."""
    os.makedirs(runs_root, exist_ok=True)
    while True:
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        path = os.path.join(runs_root, run_id)
        try:
            os.mkdir(path)
            return run_id, path
        except FileExistsError:
            continue


def sample_data(runs_root: str, rows: int = SAMPLE_ROWS, seed: int = SAMPLE_SEED) -> str:
    """Generated sample data, written once per (rows, seed) and reused by later runs."""
    from trainer import sample_data as generator

    final = os.path.join(runs_root, "sample-data", f"rows{rows}-seed{seed}")
    if not os.path.isdir(final):
        tmp = f"{final}.tmp-{os.getpid()}"
        generator.write_splits(tmp, rows, seed)
        try:
            os.rename(tmp, final)
        except OSError:  # another run wrote it first
            shutil.rmtree(tmp, ignore_errors=True)
    return final


class _TaskEvents(logging.Filter):
    """Sees kfp's task start/finish records (a logger filter survives kfp's handler swaps)."""

    def __init__(self, tasks: dict[str, TaskRecord], on_change: Callable[[TaskRecord], None]):
        super().__init__()
        self.tasks = tasks
        self.on_change = on_change

    def filter(self, record: logging.LogRecord) -> bool:
        message = ANSI.sub("", record.getMessage())
        if m := _START.search(message):
            task = self.tasks.setdefault(m.group(1), TaskRecord(m.group(1)))
            task.state, task.started = "running", time.time()
            self.on_change(task)
        elif m := _END.search(message):
            task = self.tasks.setdefault(m.group(1), TaskRecord(m.group(1)))
            task.state = "succeeded" if m.group(2) == "SUCCESS" else "failed"
            if task.started:
                task.seconds = time.time() - task.started
            self.on_change(task)
        return True


@contextlib.contextmanager
def _capture(log: IO[str]) -> Iterator[None]:
    """Send kfp's chatter and the tasks' output to the run's log file, not the terminal."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    with contextlib.redirect_stdout(log), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)


def run(
    runs_root: str,
    params: dict[str, Any],
    progress: Callable[[TaskRecord], None] | None = None,
    runner: str = "subprocess",
    image: str = DEFAULT_IMAGE,
) -> dict[str, Any]:
    """Run the whole DAG locally with checked `params` (they name the registry); return (and save)
    the run record. Never raises for task failures: the record says what failed and why.

    runner: subprocess (each task a process of this Python) or container (each task's own
    command in `image`, through kfp's DockerRunner: pipeline/containers.py).
    """
    if runner not in RUNNERS:
        raise UsageError(f"--runner must be one of {', '.join(RUNNERS)}, not {runner!r}")
    run_id, run_dir = new_run_dir(runs_root)
    params = {**params, "deploy_target": "local", "run_id": run_id}
    record: dict[str, Any] = {
        "run_id": run_id,
        "run_dir": run_dir,
        "status": "running",
        "started": time.time(),
        "params": params,
        "runner": runner,
        "image": image if runner == "container" else None,
        "tasks": {},
    }
    before = _registry_state(params["registry"])
    tasks: dict[str, TaskRecord] = {}
    pipeline_root = os.path.join(run_dir, "pipeline-root")
    log_path = os.path.join(run_dir, "pipeline.log")
    events = _TaskEvents(tasks, progress or (lambda t: None))
    status, error = _run_pipeline(params, pipeline_root, log_path, events, runner, image)
    record.update(status=status, seconds=time.time() - record["started"])
    if error:
        record["error"] = error
    record["registry_changed"] = _registry_change(before, _registry_state(params["registry"]))
    record["kfp_job_name"] = _collect_outputs(pipeline_root, tasks)
    _explain_failures(log_path, tasks)
    _mark_skipped(tasks, status)
    record["tasks"] = {name: dataclasses.asdict(t) for name, t in tasks.items()}
    record["decision"] = _decision(tasks)
    record["deployed_version"] = tasks.get("deploy-model", TaskRecord("")).outputs.get("Output")
    failed = [t for t in tasks.values() if t.state == "failed"]
    if failed:
        record["failed_task"] = failed[0].name
        record["error"] = failed[0].error or record.get("error")
    with open(os.path.join(run_dir, "run.json"), "w") as f:
        json.dump(record, f, indent=2, default=str)
    return record


def _run_pipeline(
    params: dict[str, Any], pipeline_root: str, log_path: str, events: logging.Filter, runner: str, image: str
) -> tuple[str, str]:
    """kfp's local runner on the DAG, its chatter in the log file; (status, error)."""
    from kfp import local

    params = dict(params)  # a container run stages local inputs and points these at them; the record keeps the given
    root_logger = logging.getLogger()
    root_logger.addFilter(events)
    try:
        with open(log_path, "w") as log, _capture(log), _kfp_runner(runner, image, pipeline_root, params) as chosen:
            # No local caching: kfp's cache keys on input paths, not file contents.
            local.init(runner=chosen, pipeline_root=pipeline_root, raise_on_error=True, enable_caching=False)
            try:
                pipeline_lib.build(image=image, target="local")(**params)
                return "succeeded", ""
            except RuntimeError as err:
                return "failed", ANSI.sub("", str(err))
    finally:
        root_logger.removeFilter(events)


@contextlib.contextmanager
def _kfp_runner(kind: str, image: str, pipeline_root: str, params: dict[str, Any]) -> Iterator[Any]:
    from kfp import local

    if kind == "subprocess":
        yield local.SubprocessRunner(use_venv=False)
        return
    from pipeline import containers

    inputs = os.path.join(pipeline_root, "inputs")
    for name in ("source", "train_source", "valid_source", "test_source"):
        if params.get(name):  # readable by the image's user, inside the mounted pipeline root
            params[name] = containers.stage_inputs(params[name], os.path.join(inputs, name))
    with containers.docker_runner(image, pipeline_root, params["registry"]) as runner:
        yield runner


def _registry_change(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        "champion": [before["champion"], after["champion"]] if before["champion"] != after["champion"] else None,
        "new_versions": sorted(set(after["versions"]) - set(before["versions"])),
    }


def _mark_skipped(tasks: dict[str, TaskRecord], status: str) -> None:
    """Tasks that never started: skipped (by the gate, when the run succeeded without deploying)."""
    for name in _expected_tasks():
        task = tasks.setdefault(name, TaskRecord(name))
        if task.state == "pending":
            task.state = "skipped"
            if name == "deploy-model" and status == "succeeded":
                task.error = "skipped by the gate: " + _decision(tasks).get("reason", "not blessed")


def _registry_state(root: str) -> dict[str, Any]:
    from taxifare.registry.local import LocalRegistry

    reg = LocalRegistry(root)
    return {"champion": reg.aliases().get("champion"), "versions": [v.name for v in reg.versions()]}


def _expected_tasks() -> list[str]:
    return ["stage-data", "train-model", "evaluate-model", "deploy-model"]


def _collect_outputs(pipeline_root: str, tasks: dict[str, TaskRecord]) -> str | None:
    """Read each task's executor_output.json (parameters, artifact metadata); return kfp's job name."""
    if not os.path.isdir(pipeline_root):
        return None
    job_name = None
    for run_folder in os.listdir(pipeline_root):
        base = os.path.join(pipeline_root, run_folder)
        if not os.path.isdir(base):
            continue
        job_name = run_folder  # kfp's local runner names the folder after the pipeline job
        for name in os.listdir(base):
            path = os.path.join(base, name, "executor_output.json")
            if not os.path.isfile(path):
                continue
            with open(path) as f:
                out = json.load(f)
            task = tasks.setdefault(name, TaskRecord(name))
            task.outputs.update(out.get("parameterValues", {}))
            for art_name, arts in out.get("artifacts", {}).items():
                for art in arts.get("artifacts", []):
                    task.outputs[art_name] = {"uri": art.get("uri"), **art.get("metadata", {})}
    return job_name


def _explain_failures(log_path: str, tasks: dict[str, TaskRecord]) -> None:
    """The last exception line a failed task printed is its reason."""
    failed = {t.name for t in tasks.values() if t.state == "failed"}
    if not failed:
        return
    current = None
    with open(log_path) as f:
        for line in f:
            line = ANSI.sub("", line)
            if m := _START.search(line):
                current = m.group(1)
            elif current in failed and (m := re.match(r"^\s*((?:\w+\.)*\w*(?:Error|Exception)): (.+)$", line)):
                tasks[current].error = f"{m.group(1).rsplit('.', 1)[-1]}: {m.group(2).strip()}"


def _decision(tasks: dict[str, TaskRecord]) -> dict[str, Any]:
    evaluate = tasks.get("evaluate-model")
    if not evaluate:
        return {}
    uri = (evaluate.outputs.get("decision") or {}).get("uri")
    if uri and os.path.isfile(uri):
        with open(uri) as f:
            return json.load(f)
    return {}


def resolve(runs_root: str, run_id: str) -> str:
    """A run id from what a user typed: the id, `latest`, a unique prefix, or kfp's job name for it."""
    runs = list_runs(runs_root)
    if run_id == "latest":
        if not runs:
            raise UsageError(f"no runs under {runs_root} yet", "`taxifare run` starts one")
        return str(runs[0]["run_id"])
    ids = [str(r["run_id"]) for r in runs]
    if run_id in ids:
        return run_id
    by_job = [str(r["run_id"]) for r in runs if r.get("kfp_job_name") == run_id]
    matches = by_job or [i for i in ids if i.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    recent = ", ".join(ids[:5])
    if matches:
        raise UsageError(f"{run_id!r} matches {len(matches)} runs ({', '.join(matches[:5])})", "type more of the id")
    raise UsageError(
        f"no run {run_id!r} under {runs_root}", f"recent: {recent}" if recent else "`taxifare run` starts one"
    )


def load(runs_root: str, run_id: str) -> dict[str, Any]:
    with open(os.path.join(runs_root, resolve(runs_root, run_id), "run.json")) as f:
        return json.load(f)


def list_runs(runs_root: str) -> list[dict[str, Any]]:
    """Every run's record, newest first."""
    if not os.path.isdir(runs_root):
        return []
    runs = []
    for name in sorted(os.listdir(runs_root), reverse=True):
        path = os.path.join(runs_root, name, "run.json")
        if os.path.isfile(path):
            with open(path) as f:
                runs.append(json.load(f))
    return runs
