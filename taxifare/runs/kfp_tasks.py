"""The one adapter to kfp's local runner: when each task starts and ends, with the status and
outputs kfp returns for it, and which task printed each line of output.

kfp 2.17's local runner calls `task_dispatcher.run_single_task_implementation` for every
container task and returns its (outputs, Status) to its orchestrator; it offers no hook, so
`observed` wraps that module attribute (looked up at call time) for the length of a run. Task
state therefore comes from kfp's own return values, not from its log text. The only text read
here is a failed task's own output: the last exception line Python printed is its reason.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXCEPTION = re.compile(r"^\s*((?:\w+\.)*\w*(?:Error|Exception|Interrupt|Exit)): (.+)$")
OnStart = Callable[[str, str], None]  # (task name, kfp's pipeline job name)
OnEnd = Callable[[str, bool, dict[str, Any]], None]  # (task name, succeeded, outputs)


def task_name(component_name: str) -> str:
    """kfp's task name for a component ("comp-train-model" -> "train-model"), as its runner names it."""
    from kfp.local import executor_input_utils

    return str(executor_input_utils.get_local_task_resource_name(component_name))


def outputs_of(outputs: dict[str, Any]) -> dict[str, Any]:
    """kfp's task outputs as plain values: parameters as they are, artifacts as {"uri", **metadata}."""
    plain: dict[str, Any] = {}
    for name, value in (outputs or {}).items():
        items = value if isinstance(value, list) else [value]
        arts = [{"uri": v.uri, **dict(v.metadata)} for v in items if hasattr(v, "uri") and hasattr(v, "metadata")]
        plain[name] = (arts[0] if len(arts) == 1 else arts) if arts else value
    return plain


@contextlib.contextmanager
def observed(on_start: OnStart, on_end: OnEnd) -> Iterator[None]:
    """Within this block, kfp's local runner reports each task's start and end to the callbacks."""
    from kfp.local import status, task_dispatcher

    original = task_dispatcher.run_single_task_implementation

    def run_task(*args: Any, **kwargs: Any) -> tuple[dict[str, Any], Any]:
        name = task_name(kwargs["component_name"])
        on_start(name, str(kwargs.get("pipeline_resource_name", "")))
        outputs, task_status = original(*args, **kwargs)
        on_end(name, task_status == status.Status.SUCCESS, outputs_of(outputs))
        return outputs, task_status

    task_dispatcher.run_single_task_implementation = run_task
    try:
        yield
    finally:
        task_dispatcher.run_single_task_implementation = original


@contextlib.contextmanager
def subprocess_handler(handler: type) -> Iterator[None]:
    """Within this block, kfp's SubprocessRunner runs tasks with `handler` (a SubprocessTaskHandler
    subclass): the runner's handler class is a module attribute its dispatcher looks up per task."""
    from kfp.local import subprocess_task_handler

    original = subprocess_task_handler.SubprocessTaskHandler
    subprocess_task_handler.SubprocessTaskHandler = handler
    try:
        yield
    finally:
        subprocess_task_handler.SubprocessTaskHandler = original


def exception_line(text: str) -> str | None:
    """ "KeyError: 'x'" from a line a task printed that ends a Python traceback, else None."""
    found = _EXCEPTION.match(ANSI.sub("", text))
    if not found:
        return None
    return f"{found.group(1).rsplit('.', 1)[-1]}: {found.group(2).strip()}"
