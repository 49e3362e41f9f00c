"""Compile a pipeline to YAML: no cloud account, no environment reads."""

from __future__ import annotations

from kfp import compiler

from pipeline import get
from pipeline.images import DEFAULT_IMAGE
from pipeline.machines import TrainingMachines


def compile_pipeline(
    out: str,
    target: str = "vertex",
    image: str = DEFAULT_IMAGE,
    machines: TrainingMachines | None = None,
    registry_pvc: str = "",
    pipeline: str = "training",
) -> str:
    """Write the pipeline spec; the committed pipeline.yaml is the default (training, vertex) one."""
    dag = get(pipeline).build(image=image, target=target, machines=machines, registry_pvc=registry_pvc)
    compiler.Compiler().compile(dag, package_path=out)
    return out
