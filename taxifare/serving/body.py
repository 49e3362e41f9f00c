"""Request bodies in, answers out, without TensorFlow.

msgspec decodes the common case straight into rows; whatever it refuses goes to the slow path,
`trainer.predict.check_instance`, which says which instance and field is wrong and why (the
same rule as `taxifare predict`: finite numbers inside the schema's ranges, keys that are
strings or integers of valid Unicode). Bodies over SYNC_BODY_BYTES are checked SLICE_INSTANCES
instances at a time, the event loop free for other clients in between.
"""

from __future__ import annotations

import asyncio
import math
import re
from itertools import chain
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np

from taxifare.errors import InstanceError
from taxifare.serving.messages import HttpError
from trainer.features import FEATURES, KEY, SCHEMA
from trainer.predict import BOUNDS, check_fares, check_instances, check_rows, loads

SYNC_BODY_BYTES = 1 << 20  # about 12k instances: a few ms to check in one go
SLICE_INSTANCES = 4096
SMALL = 32  # instances checked in Python rather than numpy
EMPTY = '"instances" is empty: send at least one instance'


# The fast path's view of one instance, from the feature table: each feature a float, the key a
# string or an integer (or absent), nothing else.
_Instance: Any = SCHEMA.request_struct()
_Request: Any = msgspec.defstruct(
    "Request",
    [("instances", list[_Instance]), ("parameters", msgspec.Raw, msgspec.Raw())],
    forbid_unknown_fields=True,
)


class _LazyRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A big body's instances, each still JSON text: checked a slice at a time."""

    instances: list[msgspec.Raw]
    parameters: msgspec.Raw = msgspec.Raw()


class _Prediction(msgspec.Struct, omit_defaults=True):
    fare_amount: float
    key: str | None = None


class _Response(msgspec.Struct):
    predictions: list[_Prediction]
    deployedModelId: str
    model: str
    modelVersionId: str


class _ContainerResponse(msgspec.Struct):
    """Inside Vertex AI the container answers predictions only; Vertex adds the model ids itself."""

    predictions: list[_Prediction]


_decoder = msgspec.json.Decoder(_Request)
_lazy_decoder = msgspec.json.Decoder(_LazyRequest)
_slice_decoder = msgspec.json.Decoder(list[_Instance])
_encoder = msgspec.json.Encoder()
_features_of = attrgetter(*FEATURES)
_key_of = attrgetter(KEY)
_PLAIN_KEYS = frozenset((str, type(None)))
_DEEP = re.compile(rb'"([A-Za-z_]{1,40})"\s*:\s*(?:[\[{]\s*){32}')


def parse_instances(body: bytes) -> tuple[np.ndarray, list[str | None]]:
    """A request body -> ([N, 5] float32 rows in FEATURES order, keys); HttpError(400) if unusable.

    The fast path accepts only what `check_instances` accepts and gives the same rows and
    keys; anything it does not accept goes to the slow path, which says what is wrong.
    """
    try:
        instances = _decoder.decode(body).instances
    except (msgspec.DecodeError, RecursionError):
        return _parse_slow(body)
    if not instances:
        raise HttpError(400, EMPTY, field="instances")
    return _rows(instances, 0)


async def parse_instances_async(body: bytes) -> tuple[np.ndarray, list[str | None]]:
    """`parse_instances`, yielding to the event loop between slices of a big body."""
    if len(body) <= SYNC_BODY_BYTES:
        return parse_instances(body)
    try:
        items = _lazy_decoder.decode(body).instances
    except (msgspec.DecodeError, RecursionError) as err:
        raise _not_a_request(body, err) from None
    if not items:
        raise HttpError(400, EMPTY, field="instances")
    rows, keys = [], []
    for start in range(0, len(items), SLICE_INSTANCES):
        await asyncio.sleep(0)
        part = items[start : start + SLICE_INSTANCES]
        try:
            instances = _slice_decoder.decode(b"[" + b",".join(part) + b"]")
        except (msgspec.DecodeError, RecursionError):
            part_rows, part_keys = _check_slow([_loads_item(raw, start + i) for i, raw in enumerate(part)], start)
        else:
            part_rows, part_keys = _rows(instances, start)
        rows.append(part_rows)
        keys.extend(part_keys)
    return np.concatenate(rows), keys


def _rows(instances: list[_Instance], first: int) -> tuple[np.ndarray, list[str | None]]:
    n = len(instances)
    values = list(map(_features_of, instances))
    flat = np.fromiter(chain.from_iterable(values), np.float64, count=n * len(FEATURES))
    rows = flat.reshape(n, len(FEATURES))
    # A few instances are checked faster in Python than numpy's per-call overhead allows.
    if not (n <= SMALL and _in_ranges(values)):
        try:
            check_rows(rows, first)
        except InstanceError as err:
            raise _http(err) from None
    keys = list(map(_key_of, instances))
    if not _PLAIN_KEYS.issuperset(map(type, keys)):
        keys = [k if k is None else str(k) for k in keys]
    return rows.astype(np.float32), keys


_WHOLE = [i for i, name in enumerate(FEATURES) if SCHEMA.field(name).whole]


def _in_ranges(values: list[tuple[float, ...]]) -> bool:
    """True when every instance is inside the schema's ranges (NaN is not); else check_rows says why."""
    for row in values:
        for value, (low, high) in zip(row, BOUNDS, strict=True):
            if not low <= value <= high:
                return False
        for i in _WHOLE:
            if row[i] != int(row[i]):
                return False
    return True


def _parse_slow(body: bytes) -> tuple[np.ndarray, list[str | None]]:
    try:
        # Bytes that are not UTF-8 become lone surrogates: check_instance names the field they are in.
        request = loads(body.decode("utf-8", "surrogateescape"))
    except RecursionError:
        raise _too_deep(body) from None
    except ValueError as err:
        raise HttpError(400, f"the body is not valid JSON: {err}") from None
    if not isinstance(request, dict):
        raise HttpError(400, 'the body must be a JSON object: {"instances": [{...}, ...]}')
    unknown = sorted(ascii(k)[1:-1] for k in set(request) - {"instances", "parameters"})
    if unknown:
        raise HttpError(
            400, f"unknown top-level field {unknown[0]!r}; allowed: instances, parameters", field=unknown[0]
        )
    instances = request.get("instances")
    if not isinstance(instances, list):
        problem = "missing" if instances is None else "not a JSON array"
        raise HttpError(400, f'"instances" is {problem}: send {{"instances": [{{...}}, ...]}}', field="instances")
    if not instances:
        raise HttpError(400, EMPTY, field="instances")
    return _check_slow(instances, 0)


def _check_slow(instances: list[Any], first: int) -> tuple[np.ndarray, list[str | None]]:
    try:
        return check_instances(instances, first=first)
    except InstanceError as err:
        raise _http(err) from None


def _loads_item(raw: msgspec.Raw, index: int) -> Any:
    try:
        return loads(bytes(raw).decode("utf-8", "surrogateescape"))
    except RecursionError:
        raise HttpError(400, f"instance {index}: nested too deeply", instance=index) from None
    except ValueError as err:
        raise HttpError(400, f"instance {index}: not valid JSON: {err}", instance=index) from None


def _http(err: InstanceError) -> HttpError:
    return HttpError(400, str(err), instance=err.index, field=err.field)


def _too_deep(body: bytes) -> HttpError:
    deep = _DEEP.search(body)
    where = f"field {deep.group(1).decode()!r}: " if deep else ""
    return HttpError(
        400,
        f"{where}arrays or objects nested too deeply to be a prediction request",
        field=deep.group(1).decode() if deep else None,
    )


def _not_a_request(body: bytes, err: Exception) -> HttpError:
    if isinstance(err, RecursionError):
        return _too_deep(body)
    field = re.search(r"`\$?\.?(\w+)`", str(err))
    return HttpError(
        400,
        f'the body is not a prediction request {{"instances": [{{...}}, ...]}}: {err}',
        field=field.group(1) if field else None,
    )


def rounded(fares: np.ndarray) -> list[float]:
    """`round(float(fare), 4)` for each float32 fare, as `format_predictions` writes them.

    A float32 times 1e4 is exact in float64, so numpy's round-half-even on it equals
    Python's correctly rounded `round(x, 4)`.
    """
    return np.round(fares.astype(np.float64), 4).tolist()


def encode_predictions(
    fares: np.ndarray, keys: list[str | None], ids: tuple[str, str] | None, model_name: str | None
) -> bytes:
    """The answer body; `model_name` None is the bare container answer (Vertex AI adds the ids).

    `ids` is (deployedModelId, modelVersionId). NotServable if the model gave a non-finite fare.
    """
    values = rounded(fares)
    if not math.isfinite(sum(values)):  # NaN and inf survive a sum; finite float32 fares cannot overflow it
        check_fares(fares, "the model")
    predictions = list(map(_Prediction, values, keys))
    if model_name is None or ids is None:
        return _encoder.encode(_ContainerResponse(predictions))
    return _encoder.encode(_Response(predictions, ids[0], model_name, ids[1]))


def encode(value: Any) -> bytes:
    return _encoder.encode(value)
