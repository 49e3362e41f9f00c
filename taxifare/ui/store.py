"""What the console reads: the run records under a runs root and a local registry, as they are now.

The console keeps no state of its own: every request reads the records and the registry again
(a run started from the command line shows up at the next poll). A run is found by its exact id
only, and only in a folder that really is under the runs root (a run folder that is a link
elsewhere is not a run here). Everything read is untrusted: records are validated by
taxifare.runs.records, registry files by taxifare.registry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from taxifare.errors import RecordError, RegistryError
from taxifare.registry.local import LocalRegistry, Version
from taxifare.runs import records
from taxifare.runs.records import RunRecord
from taxifare.runs.status import Status
from taxifare.ui import files
from trainer import events, progress

MAX_LOG_SCAN = 64 << 20  # the training curve is read from at most this much of a task's log


class NotFound(LookupError):
    """Nothing by that name (the app's 404, with this message)."""


class BadRequest(ValueError):
    """A request the console cannot answer as asked (the app's 400, with this message)."""


@dataclass(frozen=True)
class Sources:
    runs_root: str
    registry_root: str

    def _is_run_folder(self, folder: str) -> bool:
        """A real folder directly under the runs root (not a link to somewhere else)."""
        try:
            return not os.path.islink(folder) and os.path.dirname(os.path.realpath(folder)) == os.path.realpath(
                self.runs_root
            )
        except (OSError, ValueError):
            return False

    def runs(self) -> list[RunRecord]:
        """Every run, newest first (unreadable ones too, saying why)."""
        return [r for r in records.list_runs(self.runs_root) if self._is_run_folder(r.folder)]

    def run(self, run_id: str) -> RunRecord:
        if not isinstance(run_id, str) or not records.RUN_ID.match(run_id):
            raise NotFound(f"no run {run_id[:80]!r}: a run id looks like 20250101-120000-a1b2c3")
        folder = os.path.join(self.runs_root, run_id)
        if not self._is_run_folder(folder) or not os.path.isdir(folder):
            raise NotFound(f"no run {run_id} under {self.runs_root}")
        try:
            record = records.read(folder)
        except RecordError as err:
            record = RunRecord(version=records.VERSION, run_id=run_id, status=Status.UNREADABLE, started=0,
                               error=str(err)).at(folder)  # fmt: skip
        if records.interrupted(record):
            record.status = Status.INTERRUPTED
            record.error = record.error or "the run's process ended before the run did"
        return record

    def registry(self) -> LocalRegistry:
        return LocalRegistry(self.registry_root)

    def versions(self) -> tuple[list[Version], str | None, list[str]]:
        """(every version, the champion's name, what could not be read), never raising."""
        reg, problems = self.registry(), []
        try:
            versions = reg.versions()
        except RegistryError as err:
            return [], None, [str(err)]
        versions = [v if not os.path.islink(v.path) else Version(v.name, v.path, problem=f"{v.path} is a link")
                    for v in versions]  # fmt: skip
        try:
            champion = reg.aliases().get("champion")
        except RegistryError as err:
            champion, problems = None, [str(err)]
        return versions, champion, problems


def log_path(record: RunRecord, task: str | None) -> str | None:
    """The log of one of the run's tasks (or the run's own, for None), if it is a file inside its folder."""
    if task is not None and task not in record.tasks and task not in {t.name for t in record.dag}:
        return None
    relative = "pipeline.log" if task is None else f"tasks/{task}.log"
    return files.inside(record.folder, relative)


def training_curve(record: RunRecord) -> list[progress.Progress]:
    """The training progress events in the logs of the run's tasks (the train step's, in this
    pipeline): each step's loss, train RMSE and eval RMSE, in order."""
    names = [t.name for t in record.dag] or list(record.tasks)
    with_logs = [n for n in names if any(isinstance(o, dict) and "log_dir" in o
                                         for o in record.task(n).outputs.values())]  # fmt: skip
    for name in with_logs + [n for n in names if n not in with_logs]:
        path = log_path(record, name)
        opened = files.open_regular(path) if path else None
        if opened is None:
            continue
        data = opened.read(0, MAX_LOG_SCAN)
        points = []
        for line in data.decode("utf-8", "replace").splitlines():
            if events.MARK in line and (point := progress.parse(line)) is not None:
                points.append(point)
        if points:
            return points
    return []
