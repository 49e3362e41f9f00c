"""Run a pipeline on kfp's local runner, keeping its record (records.py) as it goes.

The record is written when the run starts (status running, with this process, so a run that is
killed shows as interrupted) and as each task starts and ends; the run's task processes die
with it (watchdog.py), so nothing deploys after it is gone. The DAG, the tasks' states and
outputs come from the pipeline's compiled spec and from what kfp's runner returns
(kfp_tasks.py); the tasks' output goes to the run's log and to one log per task, and the
structured events in it (trainer/events.py) reach the watcher.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import IO, Any, Protocol

from pipeline.images import DEFAULT_IMAGE
from taxifare.errors import TaxifareError, UsageError
from taxifare.runs import dag, kfp_tasks, records, watchdog
from taxifare.runs.records import RegistryChange, RunRecord, TaskRecord
from taxifare.runs.runner import Runner
from taxifare.runs.status import Status
from trainer import events
from trainer import progress as training_progress

RUNNERS = ("subprocess", "container")
SAMPLE_ROWS = 20_000
SAMPLE_SEED = 0
MAX_LINE = 65536  # a task printing without newlines must not grow the line buffer


class Watcher(Protocol):
    """Who follows a run as it goes (`taxifare run`'s terminal display)."""

    def started(self, record: RunRecord, log_path: str) -> None:
        """The run's record exists: its id and folder are known, nothing has run yet."""

    def task(self, task: TaskRecord) -> None:
        """A task started or ended."""

    def training(self, progress: training_progress.Progress) -> None:
        """The training task reported its progress."""


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


def runner(name: str, image: str) -> Runner:
    from taxifare.runs.container_runner import ContainerRunner
    from taxifare.runs.subprocess_runner import SubprocessRunner

    if name == "subprocess":
        return SubprocessRunner()
    if name == "container":
        return ContainerRunner(image)
    raise UsageError(f"--runner must be one of {', '.join(RUNNERS)}, not {name!r}")


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


class _Tracker:
    """The record's tasks as kfp runs them, each task's output into its own log, its events to the watcher."""

    def __init__(self, record: RunRecord, shown: _Shown):
        self.record, self.shown = record, shown
        self.current: TaskRecord | None = None
        self.task_log: IO[str] | None = None
        os.makedirs(os.path.join(record.folder, "tasks"), exist_ok=True)

    def start(self, name: str, job_name: str) -> None:
        task = self.record.tasks.setdefault(name, TaskRecord(name=name))
        task.state, task.started = Status.RUNNING, time.time()
        self.record.kfp_job_name = job_name or self.record.kfp_job_name
        self.current = task
        self.task_log = open(self.record.log_path(name), "a")  # noqa: SIM115 - closed at the task's end
        self._changed(task)

    def end(self, name: str, succeeded: bool, outputs: dict[str, Any]) -> None:
        task = self.record.tasks.setdefault(name, TaskRecord(name=name))
        task.state = Status.SUCCEEDED if succeeded else Status.FAILED
        task.seconds = time.time() - task.started if task.started else None
        task.outputs.update(outputs)
        if not succeeded and not task.error:
            task.error = "failed (see its log)"
        if self.task_log is not None:
            self.task_log.close()
        self.current, self.task_log = None, None
        self._changed(task)

    def line(self, text: str) -> None:
        task = self.current
        if task is None:
            return
        if self.task_log is not None:
            self.task_log.write(text + "\n")
        if (found := events.parse(text)) is not None:
            self._event(task, found)
        elif (reason := kfp_tasks.exception_line(text)) is not None:
            task.error = reason  # the last one a failed task printed is its reason

    def _event(self, task: TaskRecord, found: events.Event) -> None:
        if found.kind == "progress" and (p := training_progress.from_event(found.fields)) is not None:
            self.shown.call("training", p)
        elif found.kind == "summary" and isinstance(found.fields.get("lines"), list):
            task.summary = [str(line) for line in found.fields["lines"]][:20]

    def _changed(self, task: TaskRecord) -> None:
        records.save(self.record)
        self.shown.call("task", task)


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
        if len(self.partial) > MAX_LINE:
            self.partial = ""
        for line in lines:
            self.on_line(kfp_tasks.ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log.flush()


@contextlib.contextmanager
def _capture(log: IO[str], on_line: Callable[[str], None]) -> Iterator[None]:
    """kfp's chatter and the tasks' output to the run's log file, not the terminal; `on_line` sees each line."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    with contextlib.redirect_stdout(_LineTee(log, on_line)), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)


class Prepared:
    """A run being set up: its watchdog's token and its runner, warming up already (`preparing`)."""

    def __init__(self, token: str, chosen: Runner, warm_log: str):
        self.token, self.runner, self.warm_log = token, chosen, warm_log
        self.run_dir = ""  # once the run has a folder


@contextlib.contextmanager
def preparing(runs_root: str, runner_name: str = "subprocess", image: str = DEFAULT_IMAGE) -> Iterator[Prepared]:
    """Start the runner's warm-up (the subprocess runner's warm Python imports TensorFlow) before the
    caller checks its parameters and `run` builds the pipeline, so the two overlap; inside the run's
    watchdog, so what it starts dies with the run (or with the checks, when they fail). Its log waits
    beside the runs (in the temp folder while there are none: a refused run writes nothing there) and
    ends in the run's folder."""
    chosen = runner(runner_name, image)
    token = watchdog.new_token()
    waiting_room = runs_root if os.path.isdir(runs_root) else tempfile.gettempdir()
    prepared = Prepared(token, chosen, os.path.join(waiting_room, f".taxifare-warm-{token}.log"))
    try:
        with watchdog.guarded(token), contextlib.closing(chosen):
            with contextlib.suppress(OSError):  # warming up is only a head start: the run says what is wrong
                chosen.warm_up(prepared.warm_log)
            yield prepared
    finally:
        _keep_warm_log(prepared)


def _keep_warm_log(prepared: Prepared) -> None:
    """The warm Python's log into the run's folder (a copy across file systems), or gone with no run."""
    if not os.path.exists(prepared.warm_log):
        return
    with contextlib.suppress(OSError):
        if prepared.run_dir:
            shutil.copyfile(prepared.warm_log, os.path.join(prepared.run_dir, "warm.log"))
        os.remove(prepared.warm_log)


def run(
    runs_root: str,
    params: dict[str, Any],
    watcher: Watcher | None = None,
    runner_name: str = "subprocess",
    image: str = DEFAULT_IMAGE,
    pipeline: str = "training",
    built: Any = None,
    prepared: Prepared | None = None,
) -> RunRecord:
    """Run a pipeline locally with checked `params` (they name the registry); return (and save) its record.
    Never raises for task failures: the record says what failed and why.

    `pipeline` names one of pipeline/'s; `built`, a kfp pipeline object, runs instead (recorded under
    that name): whatever its steps, its record, views and report follow its compiled spec. `prepared`:
    from `preparing` (its runner then, not `runner_name`), for a caller that started it earlier.
    """
    import pipeline as pipelines

    if prepared is None:
        with preparing(runs_root, runner_name, image) as prepared:
            return run(runs_root, params, watcher, runner_name, image, pipeline, built, prepared)
    registry = params.get("registry", "")
    before = _registry_state(registry)  # a damaged registry stops the run before it starts
    clean_leftovers(runs_root, registry)
    run_id, run_dir = records.new_run_dir(runs_root)
    prepared.run_dir = run_dir
    with contextlib.suppress(OSError):  # one file system (FUSE renames files): moved now, else copied at the end
        os.replace(prepared.warm_log, os.path.join(run_dir, "warm.log"))
    built = built or pipelines.get(pipeline).build(image=image, target="local")
    record = _new_record(run_id, run_dir, params, prepared.runner, image, pipeline, built, prepared.token)
    return _run_recorded(record, built, prepared.runner, watcher, before)


def _run_recorded(record: RunRecord, built: Any, chosen: Runner, watcher: Watcher | None,
                  before: dict[str, Any]) -> RunRecord:  # fmt: skip
    """The run whose record exists: its outcome into the record, whatever happens."""
    shown = _Shown(watcher)
    shown.call("started", record, record.log_path())
    try:
        status, error = _run_pipeline(built, record, chosen, _Tracker(record, shown))
    except TaxifareError as err:  # the run could not start (no engine, no image): recorded, then said
        _finish(record, Status.FAILED, str(err), before)
        raise
    except Exception as err:  # a runner or engine failure, not a task's: recorded, its traceback logged
        with open(record.log_path(), "a") as log:
            traceback.print_exc(file=log)
        status, error = Status.FAILED, f"{type(err).__name__}: {err} (traceback in {record.log_path()})"
    _finish(record, status, error, before)
    return record


def _new_record(run_id: str, run_dir: str, params: dict[str, Any], chosen: Runner, image: str, pipeline: str,
                built: Any, token: str) -> RunRecord:  # fmt: skip
    """A new run's record, saved: status running, with this process (for `interrupted`)."""
    takes = set(built.component_spec.inputs or {})  # a registered version records the run it came from
    given = {**params, **({"run_id": run_id} if "run_id" in takes else {})}
    if "deploy_target" in takes:
        given["deploy_target"] = "local"
    record = RunRecord(
        version=records.VERSION, run_id=run_id, pipeline=pipeline, started=time.time(), params=given,
        runner=chosen.name, image=image if chosen.name == "container" else None, dag=dag.of_pipeline(built),
        process=records.this_process(token),
    ).at(run_dir)  # fmt: skip
    records.save(record)
    return record


def _run_pipeline(built: Any, record: RunRecord, chosen: Runner, tracker: _Tracker) -> tuple[Status, str]:
    """kfp's local runner on the DAG, its chatter in the log file; (status, error). Each task's
    process carries the watchdog's token (the caller holds it): killed if this process dies."""
    from kfp import local

    params = dict(record.params)  # a runner may point inputs elsewhere; the record keeps what was given
    pipeline_root = os.path.join(record.folder, "pipeline-root")
    with (
        open(record.log_path(), "w") as log,
        _capture(log, tracker.line),
        chosen.prepared(record.folder, pipeline_root, params) as kfp_runner,
        kfp_tasks.observed(tracker.start, tracker.end),
    ):
        # No local caching: kfp's cache keys on input paths, not file contents.
        local.init(runner=kfp_runner, pipeline_root=pipeline_root, raise_on_error=True, enable_caching=False)
        chosen.ready()
        try:
            built(**params)
            return Status.SUCCEEDED, ""
        except RuntimeError as err:
            return Status.FAILED, kfp_tasks.ANSI.sub("", str(err))


def _finish(record: RunRecord, status: Status, error: str, before: dict[str, Any]) -> None:
    """The run's outcome into its record: status, tasks never run, registry change, the failure."""
    record.status, record.seconds = status, time.time() - record.started
    record.registry_change = _registry_change(before, _registry_state(record.params.get("registry", "")))
    _mark_skipped(record)
    failed = [t for t in record.tasks.values() if t.state == Status.FAILED]
    if failed:
        record.failed_task, record.error = failed[0].name, failed[0].error or error
    elif error:
        record.error = error
    record.process = None
    records.save(record)


def _mark_skipped(record: RunRecord) -> None:
    """Tasks that never started: skipped by their condition when the run went on, else by the failure."""
    for t in record.dag:
        task = record.tasks.setdefault(t.name, TaskRecord(name=t.name))
        if task.state == Status.RUNNING:  # the runner itself failed under it
            task.state, task.error = Status.FAILED, task.error or "did not finish: the run failed under it"
        if task.state != Status.PENDING:
            continue
        task.state = Status.SKIPPED
        if t.condition and record.status == Status.SUCCEEDED:
            source = record.tasks.get(t.condition_task)
            why = source.summary[-1] if source and source.summary else "its condition was false"
            task.error = f"skipped by the condition {t.condition!r}: {why}"


def _registry_state(root: str) -> dict[str, Any]:
    if not root:
        return {"champion": None, "versions": []}
    from taxifare.registry.local import LocalRegistry

    reg = LocalRegistry(root)
    return {"champion": reg.aliases().get("champion"), "versions": [v.name for v in reg.versions()]}


def _registry_change(before: dict[str, Any], after: dict[str, Any]) -> RegistryChange:
    moved = [before["champion"], after["champion"]] if before["champion"] != after["champion"] else None
    return RegistryChange(champion=moved, new_versions=sorted(set(after["versions"]) - set(before["versions"])))


def clean_leftovers(runs_root: str, registry: str) -> None:
    """What killed runs left: the task folders of interrupted runs, the registry's unfinished copies.
    Only folders found under the runs root are touched, never a path read from a record."""
    for record in records.list_runs(runs_root):
        if record.status == Status.INTERRUPTED:
            shutil.rmtree(os.path.join(record.folder, "tmp"), ignore_errors=True)
    if registry:
        from taxifare.registry.local import LocalRegistry

        LocalRegistry(registry).remove_leftovers()
