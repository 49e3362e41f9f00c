"""Compile the DAG to YAML: no cloud account, no environment reads."""

from __future__ import annotations

from kfp import compiler

from pipeline import pipeline
from pipeline.images import DEFAULT_IMAGE


def compile_pipeline(out: str, target: str = "local", image: str = DEFAULT_IMAGE) -> str:
    compiler.Compiler().compile(pipeline.build(image=image, target=target), package_path=out)
    return out
