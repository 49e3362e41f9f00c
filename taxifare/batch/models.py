"""Which model scores a batch: the registry's champion (the default), one of its versions, or an export
folder; from the local registry, or from Vertex AI Model Registry for runs there."""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Any

from taxifare.errors import RegistryError, UsageError

CHAMPION = "champion"


@dataclasses.dataclass(frozen=True)
class Chosen:
    """A model to score with and where it came from."""

    model_dir: str  # the SavedModel's folder: a local path, or gs:// for a Vertex AI model
    name: str  # how summaries name it, e.g. "v0003 (champion of /runs/registry)"
    version: str = ""  # the registry version ("" for an export folder)
    resource: str = ""  # Vertex AI: projects/P/locations/R/models/ID@VERSION
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"model_dir": self.model_dir, "name": self.name, "version": self.version, "resource": self.resource}


def _is_version(text: str) -> bool:
    from taxifare.registry.local import VERSION_NAME

    return bool(VERSION_NAME.match(text))


def local(model: str = "", registry: str = "") -> Chosen:
    """`model`: "" (the champion), a version (v0003) of `registry`, or an export folder (or a trainer
    --output_dir: its newest export)."""
    if model and not _is_version(model):
        from trainer.predict import resolve_model_dir

        folder = resolve_model_dir(os.path.abspath(os.path.expanduser(model)))
        return Chosen(folder, f"the export {folder}")
    if not registry:
        raise UsageError("no registry to take the model from", "give --registry DIR, or --model FOLDER")
    from taxifare.registry.local import LocalRegistry

    reg = LocalRegistry(registry)
    if model:
        version = reg.get(model)
        return Chosen(version.model_dir, f"{version.name} of {reg.root}", version.name, metadata=version.metadata)
    champion = reg.champion()
    if champion is None:
        raise RegistryError(
            f"no champion in the registry {reg.root}",
            "train and deploy one (`taxifare run`), or give --model VERSION or --model FOLDER",
        )
    return Chosen(champion.model_dir, f"{champion.name} (champion of {reg.root})", champion.name,
                  metadata=champion.metadata)  # fmt: skip


def vertex(model: str, project: str, region: str, model_id: str = "", api_endpoint: str = "") -> Chosen:
    """On Vertex AI: the champion of the parent model (default `taxifare`), a version id of it, or a
    gs:// export folder."""
    if model.startswith("gs://"):
        return Chosen(model.rstrip("/"), f"the export {model}")
    from taxifare.registry import vertex as vertex_registry

    reg = vertex_registry.VertexRegistry(project, region, model_id, api_endpoint)
    if not model:
        champion = reg.champion()
        if champion is None:
            raise RegistryError(f"{reg.model_name} has no {CHAMPION} version", "deploy one, or give model=VERSION_ID")
        return Chosen(champion.artifact_uri, f"{champion.model} (champion)", champion.version_id, champion.model)
    from google.api_core import exceptions

    name = f"{reg.model_name}@{model}"
    try:
        found = reg.models.get_model(name=name)
    except exceptions.NotFound:
        raise RegistryError(f"no model version {name}", "see the versions in Vertex AI Model Registry") from None
    return Chosen(found.artifact_uri, name, found.version_id, f"{reg.model_name}@{found.version_id}")


def fetch(chosen: Chosen, dest: str) -> str:
    """Copy the model's folder (SavedModel and training statistics) to the local folder `dest`."""
    if chosen.model_dir.startswith("gs://"):
        from trainer import gcs

        if not gcs.download_dir(chosen.model_dir, dest):
            raise RegistryError(f"{chosen.name}: nothing is stored under {chosen.model_dir}")
        return dest
    shutil.copytree(chosen.model_dir, dest, dirs_exist_ok=True)
    return dest
