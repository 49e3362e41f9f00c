"""Load an exported SavedModel and predict fares for JSON instances.

Instance checking has no TensorFlow import: the prediction server uses it to answer bad
requests without touching the model.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from taxifare.errors import InstanceError, NotServable, UsageError
from trainer.features import FEATURES, KEY

ALLOWED = frozenset((*FEATURES, KEY))
# The export's contract (trainer/model.py writes it; serving, TF Serving and evaluate read it).
SIGNATURE = "serving_default"
KEYED_SIGNATURE = "with_key"
OUTPUT = "fare_amount"
# In every export folder, written after the SavedModel: readers take only folders that have it.
EXPORT_MARKER = "taxifare-export.json"
FLOAT32_MAX = 3.4028234663852886e38  # the model computes in float32


def check_instance(instance: Any, index: int, where: str = "instance") -> tuple[list[float], str | None]:
    """Validate one instance object; return its five values in FEATURES order and its key."""
    if not isinstance(instance, dict):
        raise InstanceError(index, None, f"expected a JSON object with fields {', '.join(FEATURES)}", where)
    extra = sorted(set(instance) - ALLOWED)
    if extra:
        raise InstanceError(index, extra[0], f"unknown field; allowed: {', '.join(sorted(ALLOWED))}", where)
    values = []
    for name in FEATURES:
        if name not in instance:
            raise InstanceError(index, name, "missing", where)
        value = instance[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InstanceError(index, name, f"not a number: {json.dumps(value)}", where)
        try:
            number = float(value)
        except OverflowError:
            number = FLOAT32_MAX * 2
        if not math.isfinite(number):
            raise InstanceError(index, name, "must be a finite number (no NaN or Infinity)", where)
        if abs(number) > FLOAT32_MAX:
            raise InstanceError(index, name, "too large for float32, the precision the model computes in", where)
        values.append(number)
    key = instance.get(KEY)
    if key is not None and not isinstance(key, str | int):
        raise InstanceError(index, KEY, "must be a string or an integer", where)
    return values, None if key is None else str(key)


def check_instances(
    instances: Sequence[Any], where: str = "instance", first: int = 0
) -> tuple[np.ndarray, list[str | None]]:
    rows, keys = [], []
    for i, instance in enumerate(instances):
        values, key = check_instance(instance, i + first, where)
        rows.append(values)
        keys.append(key)
    return np.asarray(rows, dtype=np.float32).reshape(-1, len(FEATURES)), keys


def read_json_lines(lines: Iterable[str]) -> list[Any]:
    """Parse a file of one JSON instance per line (blank lines skipped); line numbers from 1."""
    instances = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            instance = json.loads(line, parse_constant=_reject_constant)
        except ValueError as err:
            raise InstanceError(number, None, f"not valid JSON ({err})", "line") from err
        check_instance(instance, number, "line")
        instances.append(instance)
    if not instances:
        raise InstanceError(0, None, "no instances: the file is empty", "line")
    return instances


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def resolve_model_dir(path: str) -> str:
    """An export directory, or an --output_dir / export root (then its newest export)."""
    if _is_saved_model(path):
        return path
    for root in (os.path.join(path, "export", "exporter"), path):
        if os.path.isdir(root):
            # Only complete exports: the trainer writes the marker after the SavedModel.
            stamps = sorted(
                (d for d in os.listdir(root) if d.isdigit() and os.path.isfile(os.path.join(root, d, EXPORT_MARKER))),
                key=int,
            )
            if stamps:
                return os.path.join(root, stamps[-1])
    raise UsageError(f"no SavedModel in {path!r}", "give an export directory or a trainer --output_dir")


def _is_saved_model(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


class Predictor:
    """A loaded SavedModel's serving signature, called with a [N, 5] float32 array."""

    def __init__(self, model_dir: str):
        import tensorflow as tf

        self.model_dir = resolve_model_dir(model_dir)
        self._loaded = tf.saved_model.load(self.model_dir)
        if SIGNATURE not in self._loaded.signatures:
            raise NotServable(f"{self.model_dir}: no {SIGNATURE!r} signature")
        self._fn = self._loaded.signatures[SIGNATURE]
        self._output = OUTPUT
        inputs = self._fn.structured_input_signature[1]
        missing = [n for n in FEATURES if n not in inputs]
        if missing:
            raise NotServable(f"{self.model_dir}: signature {SIGNATURE!r} lacks inputs {missing}")
        self.signature = {
            "name": SIGNATURE,
            "inputs": {n: _spec(s) for n, s in sorted(inputs.items())},
            "outputs": {n: _spec(s) for n, s in sorted(self._fn.structured_outputs.items())},
        }

    def predict(self, raw: np.ndarray) -> np.ndarray:
        if len(raw) == 0:
            return np.zeros(0, np.float32)
        columns = np.ascontiguousarray(np.asarray(raw, np.float32).T)
        return self._fn(**{name: columns[i] for i, name in enumerate(FEATURES)})[self._output].numpy()

    def predict_instances(self, instances: Sequence[Any]) -> list[dict[str, Any]]:
        raw, keys = check_instances(instances)
        return format_predictions(self.predict(raw), keys)


def _spec(spec: Any) -> dict[str, Any]:
    return {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}


def format_predictions(fares: np.ndarray, keys: Sequence[str | None]) -> list[dict[str, Any]]:
    out = []
    for fare, key in zip(fares.tolist(), keys, strict=True):
        item: dict[str, Any] = {"fare_amount": round(float(fare), 4)}
        if key is not None:
            item[KEY] = key
        out.append(item)
    return out
