"""The Keras model, its in-graph feature engineering, and the SavedModel export.

Feature engineering lives inside the model so that serving takes the five raw fields
and computes exactly what training computed: no training/serving skew.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from trainer import features as F
from trainer.predict import EXPORT_MARKER, KEYED_SIGNATURE, OUTPUT, SIGNATURE


def engineer(raw: tf.Tensor) -> tf.Tensor:
    """[N, 5] raw fields (FEATURES order) -> [N, 12] engineered features."""
    plon, plat, dlon, dlat, pax = tf.unstack(raw, axis=1)
    px = (plon - F.CENTER_LON) * F.KM_PER_DEG_LON
    py = (plat - F.CENTER_LAT) * F.KM_PER_DEG_LAT
    qx = (dlon - F.CENTER_LON) * F.KM_PER_DEG_LON
    qy = (dlat - F.CENTER_LAT) * F.KM_PER_DEG_LAT
    dx, dy = qx - px, qy - py
    distance = tf.sqrt(dx * dx + dy * dy + 1e-6)
    rot = math.radians(F.GRID_ROTATION_DEG)
    along = tf.abs(dx * math.sin(rot) + dy * math.cos(rot))
    across = tf.abs(dx * math.cos(rot) - dy * math.sin(rot))
    # Absolute positions are left out on purpose: on the lab's data they let the model
    # memorise places and lose ~0.1 RMSE on held-out trips; airport distances keep what matters.
    columns = [dx, dy, distance, tf.math.log1p(distance), along + across]
    for lon, lat in F.AIRPORTS.values():
        ax, ay = (lon - F.CENTER_LON) * F.KM_PER_DEG_LON, (lat - F.CENTER_LAT) * F.KM_PER_DEG_LAT
        # Near an airport matters, far away does not: log distance saturates.
        columns.append(tf.math.log1p(tf.sqrt((px - ax) ** 2 + (py - ay) ** 2)))
        columns.append(tf.math.log1p(tf.sqrt((qx - ax) ** 2 + (qy - ay) ** 2)))
    columns.append(pax)
    return tf.stack(columns, axis=1)


class TripFeatures(keras.layers.Layer):
    def call(self, raw: tf.Tensor) -> tf.Tensor:
        return engineer(raw)


class Saturate(keras.layers.Layer):
    """Clip each engineered feature to the range of the training sample: graph constants, no variables.

    A trip far outside the training data (a 100 km ride to the edge of the NYC box) then reads like
    the longest trips seen in training instead of being extrapolated by the linear path.
    """

    def __init__(self, low: Sequence[float], high: Sequence[float], **kwargs: Any):
        super().__init__(**kwargs)
        self.low, self.high = [float(v) for v in low], [float(v) for v in high]

    def call(self, features: tf.Tensor) -> tf.Tensor:
        return tf.clip_by_value(features, tf.constant(self.low, tf.float32), tf.constant(self.high, tf.float32))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "low": self.low, "high": self.high}


class FareBounds(keras.layers.Layer):
    """At inference (evaluation, export, serving) the fare stays within [the flag fare, the largest
    training fare]: a plausible fare for every instance, whatever the network makes of it."""

    def __init__(self, low: float, high: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.low, self.high = float(low), float(high)

    def call(self, fare: tf.Tensor, training: bool = False) -> tf.Tensor:
        # Unclipped in training: a clipped output has no gradient, and the loss should see the whole error.
        return fare if training else tf.clip_by_value(fare, self.low, self.high)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "low": self.low, "high": self.high}


# What feature_stats.json holds; a file without all of them was written by an older trainer.
STATS_KEYS = ("mean", "variance", "fare_mean", "feature_min", "feature_max", "fare_min", "fare_max")


def feature_stats(
    raw: np.ndarray, fares: np.ndarray, clip_quantile: float = F.FEATURE_CLIP_QUANTILE
) -> dict[str, list[float] | float]:
    """Constants from a training sample, saved so a resumed run reuses them: normalisation (of the
    unclipped features), the saturation range of each feature ([q, 1 - q] quantiles), the fare bounds."""
    engineered = engineer(tf.constant(raw, tf.float32)).numpy().astype(np.float64)
    return {
        "mean": engineered.mean(axis=0).tolist(),
        "variance": np.maximum(engineered.var(axis=0), 1e-6).tolist(),
        "fare_mean": float(np.mean(fares)),
        "feature_min": np.quantile(engineered, clip_quantile, axis=0).tolist(),
        "feature_max": np.quantile(engineered, 1.0 - clip_quantile, axis=0).tolist(),
        "fare_min": float(F.FARE_RANGE[0]),
        "fare_max": float(np.max(fares)),
    }


def build(hidden_units: Sequence[int], stats: dict, seed: int) -> keras.Model:
    """Wide-and-deep: the MLP plus a linear path from the saturated, normalised features to the fare."""
    inputs = keras.Input(shape=(len(F.FEATURES),), dtype="float32", name="raw")
    x = TripFeatures(name="trip_features")(inputs)
    x = Saturate(stats["feature_min"], stats["feature_max"], name="saturate")(x)
    x = keras.layers.Normalization(mean=stats["mean"], variance=stats["variance"], name="normalize")(x)
    hidden = x
    for i, units in enumerate(hidden_units):
        hidden = keras.layers.Dense(
            units,
            activation="relu",
            kernel_initializer=keras.initializers.HeNormal(seed=seed + i),
            name=f"hidden_{i}",
        )(hidden)
    both = keras.layers.Concatenate(name="wide_and_deep")([hidden, x])
    fare = keras.layers.Dense(
        1,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 100),
        bias_initializer=keras.initializers.Constant(stats["fare_mean"]),
        name="fare",
    )(both)
    fare = FareBounds(stats["fare_min"], stats["fare_max"], name="fare_bounds")(fare)
    return keras.Model(inputs, fare, name="taxifare")


def _serving_module(model: keras.Model) -> tf.Module:
    """The exported object: the model's tf.Variables and the two serving signatures.

    The Keras model itself is deliberately not an attribute of the module. A Keras 3 variable
    saves itself as a *copy* of its inner tf.Variable (`Variable`, `Variable_1`, ...), while
    the traced signatures read the inner variables (`fare/kernel`, ...). The Python object
    loader rebinds the signatures to the copies, but TF Serving's session-based loader runs
    the graph as written and restores only the copies, so every prediction failed with
    "Could not find variable fare/kernel". Tracking the inner variables, and nothing else,
    gives one variable per weight that the graph both restores and reads.
    """
    module = tf.Module()
    module.weights = [v.value for v in model.variables]

    # The signatures' inputs are the feature table's fields, by name (TF Serving's request keys).
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name=n) for n in F.FEATURES])
    def serve(*fields):
        return {OUTPUT: tf.reshape(model(tf.stack(fields, axis=1), training=False), [-1])}

    keyed = [
        *(tf.TensorSpec([None], tf.float32, name=n) for n in F.FEATURES),
        tf.TensorSpec([None], tf.string, name=F.KEY),
    ]

    @tf.function(input_signature=keyed)
    def serve_with_key(*fields):
        out = serve(*fields[:-1])
        return {OUTPUT: out[OUTPUT], F.KEY: tf.identity(fields[-1])}

    module.serve, module.serve_with_key = serve, serve_with_key
    return module


def export(model: keras.Model, export_root: str, extra_files: Mapping[str, str] | None = None) -> str:
    """Write a plain SavedModel to <export_root>/<timestamp>/ and return its path.

    `serving_default` takes the five raw fields; `with_key` also takes `key` and echoes it,
    for TF Serving users who batch-predict with keys. No project code is needed to load it.
    Written in place, then marked complete by EXPORT_MARKER (written last): on Vertex AI the
    export root is a Cloud Storage FUSE mount, which refuses to rename directories.
    """
    stamp = int(time.time())
    while tf.io.gfile.exists(os.path.join(export_root, str(stamp))):
        stamp += 1
    path = os.path.join(export_root, str(stamp))
    save(model, path, extra_files)
    return path


def save(model: keras.Model, path: str, extra_files: Mapping[str, str] | None = None) -> None:
    """Write the serving SavedModel straight to `path` (Vertex's AIP_MODEL_DIR wants this), `extra_files`
    beside it (name -> text: the training statistics travel with the model), then its marker."""
    module = _serving_module(model)
    tf.saved_model.save(module, path, signatures={SIGNATURE: module.serve, KEYED_SIGNATURE: module.serve_with_key})
    for name, text in (extra_files or {}).items():
        with tf.io.gfile.GFile(os.path.join(path, name), "w") as f:
            f.write(text)
    with tf.io.gfile.GFile(os.path.join(path, EXPORT_MARKER), "w") as f:
        json.dump({"complete": True, "tensorflow": tf.__version__, "signatures": [SIGNATURE, KEYED_SIGNATURE]}, f)
