"""`--runner container`: each compiled task's own command in the image, as the image's user,
through kfp's DockerRunner on Docker or podman (the engine and its fixes: containers.py)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from taxifare.runs.runner import Runner

# The parameters that name local input files: the image's user must be able to read them.
INPUTS = ("source", "train_source", "valid_source", "test_source", "data", "input")


class ContainerRunner(Runner):
    name = "container"

    def __init__(self, image: str):
        self.image = image

    def describe(self) -> str:
        return f"{self.name} ({self.image})"

    @contextlib.contextmanager
    def prepared(self, run_dir: str, pipeline_root: str, params: dict[str, Any]) -> Iterator[Any]:
        """Local inputs staged inside the mounted pipeline root (their folders may not let the image's
        user in); the engine started if need be; the run's files handed back at the end."""
        from taxifare.runs import containers

        inputs = os.path.join(pipeline_root, "inputs")
        for name in INPUTS:
            if params.get(name):
                params[name] = containers.stage_inputs(params[name], os.path.join(inputs, name))
        with containers.docker_runner(self.image, pipeline_root, params.get("registry", "")) as runner:
            yield runner
