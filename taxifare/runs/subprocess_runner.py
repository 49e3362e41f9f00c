"""The default runner: each task a process of this Python (kfp's SubprocessRunner)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import Any

from taxifare.runs import environ
from taxifare.runs.runner import Runner


class SubprocessRunner(Runner):
    name = "subprocess"

    @contextlib.contextmanager
    def prepared(self, run_dir: str, pipeline_root: str, params: dict[str, Any]) -> Iterator[Any]:
        """Each task's temporary folders (kfp's `mktemp -d` per task) go under <run_dir>/tmp, removed
        at the end, and so never outlive a run (a killed run's are removed by the next)."""
        from kfp import local

        tmp = os.path.join(run_dir, "tmp")
        os.makedirs(tmp, exist_ok=True)
        try:
            with environ.overridden(TMPDIR=tmp):
                yield local.SubprocessRunner(use_venv=False)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
