"""Compile a pipeline to YAML: no cloud account, no environment reads."""

from __future__ import annotations

from kfp import compiler

from pipeline import get, images
from pipeline.machines import TrainingMachines


def compile_pipeline(
    out: str,
    target: str = "vertex",
    image: str = "",
    machines: TrainingMachines | None = None,
    registry_pvc: str = "",
    pipeline: str = "training",
    gpu_image: str = "",
    **options: bool,
) -> str:
    """Write the pipeline spec; the committed pipeline.yaml is the default (training, vertex) one.

    `image` defaults to the target's (pipeline/images.py: the local build, or vertex's placeholder);
    `options` go to the pipeline's build (the training pipeline's `webhook`, `email`)."""
    extra = {"gpu_image": gpu_image, **options} if gpu_image else dict(options)
    dag = get(pipeline).build(image=image or images.default(target), target=target, machines=machines,
                              registry_pvc=registry_pvc, **extra)  # fmt: skip
    compiler.Compiler().compile(dag, package_path=out)
    return out
