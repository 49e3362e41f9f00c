"""How a local run's tasks execute, behind one small interface (as kfp/local's task handlers):
subprocess_runner.py (each task a process of this Python) and container_runner.py (each task's
own command in the image, through a container engine)."""

from __future__ import annotations

import abc
import contextlib
from typing import Any


class Runner(abc.ABC):
    name: str

    @abc.abstractmethod
    def prepared(
        self, run_dir: str, pipeline_root: str, params: dict[str, Any]
    ) -> contextlib.AbstractContextManager[Any]:
        """Set up what the run's tasks need (a temp folder, an engine) for the length of the run and
        give kfp's runner config; `params` may be rewritten to what the tasks can read."""

    def describe(self) -> str:
        return self.name

    def warm_up(self, log_path: str) -> None:  # noqa: B027  # optional: most runners have nothing to warm
        """Start what the tasks will need while the run is still being set up (the subprocess runner's
        warm Python); called inside the run's watchdog, `close`d at its end."""

    def ready(self) -> None:  # noqa: B027  # optional, as warm_up
        """Wait for what `warm_up` started, before the first task: its start-up is the run's, not a task's."""

    def close(self) -> None:  # noqa: B027  # optional, as warm_up
        """Stop what `warm_up` started."""
