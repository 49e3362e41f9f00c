"""The model a server answers with: fetched (gs:// too), loaded, checked to predict, described."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainer.features import CENTER_LAT, CENTER_LON
from trainer.predict import Predictor

log = logging.getLogger("taxifare.serve")

MODEL_NAME = "taxifare"


@dataclass
class LoadedModel:
    version: str
    model_dir: str
    predict: Callable[[np.ndarray], np.ndarray]
    signature: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    loaded_at: str = ""

    @property
    def deployed_model_id(self) -> str:
        return f"{MODEL_NAME}-{self.version}"

    @property
    def ids(self) -> tuple[str, str]:
        """(deployedModelId, modelVersionId), as answers carry them."""
        return self.deployed_model_id, self.version

    def describe(self) -> dict[str, Any]:
        return {
            "model": MODEL_NAME,
            "modelVersionId": self.version,
            "deployedModelId": self.deployed_model_id,
            "modelDir": self.model_dir,
            **self.source,
            "loadedAt": self.loaded_at,
            "metrics": _metrics(self.metadata),
            "metadata": self.metadata,
            "signature": self.signature,
        }


def _metrics(metadata: dict[str, Any]) -> dict[str, Any]:
    nested = metadata.get("metrics")
    if isinstance(nested, dict):
        return nested
    return {k: v for k, v in metadata.items() if k in ("rmse", "mae", "eval_rows", "steps")}


def configure_tensorflow(threads: int) -> None:
    """Small batches run fastest on one TF thread each, leaving the other core to HTTP."""
    if threads <= 0:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already initialised in this process: keep its threads
        log.debug("TensorFlow threads already fixed; --tf-threads ignored")


@contextlib.contextmanager
def fetched(model_uri: str) -> Iterator[str]:
    """A local directory holding the model while the block runs: the path itself, or a copy of a
    gs:// prefix, removed after (a loaded SavedModel keeps nothing open; each start or reload
    would otherwise leave a copy behind)."""
    if not model_uri.startswith("gs://"):
        yield model_uri
        return
    from trainer import gcs

    with tempfile.TemporaryDirectory(prefix="taxifare-model-") as local:
        if not gcs.download_dir(model_uri, local):
            raise FileNotFoundError(f"no files under {model_uri}: is it the model's artifact folder?")
        yield local


def load_model(
    model_dir: str, version: str | None = None, metadata: dict[str, Any] | None = None, source: dict | None = None
) -> LoadedModel:
    """Load a SavedModel's serving signature and check it predicts before anyone relies on it.

    `model_dir` may be a gs:// prefix (Vertex AI's AIP_STORAGE_URI): it is downloaded first.
    """
    if version is None and model_dir.startswith("gs://"):
        version = model_dir.rstrip("/").rsplit("/", 1)[-1]
    with fetched(model_dir) as local:
        predictor = Predictor(local)
        path = predictor.model_dir
        if local != model_dir:  # where it came from, as the user named it (not the temporary copy)
            inside = os.path.relpath(path, local)
            path = model_dir.rstrip("/") + ("" if inside == "." else "/" + inside)
        probe = np.array([[CENTER_LON, CENTER_LAT, CENTER_LON + 0.02, CENTER_LAT + 0.02, 1.0]], np.float32)
        fares = predictor.predict(probe)
        if fares.shape != (1,) or not np.isfinite(fares).all():
            raise ValueError(f"{path}: the signature should give one finite fare per instance, gave {fares!r}")
        if metadata is None:
            metadata = _trainer_metrics(local, predictor.model_dir)
    return LoadedModel(
        version=version or os.path.basename(os.path.normpath(path)),
        model_dir=path,
        predict=predictor.predict,
        signature=predictor.signature,
        metadata=metadata,
        source=source or {"source": "model_dir"},
        loaded_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def _trainer_metrics(given: str, export_dir: str) -> dict[str, Any]:
    """metrics.json of the trainer run that wrote this export (<output_dir>/export/exporter/<ts>)."""
    for folder in (given, os.path.join(export_dir, "..", "..", "..")):
        path = os.path.join(folder, "metrics.json")
        if os.path.isfile(path):
            try:
                with open(path) as f:
                    metrics = json.load(f)
                return {k: metrics[k] for k in ("rmse", "mae", "eval_rows", "steps") if k in metrics}
            except (OSError, ValueError, TypeError):
                return {}
    return {}
