"""The Keras model, its in-graph feature engineering, and the SavedModel export.

Feature engineering lives inside the model so that serving takes the five raw fields
and computes exactly what training computed: no training/serving skew.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence

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


def feature_stats(raw: np.ndarray, fares: np.ndarray) -> dict[str, list[float] | float]:
    """Normalisation constants from a training sample, saved so a resumed run reuses them."""
    engineered = engineer(tf.constant(raw, tf.float32)).numpy().astype(np.float64)
    return {
        "mean": engineered.mean(axis=0).tolist(),
        "variance": np.maximum(engineered.var(axis=0), 1e-6).tolist(),
        "fare_mean": float(np.mean(fares)),
    }


def build(hidden_units: Sequence[int], stats: dict, seed: int) -> keras.Model:
    """Wide-and-deep: the MLP plus a linear path from the normalised features to the fare."""
    inputs = keras.Input(shape=(len(F.FEATURES),), dtype="float32", name="raw")
    x = TripFeatures(name="trip_features")(inputs)
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

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name=n) for n in F.FEATURES])
    def serve(pickuplon, pickuplat, dropofflon, dropofflat, passengers):
        raw = tf.stack([pickuplon, pickuplat, dropofflon, dropofflat, passengers], axis=1)
        return {OUTPUT: tf.reshape(model(raw, training=False), [-1])}

    @tf.function(
        input_signature=[
            *(tf.TensorSpec([None], tf.float32, name=n) for n in F.FEATURES),
            tf.TensorSpec([None], tf.string, name=F.KEY),
        ]
    )
    def serve_with_key(pickuplon, pickuplat, dropofflon, dropofflat, passengers, key):
        out = serve(pickuplon, pickuplat, dropofflon, dropofflat, passengers)
        return {OUTPUT: out[OUTPUT], F.KEY: tf.identity(key)}

    module.serve, module.serve_with_key = serve, serve_with_key
    return module


def export(model: keras.Model, export_root: str) -> str:
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
    save(model, path)
    return path


def save(model: keras.Model, path: str) -> None:
    """Write the serving SavedModel straight to `path` (Vertex's AIP_MODEL_DIR wants this), then its marker."""
    module = _serving_module(model)
    tf.saved_model.save(module, path, signatures={SIGNATURE: module.serve, KEYED_SIGNATURE: module.serve_with_key})
    with tf.io.gfile.GFile(os.path.join(path, EXPORT_MARKER), "w") as f:
        json.dump({"complete": True, "tensorflow": tf.__version__, "signatures": [SIGNATURE, KEYED_SIGNATURE]}, f)
