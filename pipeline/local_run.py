"""Run the DAG on kfp's local runner and keep a record of every run under one runs root.

Each run gets its own folder `<runs_root>/<run_id>/` holding kfp's pipeline root, the full
log (`pipeline.log`) and `run.json`: parameters, each task's state, duration and outputs,
the decision and the error if any. `taxifare runs list/show` read those records. The record
is written when the run starts and as each task starts and ends; a run whose process died
(SIGKILL, a crash, a reboot) shows as interrupted, and its task processes die with it
(`pipeline.watchdog`), so nothing deploys after it is gone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import re
import secrets
import shutil
import socket
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import IO, Any, Protocol

from pipeline import environ, watchdog
from pipeline import pipeline as pipeline_lib
from pipeline.images import DEFAULT_IMAGE
from taxifare.errors import TaxifareError, UsageError
from trainer import progress as training_progress

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


class Watcher(Protocol):
    """Who follows a run as it goes (`taxifare run`'s terminal display)."""

    def started(self, record: dict[str, Any], log_path: str) -> None:
        """The run's record exists: its id and folder are known, nothing has run yet."""

    def task(self, task: TaskRecord) -> None:
        """A task started or ended."""

    def training(self, progress: training_progress.Progress) -> None:
        """The training task printed a progress line."""


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


class _LineTee(io.TextIOBase):
    """The run's stdout: everything to the log file, and each complete line to `on_line` (the tasks'
    output arrives here line by line from kfp's runners, which print what their processes print)."""

    def __init__(self, log: IO[str], on_line: Callable[[str], None]):
        super().__init__()
        self.log, self.on_line, self.partial = log, on_line, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.log.write(text)
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        if len(self.partial) > 65536:  # a task printing without newlines must not grow this buffer
            self.partial = ""
        for line in lines:
            self.on_line(line)
        return len(text)

    def flush(self) -> None:
        self.log.flush()


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
def _capture(log: IO[str], on_line: Callable[[str], None]) -> Iterator[None]:
    """Send kfp's chatter and the tasks' output to the run's log file, not the terminal; `on_line`
    sees each line of it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    with contextlib.redirect_stdout(_LineTee(log, on_line)), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)


def run(
    runs_root: str,
    params: dict[str, Any],
    watcher: Watcher | None = None,
    runner: str = "subprocess",
    image: str = DEFAULT_IMAGE,
) -> dict[str, Any]:
    """Run the whole DAG locally with checked `params` (they name the registry); return (and save)
    the run record. Never raises for task failures: the record says what failed and why.

    runner: subprocess (each task a process of this Python) or container (each task's own
    command in `image`, through kfp's DockerRunner: pipeline/containers.py).

    The record exists from the start (status running, with this process's pid, so `runs list`
    shows a run that was killed as interrupted), and is rewritten as each task starts and ends.
    """
    if runner not in RUNNERS:
        raise UsageError(f"--runner must be one of {', '.join(RUNNERS)}, not {runner!r}")
    before = _registry_state(params["registry"])  # a damaged registry stops the run before it starts
    clean_leftovers(runs_root, params["registry"])
    record = _new_record(runs_root, params, runner, image)
    run_dir, shown = record["run_dir"], _Shown(watcher)
    tasks: dict[str, TaskRecord] = {}

    def changed(task: TaskRecord) -> None:
        record["tasks"] = {name: dataclasses.asdict(t) for name, t in tasks.items()}
        _save(run_dir, record)
        shown.call("task", task)

    def line(text: str) -> None:
        if found := training_progress.parse(ANSI.sub("", text)):
            shown.call("training", found)

    log_path = os.path.join(run_dir, "pipeline.log")
    shown.call("started", record, log_path)
    events, token = _TaskEvents(tasks, changed), record["process"]["token"]
    pipeline_root = os.path.join(run_dir, "pipeline-root")
    try:
        status, error = _run_pipeline(record["params"], pipeline_root, log_path, events, line, runner, image, token)
    except TaxifareError as err:  # the run could not start (no engine, no image): recorded, then said
        _finish(record, tasks, "failed", str(err), before)
        _save(run_dir, record)
        raise
    except Exception as err:  # a runner or engine failure, not a task's: recorded, its traceback logged
        with open(log_path, "a") as log:
            traceback.print_exc(file=log)
        status, error = "failed", f"{type(err).__name__}: {err} (traceback in {log_path})"
    _finish(record, tasks, status, error, before)
    _save(run_dir, record)
    return record


def _new_record(runs_root: str, params: dict[str, Any], runner: str, image: str) -> dict[str, Any]:
    """A new run's folder and its record, saved: status running, with this process (for `interrupted`)."""
    run_id, run_dir = new_run_dir(runs_root)
    record = {
        "run_id": run_id,
        "run_dir": run_dir,
        "status": "running",
        "started": time.time(),
        "params": {**params, "deploy_target": "local", "run_id": run_id},
        "runner": runner,
        "image": image if runner == "container" else None,
        "tasks": {},
        "process": {**_this_process(), "token": watchdog.new_token()},
    }
    _save(run_dir, record)
    return record


class _Shown:
    """The watcher, kept from the run: its calls happen inside kfp's logging and output, where an
    error (a closed pipe, a terminal gone) would fail the run. The first one turns it off."""

    def __init__(self, watcher: Watcher | None):
        self.watcher = watcher

    def call(self, method: str, *args: Any) -> None:
        if self.watcher is None:
            return
        try:
            getattr(self.watcher, method)(*args)
        except Exception as err:
            self.watcher = None
            logging.getLogger(__name__).warning(
                "the live display stopped (%s: %s); the run goes on", type(err).__name__, err
            )


def _finish(
    record: dict[str, Any], tasks: dict[str, TaskRecord], status: str, error: str, before: dict[str, Any]
) -> None:
    """The run's outcome into its record: status, tasks, decision, registry change, the failure."""
    pipeline_root = os.path.join(record["run_dir"], "pipeline-root")
    record.update(status=status, seconds=time.time() - record["started"])
    if error:
        record["error"] = error
    record["registry_changed"] = _registry_change(before, _registry_state(record["params"]["registry"]))
    record["kfp_job_name"] = _collect_outputs(pipeline_root, tasks)
    _explain_failures(os.path.join(record["run_dir"], "pipeline.log"), tasks)
    _mark_skipped(tasks, status)
    record["tasks"] = {name: dataclasses.asdict(t) for name, t in tasks.items()}
    record["decision"] = _decision(tasks)
    record["deployed_version"] = tasks.get("deploy-model", TaskRecord("")).outputs.get("Output")
    failed = [t for t in tasks.values() if t.state == "failed"]
    if failed:
        record["failed_task"] = failed[0].name
        record["error"] = failed[0].error or record.get("error")
    record.pop("process", None)


def _save(run_dir: str, record: dict[str, Any]) -> None:
    """Replace run.json atomically: a reader (or a kill) never sees half a record."""
    tmp = os.path.join(run_dir, f".run.json.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2, default=str)
    os.replace(tmp, os.path.join(run_dir, "run.json"))


def _this_process() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": _process_start(os.getpid())}


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc), which tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def interrupted(record: dict[str, Any]) -> bool:
    """A record still `running` whose process (on this host) is gone: the run was killed."""
    proc = record.get("process")
    if record.get("status") != "running" or not isinstance(proc, dict) or proc.get("host") != socket.gethostname():
        return False
    pid = proc.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    start = proc.get("start")
    return start is not None and _process_start(pid) != start


def clean_leftovers(runs_root: str, registry: str) -> None:
    """What killed runs left: the task folders of interrupted runs, the registry's unfinished copies."""
    from taxifare.registry.local import LocalRegistry

    for record in list_runs(runs_root):
        if record["status"] == "interrupted":
            shutil.rmtree(os.path.join(runs_root, str(record["run_id"]), "tmp"), ignore_errors=True)
    LocalRegistry(registry).remove_leftovers()


def _run_pipeline(
    params: dict[str, Any],
    pipeline_root: str,
    log_path: str,
    events: logging.Filter,
    on_line: Callable[[str], None],
    runner: str,
    image: str,
    token: str,
) -> tuple[str, str]:
    """kfp's local runner on the DAG, its chatter in the log file; (status, error).

    Each task's process carries the watchdog's token (killed if this process dies) and, with the
    subprocess runner, puts its temporary folders (kfp's `mktemp -d` per task) under <run_dir>/tmp,
    removed at the end (the container runner's live in the containers; its podman socket stays
    under the system's temp folder, where its path is short enough for a unix socket).
    """
    from kfp import local

    params = dict(params)  # a container run stages local inputs and points these at them; the record keeps the given
    tmp = os.path.join(os.path.dirname(pipeline_root), "tmp")
    os.makedirs(tmp, exist_ok=True)
    root_logger = logging.getLogger()
    root_logger.addFilter(events)
    try:
        with (
            open(log_path, "w") as log,
            _capture(log, on_line),
            environ.overridden(**({"TMPDIR": tmp} if runner == "subprocess" else {})),
            watchdog.guarded(token),
            _kfp_runner(runner, image, pipeline_root, params) as chosen,
        ):
            # No local caching: kfp's cache keys on input paths, not file contents.
            local.init(runner=chosen, pipeline_root=pipeline_root, raise_on_error=True, enable_caching=False)
            try:
                pipeline_lib.build(image=image, target="local")(**params)
                return "succeeded", ""
            except RuntimeError as err:
                return "failed", ANSI.sub("", str(err))
    finally:
        root_logger.removeFilter(events)
        shutil.rmtree(tmp, ignore_errors=True)


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


def load(runs_root: str, run_id: str) -> dict[str, Any]:
    """A run's record from what a user typed: the id, `latest`, a unique prefix, or kfp's job name for it."""
    runs = list_runs(runs_root)
    if run_id == "latest":
        if not runs:
            raise UsageError(f"no runs under {runs_root} yet", "`taxifare run` starts one")
        return runs[0]
    exact = [r for r in runs if str(r["run_id"]) == run_id]
    matches = exact or [r for r in runs if r.get("kfp_job_name") == run_id]
    matches = matches or [r for r in runs if str(r["run_id"]).startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        found = ", ".join(str(r["run_id"]) for r in matches[:5])
        raise UsageError(f"{run_id!r} matches {len(matches)} runs ({found})", "type more of the id")
    recent = ", ".join(str(r["run_id"]) for r in runs[:5])
    raise UsageError(
        f"no run {run_id!r} under {runs_root}", f"recent: {recent}" if recent else "`taxifare run` starts one"
    )


def list_runs(runs_root: str) -> list[dict[str, Any]]:
    """Every run's record, newest first."""
    if not os.path.isdir(runs_root):
        return []
    runs = []
    for name in sorted(os.listdir(runs_root), reverse=True):
        path = os.path.join(runs_root, name, "run.json")
        if os.path.isfile(path):
            try:
                with open(path) as f:
                    record = json.load(f)
            except (OSError, ValueError):
                record = {"run_id": name, "run_dir": os.path.dirname(path), "status": "unreadable", "started": 0}
                record["error"] = f"{path} cannot be read as JSON"
            if not isinstance(record, dict) or "run_id" not in record:
                continue
            if interrupted(record):
                record["status"] = "interrupted"
                record.setdefault("error", f"the run's process ({record['process']['pid']}) ended before the run did")
            runs.append(record)
    return runs
