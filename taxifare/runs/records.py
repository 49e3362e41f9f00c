"""Local runs' records: typed, versioned, read and written here only, and validated on read.

Each run has a folder `<runs_root>/<run_id>/` with `run.json` (a RunRecord), the full log
(`pipeline.log`), one log per task (`tasks/<task>.log`) and kfp's pipeline root. A record is
untrusted input: it is read only if it is a regular file of sane size, decoded into the types
below by msgspec (a wrong type or shape is one line naming the file and the field), and its
run id must be its folder's name. Nothing read from a record is ever used as a path: a run's
folder is where its record was found.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import time
from typing import Any

import msgspec

from taxifare.errors import RecordError, UsageError
from taxifare.files import pid_alive, read_regular
from taxifare.runs.dag import DagTask
from taxifare.runs.status import Status

VERSION = 2  # version 1: the untyped records of taxifare before run records were typed
RECORD = "run.json"
MAX_RECORD_BYTES = 16 << 20
RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
FIX = "`taxifare run` starts a new run; remove or restore that folder"


class TaskRecord(msgspec.Struct, kw_only=True):
    name: str
    state: Status = Status.PENDING
    started: float | None = None
    seconds: float | None = None
    outputs: dict[str, Any] = {}  # parameters by name; artifacts as {"uri": ..., **metadata}
    summary: list[str] = []  # the lines the step sent (trainer/events.py)
    error: str | None = None


class ProcessInfo(msgspec.Struct, kw_only=True):
    """The process running the run: a record still `running` whose process is gone was interrupted."""

    pid: int
    host: str
    start: str | None  # its start time in clock ticks since boot, which tells a reused pid apart
    token: str  # the watchdog's mark on the run's task processes


class RegistryChange(msgspec.Struct, kw_only=True):
    champion: list[str | None] | None = None  # [before, after] when it moved
    new_versions: list[str] = []


class RunRecord(msgspec.Struct, kw_only=True, dict=True):
    version: int  # VERSION; required, so that an older, unversioned record is told apart
    run_id: str
    pipeline: str = "training"
    status: Status = Status.RUNNING
    started: float
    seconds: float | None = None
    params: dict[str, Any] = {}
    runner: str = "subprocess"
    image: str | None = None
    dag: list[DagTask] = []
    tasks: dict[str, TaskRecord] = {}
    error: str | None = None
    failed_task: str | None = None
    registry_change: RegistryChange | None = None
    kfp_job_name: str | None = None
    process: ProcessInfo | None = None

    @property
    def folder(self) -> str:
        """Where the record was found or made: the run's folder (not a field: never written, never read)."""
        return str(self.__dict__.get("folder_", ""))

    def at(self, folder: str) -> RunRecord:
        self.__dict__["folder_"] = folder
        return self

    def task(self, name: str) -> TaskRecord:
        return self.tasks.get(name) or TaskRecord(name=name)

    def log_path(self, task: str | None = None) -> str:
        return os.path.join(self.folder, "pipeline.log" if task is None else os.path.join("tasks", f"{task}.log"))

    def metric(self, name: str) -> float | None:
        """A metric any task logged (its Metrics artifacts' figures), e.g. candidate_rmse."""
        for task in self.tasks.values():
            for out in task.outputs.values():
                if isinstance(out, dict) and isinstance(out.get(name), int | float):
                    return float(out[name])
        return None

    @property
    def deployed_version(self) -> str | None:
        change = self.registry_change
        if change and change.champion and change.champion[1] in change.new_versions:
            return change.champion[1]
        return None

    @property
    def headline(self) -> str:
        """What the run came to, in a line: its error, or the last line of the last step that said one (an
        exit handler's task, which runs after every run, says how it was reported, not what it came to)."""
        if self.error:
            return self.error
        for t in reversed(self.dag):
            if t.exit:
                continue
            task = self.tasks.get(t.name)
            if task and task.summary:
                return task.summary[-1]
        return ""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RunRecord)


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


def save(record: RunRecord) -> None:
    """Replace the record's run.json atomically: a reader (or a kill) never sees half a record."""
    tmp = os.path.join(record.folder, f".{RECORD}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(msgspec.json.format(_encoder.encode(record), indent=2))
    os.replace(tmp, os.path.join(record.folder, RECORD))


def read(folder: str) -> RunRecord:
    """The record in a run's folder; RecordError (one line naming the file and the fix) if it cannot be trusted."""
    path = os.path.join(folder, RECORD)
    try:
        raw = read_regular(path, MAX_RECORD_BYTES, RecordError, FIX)
    except FileNotFoundError:
        raise RecordError(f"{path} is missing", FIX) from None
    try:
        record = _decoder.decode(raw)
    except msgspec.ValidationError as err:
        old = "missing required field `version`" in str(err)
        why = "was written by an older taxifare" if old else f"does not hold a run record ({err})"
        raise RecordError(f"{path} {why}", FIX) from None
    except msgspec.DecodeError:
        raise RecordError(f"{path} is not valid JSON (damaged or truncated)", FIX) from None
    if record.version != VERSION:
        raise RecordError(f"{path} is a version {record.version} record; this taxifare reads version {VERSION}", FIX)
    if record.run_id != os.path.basename(os.path.normpath(folder)):
        raise RecordError(f"{path} names run {record.run_id!r}, not its folder's", FIX)
    return record.at(folder)


def this_process(token: str) -> ProcessInfo:
    return ProcessInfo(pid=os.getpid(), host=socket.gethostname(), start=_process_start(os.getpid()), token=token)


def _process_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def interrupted(record: RunRecord) -> bool:
    """A record still `running` whose process (on this host) is gone: the run was killed."""
    proc = record.process
    if record.status != Status.RUNNING or proc is None or proc.host != socket.gethostname():
        return False
    if not pid_alive(proc.pid):
        return True
    return proc.start is not None and _process_start(proc.pid) != proc.start  # its pid, reused


def run_folders(runs_root: str) -> list[str]:
    """The runs' folders under a runs root, newest first (other folders, like the registry, are not runs)."""
    try:
        names = os.listdir(runs_root)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [os.path.join(runs_root, n) for n in sorted(names, reverse=True) if RUN_ID.match(n)]


def list_runs(runs_root: str) -> list[RunRecord]:
    """Every run, newest first; one whose record cannot be read is listed as unreadable, saying why."""
    runs = []
    for folder in run_folders(runs_root):
        if not os.path.lexists(os.path.join(folder, RECORD)):
            continue
        try:
            record = read(folder)
        except RecordError as err:
            record = RunRecord(
                version=VERSION, run_id=os.path.basename(folder), status=Status.UNREADABLE, started=0, error=str(err)
            )
            record.at(folder)
        if interrupted(record):
            record.status = Status.INTERRUPTED
            record.error = record.error or f"the run's process ({record.process.pid}) ended before the run did"  # type: ignore[union-attr]
        runs.append(record)
    return runs


def load(runs_root: str, query: str) -> RunRecord:
    """A run's record from what a user typed: the id, `latest`, a unique prefix, or kfp's job name for it."""
    runs = list_runs(runs_root)
    if query == "latest":
        if not runs:
            raise UsageError(f"no runs under {runs_root} yet", "`taxifare run` starts one")
        return runs[0]
    exact = [r for r in runs if r.run_id == query]
    matches = exact or [r for r in runs if r.kfp_job_name == query]
    matches = matches or [r for r in runs if r.run_id.startswith(query)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        found = ", ".join(r.run_id for r in matches[:5])
        raise UsageError(f"{query!r} matches {len(matches)} runs ({found})", "type more of the id")
    recent = ", ".join(r.run_id for r in runs[:5])
    fix = f"recent: {recent}" if recent else "`taxifare run` starts one"
    raise UsageError(f"no run {query!r} under {runs_root}", fix)


def to_dict(record: RunRecord) -> dict[str, Any]:
    """The record as plain JSON values (for `--json` and the console)."""
    out: dict[str, Any] = msgspec.json.decode(_encoder.encode(record))
    return out
