"""The states of a run and of its tasks (as kfp's own kfp/local/status.py, with what a run record
needs besides success and failure)."""

from __future__ import annotations

import enum


@enum.unique
class Status(enum.StrEnum):
    PENDING = "pending"  # a task not started yet
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # a task whose condition was false, or that never started in a failed run
    INTERRUPTED = "interrupted"  # a run whose process died before it ended (killed, crashed)
    UNREADABLE = "unreadable"  # a run whose record cannot be read

    @property
    def done(self) -> bool:
        return self not in (Status.PENDING, Status.RUNNING)


TASK_STATES = (Status.PENDING, Status.RUNNING, Status.SUCCEEDED, Status.FAILED, Status.SKIPPED)
RUN_STATES = (Status.RUNNING, Status.SUCCEEDED, Status.FAILED, Status.INTERRUPTED, Status.UNREADABLE)
