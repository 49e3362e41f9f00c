"""Batch step 1, resolve_model: the model that scores, copied into the run (the work: taxifare/batch/models.py)."""

from typing import TYPE_CHECKING

from kfp import dsl
from kfp.dsl import Model, Output

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent


def resolve_model(model: str, registry: str, project: str, region: str, registry_kind: str, chosen: Output[Model]):
    """Choose the model (the registry's champion, a version, or an export folder) and keep a copy with the run."""
    from taxifare.batch import models
    from trainer import events

    if registry_kind == "vertex":
        picked = models.vertex(model, project, region, registry)
    else:
        picked = models.local(model, registry)
    models.fetch(picked, chosen.path)
    chosen.metadata.update(picked.describe())
    events.summary(f"model: {picked.name}")


def component(image: str) -> "PythonComponent":
    return dsl.component(resolve_model, base_image=image, install_kfp_package=False)
