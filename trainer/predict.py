"""Load an exported SavedModel and predict fares for JSON instances.

Instance checking has no TensorFlow import: the prediction server uses it to answer bad
requests without touching the model. An instance is usable when its five fields are numbers
inside the schema's ranges (`trainer.features`: the NYC area, 1..6 passengers), the ranges
the model was trained on; outside them it would answer nonsense (or Infinity), so it is refused.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from taxifare.errors import InstanceError, NotServable, UsageError
from trainer.features import FEATURES, KEY, RANGES, SCHEMA

ALLOWED = frozenset((*FEATURES, KEY))
# The export's contract (trainer/model.py writes it; serving, TF Serving and evaluate read it).
SIGNATURE = "serving_default"
KEYED_SIGNATURE = "with_key"
OUTPUT = "fare_amount"
# In every export folder, written after the SavedModel: readers take only folders that have it.
EXPORT_MARKER = "taxifare-export.json"
# Each feature's inclusive range, in FEATURES order (the rows the trainer keeps; features.validate).
# A feature without a range still takes finite numbers only.
BOUNDS = [RANGES.get(n, (-sys.float_info.max, sys.float_info.max)) for n in FEATURES]
_LOW = np.array([low for low, _ in BOUNDS])
_HIGH = np.array([high for _, high in BOUNDS])
_WHOLE = np.array([SCHEMA.field(n).whole for n in FEATURES])
# Python refuses to turn integers of more digits into numbers; JSON allows them (they are huge).
_MAX_INT_DIGITS = 4000
BATCH_LINES = 10_000  # `taxifare predict` reads, predicts and prints this many instances at a time


value_problem = SCHEMA.value_problem  # why a feature's value cannot be predicted on, or None


def key_problem(key: Any) -> str | None:
    if key is None:
        return None
    if isinstance(key, bool) or not isinstance(key, str | int):
        return "must be a string or an integer"
    if isinstance(key, str):
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode (invalid UTF-8, or a lone surrogate such as \\ud800)"
    return None


def check_instance(instance: Any, index: int, where: str = "instance") -> tuple[list[float], str | None]:
    """Validate one instance object; return its five values in FEATURES order and its key."""
    if not isinstance(instance, dict):
        raise InstanceError(index, None, f"expected a JSON object with fields {', '.join(FEATURES)}", where)
    extra = sorted(set(instance) - ALLOWED, key=ascii)
    if extra:
        raise InstanceError(
            index, ascii(extra[0])[1:-1], f"unknown field; allowed: {', '.join(sorted(ALLOWED))}", where
        )
    values = []
    for name in FEATURES:
        if name not in instance:
            raise InstanceError(index, name, "missing", where)
        value = instance[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InstanceError(index, name, f"not a number: {_show(value)}", where)
        try:
            number = float(value)
        except OverflowError:
            number = math.inf if value > 0 else -math.inf
        problem = value_problem(name, number)
        if problem:
            raise InstanceError(index, name, problem, where)
        values.append(number)
    key = instance.get(KEY)
    problem = key_problem(key)
    if problem:
        raise InstanceError(index, KEY, problem, where)
    return values, None if key is None else str(key)


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def check_rows(rows: np.ndarray, first: int = 0, where: str = "instance") -> None:
    """The same rule as `check_instance`, on [N, 5] float64 rows at once (the server's fast path)."""
    with np.errstate(invalid="ignore"):
        bad = ~((rows >= _LOW) & (rows <= _HIGH))
        bad[:, _WHOLE] |= rows[:, _WHOLE] != np.round(rows[:, _WHOLE])
    if bad.any():
        i, j = np.argwhere(bad)[0]
        name = FEATURES[j]
        raise InstanceError(first + int(i), name, value_problem(name, float(rows[i, j])) or "out of range", where)


def check_instances(
    instances: Sequence[Any], where: str = "instance", first: int = 0
) -> tuple[np.ndarray, list[str | None]]:
    rows, keys = [], []
    for i, instance in enumerate(instances):
        values, key = check_instance(instance, i + first, where)
        rows.append(values)
        keys.append(key)
    return np.asarray(rows, dtype=np.float32).reshape(-1, len(FEATURES)), keys


def loads(text: str | bytes) -> Any:
    """json.loads reading integers of any length (huge ones as inf); NaN and Infinity are read, then refused
    by `check_instance`, which names their instance and field."""
    return json.loads(text, parse_int=_parse_int)


def _parse_int(text: str) -> int | float:
    return int(text) if len(text) <= _MAX_INT_DIGITS else float(text)


def iter_json_lines(lines: Iterable[str], batch: int = BATCH_LINES) -> Iterator[list[Any]]:
    """Checked instances of a file of one JSON instance per line, `batch` at a time (blank lines skipped).

    Memory stays flat however long the file; a bad line raises InstanceError naming it (from 1).
    """
    instances: list[Any] = []
    seen = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            instance = loads(line)
        except (ValueError, RecursionError) as err:
            raise InstanceError(number, None, f"not valid JSON ({err})", "line") from err
        check_instance(instance, number, "line")
        instances.append(instance)
        if len(instances) >= batch:
            yield instances
            instances, seen = [], True
    if instances:
        yield instances
    elif not seen:
        raise InstanceError(0, None, "no instances: the file is empty", "line")


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
        self._rows = self._rows_function(tf)

    def _rows_function(self, tf: Any) -> Any:
        """The signature behind one [N, 5] input, as a concrete function: calling the signature
        itself binds and converts five keyword arrays per call, which costs more than the model
        at one row (about 900 against 480 µs a call here); the same graph, the same fares."""
        signature, output = self._fn, self._output

        def rows(raw: Any) -> Any:
            return signature(**{name: raw[:, i] for i, name in enumerate(FEATURES)})[output]

        spec = tf.TensorSpec([None, len(FEATURES)], tf.float32)
        return tf.function(rows, input_signature=[spec]).get_concrete_function()

    def predict(self, raw: np.ndarray) -> np.ndarray:
        if len(raw) == 0:
            return np.zeros(0, np.float32)
        return self._rows(np.ascontiguousarray(raw, np.float32)).numpy()

    def predict_instances(self, instances: Sequence[Any]) -> list[dict[str, Any]]:
        raw, keys = check_instances(instances)
        fares = self.predict(raw)
        check_fares(fares, self.model_dir)
        return format_predictions(fares, keys)


def _spec(spec: Any) -> dict[str, Any]:
    return {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}


def check_fares(fares: np.ndarray, where: str) -> None:
    """A model's answers must be finite numbers; NotServable names the first that is not."""
    finite = np.isfinite(fares)
    if not finite.all():
        first = int(np.argmin(finite))
        raise NotServable(f"{where} gave a fare of {fares[first]} for instance {first}: the model is broken")


def format_predictions(fares: np.ndarray, keys: Sequence[str | None]) -> list[dict[str, Any]]:
    check_fares(np.asarray(fares), "the model")
    out = []
    for fare, key in zip(fares.tolist(), keys, strict=True):
        item: dict[str, Any] = {"fare_amount": round(float(fare), 4)}
        if key is not None:
            item[KEY] = key
        out.append(item)
    return out
