"""Predict through a served model: a `taxifare serve` URL or a Vertex AI endpoint.

Both give what `Predictor.predict_instances` gives for a local SavedModel: one
{"fare_amount": x, "key": k} per instance, in order, the key only where the instance had one.
A batch is sent as consecutive requests that each fit Vertex AI's request limit (also
`taxifare serve`'s default), and their answers are joined in order.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from taxifare.errors import CloudError
from taxifare.serving import VERTEX_REQUEST_BYTES
from trainer.features import FEATURES, LABEL
from trainer.predict import check_instances, format_predictions

VERTEX_ENDPOINT = re.compile(r"projects/([^/]+)/locations/([^/]+)/endpoints/([^/]+)")
# Instances per request at most, besides the byte limit: each answer comes back in good time.
LOCAL_CHUNK = 5_000
VERTEX_CHUNK = 1_000
# One instance as the Vertex AI REST transport sends it, at most: five floats, indented
# (json_format.MessageToJson's indent of 2, three levels deep); keys stay here.
VERTEX_INSTANCE_BYTES = 256
ENVELOPE = b'{"instances": []}'


def predict(
    endpoint: str,
    instances: Sequence[dict[str, Any]],
    *,
    timeout: float = 60.0,
    api_endpoint: str | None = None,
    credentials: Any = None,
    max_request_bytes: int = VERTEX_REQUEST_BYTES,
) -> list[dict[str, Any]]:
    """Predict fares for instances (dicts of the five raw fields, optionally `key`).

    Args:
        endpoint: http(s)://host:port[/path] of `taxifare serve` (the path defaults to /predict),
            or projects/P/locations/R/endpoints/ID of a Vertex AI endpoint.
        instances: the instances, e.g. one chunk of `trainer.predict.iter_json_lines`.
        timeout: seconds to wait for each request.
        api_endpoint: Vertex AI only: the API host, by default R-aiplatform.googleapis.com.
        credentials: Vertex AI only: google.auth credentials, by default the application default ones.
        max_request_bytes: each request's body at most; the default is Vertex AI's limit and `taxifare serve`'s.
    """
    if endpoint.startswith(("http://", "https://")):
        return _predict_http(_predict_url(endpoint), instances, timeout, max_request_bytes)
    match = VERTEX_ENDPOINT.fullmatch(endpoint.strip("/"))
    if match:
        sizes = [VERTEX_INSTANCE_BYTES] * len(instances)
        parts = list(batches(sizes, max_request_bytes, VERTEX_CHUNK))
        return _predict_vertex(match, instances, parts, timeout, api_endpoint, credentials)
    raise CloudError(
        f"--endpoint {endpoint!r}: give http://HOST:PORT (taxifare serve) or projects/P/locations/R/endpoints/ID"
    )


def _predict_url(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    path = parts.path if parts.path not in ("", "/") else "/predict"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def batches(sizes: Sequence[int], limit: int, most: int) -> Iterator[slice]:
    """Consecutive runs of instances (JSON sizes `sizes`) whose {"instances": [a, b, ...]} fits in `limit` bytes."""
    start, total = 0, len(ENVELOPE)
    for i, size in enumerate(sizes):
        if len(ENVELOPE) + size > limit:
            raise CloudError(
                f"instance {i} alone is {size:,} bytes of JSON, over the request limit of {limit:,} bytes "
                f"(Vertex AI takes at most {VERTEX_REQUEST_BYTES:,}); shorten its key"
            )
        if i > start and (total + 2 + size > limit or i - start >= most):
            yield slice(start, i)
            start, total = i, len(ENVELOPE)
        total += size + (2 if i > start else 0)  # ", " between instances
    if start < len(sizes):
        yield slice(start, len(sizes))


def _predict_http(
    url: str, instances: Sequence[dict[str, Any]], timeout: float, max_request_bytes: int
) -> list[dict[str, Any]]:
    encoded = [json.dumps(instance).encode() for instance in instances]
    out: list[dict[str, Any]] = []
    for part in batches([len(e) for e in encoded], max_request_bytes, LOCAL_CHUNK):
        chunk = instances[part]
        body = ENVELOPE[:-2] + b", ".join(encoded[part]) + ENVELOPE[-2:]
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as err:
            raise CloudError(f"{url} answered {err.code}: {_error_message(err)}") from err
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise CloudError(f"cannot reach {url}: {reason}; is `taxifare serve` running there?") from err
        except ValueError as err:
            raise CloudError(f"{url} did not answer JSON: {err}") from err
        predictions = answer.get("predictions") if isinstance(answer, dict) else None
        if not isinstance(predictions, list) or len(predictions) != len(chunk):
            raise CloudError(f"{url} answered without one prediction per instance")
        keys = [None if i.get("key") is None else str(i["key"]) for i in chunk]
        out.extend(_normalise(p, k, url) for p, k in zip(predictions, keys, strict=True))
    return out


def _error_message(err: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(err.read())
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError, OSError):
        return str(err.reason)


def _normalise(prediction: Any, key: str | None, where: str) -> dict[str, Any]:
    """One prediction in `format_predictions`' shape, whatever shape the server gave it.

    Accepts {"fare_amount": x, ...} (taxifare serve, already rounded), or a bare number or
    [number] (TF Serving's float32 answer for a one-output signature, rounded here).
    """
    value, served = prediction, isinstance(prediction, dict)
    if served:
        value = value.get(LABEL)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CloudError(f"{where} answered a prediction that is not a fare: {json.dumps(prediction)[:200]}")
    if served:
        item: dict[str, Any] = {LABEL: round(float(value), 4)}
        if key is not None:
            item["key"] = key
        return item
    return format_predictions(np.asarray([value], np.float32), [key])[0]


def _predict_vertex(
    match: re.Match,
    instances: Sequence[dict[str, Any]],
    parts: list[slice],
    timeout: float,
    api_endpoint: str | None,
    credentials: Any,
) -> list[dict[str, Any]]:
    from google.api_core import exceptions
    from google.cloud.aiplatform_v1.services.prediction_service import PredictionServiceClient
    from google.protobuf import json_format, struct_pb2

    _, location, _ = match.groups()
    _, keys = check_instances(instances)
    client = PredictionServiceClient(
        credentials=credentials,
        transport="rest",
        client_options={"api_endpoint": api_endpoint or f"{location}-aiplatform.googleapis.com"},
    )
    name = match.group(0)
    out: list[dict[str, Any]] = []
    for part in parts:
        # The model takes the five fields only; keys stay here and are put back in order.
        values = [
            json_format.ParseDict({name: float(instance[name]) for name in FEATURES}, struct_pb2.Value())
            for instance in instances[part]
        ]
        try:
            response = client.predict(endpoint=name, instances=values, timeout=timeout)
        except exceptions.GoogleAPICallError as err:
            raise CloudError(f"{name}: {err.message or err}") from err
        except exceptions.GoogleAPIError as err:
            raise CloudError(f"{name}: {err}") from err
        predictions = [json_format.MessageToDict(p) for p in response._pb.predictions]
        chunk_keys = keys[part]
        if len(predictions) != len(chunk_keys):
            raise CloudError(f"{name} answered {len(predictions)} predictions for {len(chunk_keys)} instances")
        out.extend(_normalise(p, k, name) for p, k in zip(predictions, chunk_keys, strict=True))
    return out
