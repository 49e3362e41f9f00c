"""The pipelines, one module each, and what they share: parameters (params.py), the image
(images.py), the training machines (machines.py) and the compiler (compiler.py).

A pipeline module has NAME, DESCRIPTION, `parameters()`, `defaults(target)`, `check(values,
target)` and `build(image, target, ...)`; `get` finds one by the name users type.
"""

from __future__ import annotations

from types import ModuleType

PIPELINES = ("training", "batch")


def get(name: str) -> ModuleType:
    from taxifare.errors import UsageError

    if name == "training":
        from pipeline import training

        return training
    if name == "batch":
        from pipeline import batch

        return batch
    raise UsageError(f"no pipeline {name!r}", f"choose one of {', '.join(PIPELINES)}")
