"""`taxifare serve`: Vertex AI's online-prediction REST contract on a small asyncio HTTP/1.1 server.

Routes:
    POST /v1/projects/{project}/locations/{location}/endpoints/{endpoint}:predict
    POST /predict                    the same, short
    GET  /health/live                liveness: the process answers
    GET  /health/ready               readiness: 200 once a model is loaded, 503 before
    GET  /model                      the loaded model: version, metrics, signature

A request is parsed and checked on the event loop without TensorFlow (msgspec for the
common case, `trainer.predict.check_instances` to name the instance and field of a bad
one). Checked rows queue for one prediction thread, which takes everything queued since
its last call as one batch: under load, many requests share one SavedModel call.

With a registry, the server polls `aliases.json` and loads a newly promoted champion in
the background; a batch keeps the model it started with, so a swap fails no request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import email.utils
import gc
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from operator import attrgetter
from typing import Any, cast
from urllib.parse import unquote

import msgspec
import numpy as np

from taxifare.errors import InstanceError, NotServable, TaxifareError
from taxifare.serving import (
    DEFAULT_DRAIN_SECONDS,
    DEFAULT_HOST,
    DEFAULT_MAX_BATCH_ROWS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_POLL_SECONDS,
    DEFAULT_PORT,
)
from taxifare.serving.container import Settings
from trainer.features import CENTER_LAT, CENTER_LON, FEATURES, KEY
from trainer.predict import Predictor, check_instances

log = logging.getLogger("taxifare.serve")

MAX_HEAD_BYTES = 64 << 10
KEEPALIVE_SECONDS = 75.0
LINGER_SECONDS = 2.0
MODEL_NAME = "taxifare"

PREDICT_ROUTE = "/predict"
LIVE_ROUTE = "/health/live"
READY_ROUTE = "/health/ready"
MODEL_ROUTE = "/model"
VERTEX_ROUTE = re.compile(r"/v1/projects/([^/]+)/locations/([^/]+)/endpoints/([^/:]+):predict")
GET_ROUTES = (LIVE_ROUTE, READY_ROUTE, MODEL_ROUTE)

_STATUS = {
    100: ("Continue", ""),
    200: ("OK", ""),
    400: ("Bad Request", "INVALID_ARGUMENT"),
    404: ("Not Found", "NOT_FOUND"),
    405: ("Method Not Allowed", "METHOD_NOT_ALLOWED"),
    413: ("Content Too Large", "PAYLOAD_TOO_LARGE"),
    431: ("Request Header Fields Too Large", "INVALID_ARGUMENT"),
    500: ("Internal Server Error", "INTERNAL"),
    501: ("Not Implemented", "UNIMPLEMENTED"),
    503: ("Service Unavailable", "UNAVAILABLE"),
}


# --- request bodies -------------------------------------------------------------------


class HttpError(TaxifareError):
    """A response the client caused: a status, a message, and where in the request it went wrong."""

    def __init__(self, status: int, message: str, instance: int | None = None, field: str | None = None):
        super().__init__(message)
        self.status, self.instance, self.field = status, instance, field

    def body(self) -> bytes:
        error: dict[str, Any] = {"code": self.status, "status": _STATUS[self.status][1], "message": self.message}
        if self.instance is not None:
            error["instance"] = self.instance
        if self.field is not None:
            error["field"] = self.field
        return _encoder.encode({"error": error})


class _Instance(msgspec.Struct, forbid_unknown_fields=True):
    """The fast path's view of one instance; its fields must be trainer.features' (checked below)."""

    pickuplon: float
    pickuplat: float
    dropofflon: float
    dropofflat: float
    passengers: float
    key: str | int | None = None


class _Request(msgspec.Struct, forbid_unknown_fields=True):
    instances: list[_Instance]
    parameters: Any = None


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


if _Instance.__struct_fields__ != (*FEATURES, KEY):
    raise ImportError(f"serving's request schema {_Instance.__struct_fields__} drifted from {(*FEATURES, KEY)}")

_decoder = msgspec.json.Decoder(_Request)
_encoder = msgspec.json.Encoder()
_features_of = attrgetter(*FEATURES)
_key_of = attrgetter(KEY)
_PLAIN_KEYS = frozenset((str, type(None)))


def parse_instances(body: bytes) -> tuple[np.ndarray, list[str | None]]:
    """A request body -> ([N, 5] float32 rows in FEATURES order, keys); HttpError(400) if unusable.

    The fast path accepts only what `check_instances` accepts and gives the same rows and
    keys; anything it does not accept goes to the slow path, which says what is wrong.
    """
    try:
        instances = _decoder.decode(body).instances
    except msgspec.DecodeError:
        return _parse_slow(body)
    n = len(instances)
    if n == 0:
        return _parse_slow(body)
    flat = np.fromiter(chain.from_iterable(map(_features_of, instances)), np.float64, count=n * len(FEATURES))
    with np.errstate(over="ignore"):
        raw = flat.reshape(n, len(FEATURES)).astype(np.float32)
    if not np.isfinite(raw).all():
        return _parse_slow(body)
    keys = list(map(_key_of, instances))
    if not _PLAIN_KEYS.issuperset(map(type, keys)):
        keys = [k if k is None else str(k) for k in keys]
    return raw, keys


def _parse_slow(body: bytes) -> tuple[np.ndarray, list[str | None]]:
    try:
        request = json.loads(body)
    except (ValueError, RecursionError) as err:
        raise HttpError(400, f"the body is not valid JSON: {err}") from None
    if not isinstance(request, dict):
        raise HttpError(400, 'the body must be a JSON object: {"instances": [{...}, ...]}')
    unknown = sorted(set(request) - {"instances", "parameters"})
    if unknown:
        raise HttpError(
            400, f"unknown top-level field {unknown[0]!r}; allowed: instances, parameters", field=unknown[0]
        )
    instances = request.get("instances")
    if not isinstance(instances, list):
        problem = "missing" if instances is None else "not a JSON array"
        raise HttpError(400, f'"instances" is {problem}: send {{"instances": [{{...}}, ...]}}', field="instances")
    if not instances:
        raise HttpError(400, '"instances" is empty: send at least one instance', field="instances")
    try:
        raw, keys = check_instances(instances)
    except InstanceError as err:
        raise HttpError(400, str(err), instance=err.index, field=err.field) from None
    return raw, keys


def rounded(fares: np.ndarray) -> list[float]:
    """`round(float(fare), 4)` for each float32 fare, as `format_predictions` writes them.

    A float32 times 1e4 is exact in float64, so numpy's round-half-even on it equals
    Python's correctly rounded `round(x, 4)`.
    """
    return np.round(fares.astype(np.float64), 4).tolist()


def encode_predictions(fares: np.ndarray, keys: list[str | None], model: LoadedModel, model_name: str | None) -> bytes:
    """The answer body; `model_name` None is the bare container answer (Vertex AI adds the ids)."""
    predictions = list(map(_Prediction, rounded(fares), keys))
    if model_name is None:
        return _encoder.encode(_ContainerResponse(predictions))
    return _encoder.encode(_Response(predictions, model.deployed_model_id, model_name, model.version))


# --- the model ------------------------------------------------------------------------


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


def fetch(model_uri: str) -> str:
    """A local directory holding the model: the path itself, or a copy of a gs:// prefix."""
    if not model_uri.startswith("gs://"):
        return model_uri
    import tempfile

    from trainer import gcs

    local = tempfile.mkdtemp(prefix="taxifare-model-")
    if not gcs.download_dir(model_uri, local):
        raise FileNotFoundError(f"no files under {model_uri}: is it the model's artifact folder?")
    return local


def load_model(
    model_dir: str, version: str | None = None, metadata: dict[str, Any] | None = None, source: dict | None = None
) -> LoadedModel:
    """Load a SavedModel's serving signature and check it predicts before anyone relies on it.

    `model_dir` may be a gs:// prefix (Vertex AI's AIP_STORAGE_URI): it is downloaded first.
    """
    if version is None and model_dir.startswith("gs://"):
        version = model_dir.rstrip("/").rsplit("/", 1)[-1]
    model_dir = fetch(model_dir)
    predictor = Predictor(model_dir)
    path = predictor.model_dir
    probe = np.array([[CENTER_LON, CENTER_LAT, CENTER_LON + 0.02, CENTER_LAT + 0.02, 1.0]], np.float32)
    if predictor.predict(probe).shape != (1,):
        raise ValueError(f"{path}: the signature should give one fare per instance")
    if metadata is None:
        metadata = _trainer_metrics(model_dir, path)
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
            except (OSError, ValueError):
                return {}
    return {}


class Batcher:
    """One prediction thread; whatever queued while it was busy becomes its next batch."""

    def __init__(self, loop: asyncio.AbstractEventLoop, current: Callable[[], LoadedModel | None], max_rows: int):
        self.loop, self.current, self.max_rows = loop, current, max_rows
        self.queue: list[tuple[np.ndarray, asyncio.Future]] = []
        self.running = 0
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="taxifare-predict")

    def submit(self, raw: np.ndarray) -> asyncio.Future:
        future = self.loop.create_future()
        self.queue.append((raw, future))
        if not self.running:
            self._dispatch()
        return future

    def _dispatch(self) -> None:
        model = self.current()
        if model is None:
            return
        rows, take = 0, 0
        for raw, _ in self.queue:
            if take and rows + len(raw) > self.max_rows:
                break
            rows, take = rows + len(raw), take + 1
        batch, self.queue = self.queue[:take], self.queue[take:]
        self.running += 1
        arrays = [raw for raw, _ in batch]
        done = self.loop.run_in_executor(self.executor, _predict_batch, model, arrays)
        done.add_done_callback(partial(self._finished, model, batch))

    def _finished(self, model: LoadedModel, batch: list, done: asyncio.Future) -> None:
        self.running -= 1
        error = done.exception()
        start = 0
        for raw, future in batch:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result((done.result()[start : start + len(raw)], model))
            start += len(raw)
        if self.queue:
            self._dispatch()


def _predict_batch(model: LoadedModel, arrays: list[np.ndarray]) -> np.ndarray:
    return model.predict(arrays[0] if len(arrays) == 1 else np.concatenate(arrays))


# --- HTTP -----------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    keep_alive: bool
    body: bytes


class _Connection(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, pipelining (answered in order), chunked bodies and Expect: 100-continue."""

    def __init__(self, app: App):
        self.app = app
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False  # a request is being answered; later ones wait in buf
        self.closed = False
        self.lingering = False
        self.paused = False
        self.head: tuple[str, str, bool, dict[bytes, bytes], int] | None = None
        self.continue_sent = False
        self.last_active = app.clock

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.app.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.app.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # the answer (413, 400) is out; drop the rest of what the client sends
        self.buf += data
        self.last_active = self.app.clock
        if not self.busy:
            self.process()
        elif len(self.buf) > self.app.max_body_bytes + MAX_HEAD_BYTES and not self.paused:
            assert self.transport is not None
            self.transport.pause_reading()
            self.paused = True

    def eof_received(self) -> bool | None:
        return None  # close when the client half-closes

    # request handling

    def process(self) -> None:
        while not self.busy and not self.closed and not self.lingering and self.buf:
            try:
                request = self._next_request()
            except HttpError as err:
                self.send(err.status, err.body(), keep_alive=False)
                return
            if request is None:
                return
            self.app.handle(self, request)
        if self.paused and not self.busy and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def _next_request(self) -> Request | None:
        buf = self.buf
        if self.head is None:
            while buf[:2] == b"\r\n":  # stray CRLF between requests is allowed
                del buf[:2]
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    raise HttpError(431, f"request head over {MAX_HEAD_BYTES} bytes")
                return None
            if end > MAX_HEAD_BYTES:
                raise HttpError(431, f"request head over {MAX_HEAD_BYTES} bytes")
            self.head = _parse_head(bytes(buf[:end]), end + 4)
            self.continue_sent = False
        method, target, keep_alive, headers, body_start = self.head
        chunked = headers.get(b"transfer-encoding")
        if chunked is not None:
            if chunked.lower() != b"chunked" or b"content-length" in headers:
                raise HttpError(400, "only Transfer-Encoding: chunked is supported, and not with Content-Length")
            decoded = _dechunk(buf, body_start, self.app.max_body_bytes)
            if decoded is None:
                self._maybe_continue(headers)
                return None
            body, end = decoded
        else:
            length = _content_length(headers.get(b"content-length"))
            if length > self.app.max_body_bytes:
                raise HttpError(413, f"body of {length} bytes is over the limit of {self.app.max_body_bytes}")
            end = body_start + length
            if len(buf) < end:
                self._maybe_continue(headers)
                return None
            body = bytes(buf[body_start:end])
        del buf[:end]
        self.head = None
        return Request(method, target, keep_alive, body)

    def _maybe_continue(self, headers: dict[bytes, bytes]) -> None:
        if not self.continue_sent and headers.get(b"expect", b"").lower() == b"100-continue":
            self.continue_sent = True
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def send(
        self, status: int, body: bytes, keep_alive: bool = True, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        if self.closed or self.transport is None:
            return
        keep_alive = keep_alive and not self.app.draining
        lines = [
            f"HTTP/1.1 {status} {_STATUS[status][0]}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            f"Date: {self.app.date}",
            "Server: taxifare",
        ]
        lines.extend(f"{k}: {v}" for k, v in headers)
        if not keep_alive:
            lines.append("Connection: close")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        self.last_active = self.app.clock
        if not keep_alive:
            self._close_after_response()

    def _close_after_response(self) -> None:
        """Half-close and keep reading a moment: a client still sending its body then sees the answer, not a reset."""
        assert self.transport is not None
        self.lingering = True
        self.buf.clear()
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.app.loop.call_later(LINGER_SECONDS, self.transport.close)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


def _parse_head(head: bytes, body_start: int) -> tuple[str, str, bool, dict[bytes, bytes], int]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[1].startswith(b"/"):
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise HttpError(400, "only HTTP/1.0 and HTTP/1.1 are spoken here")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "malformed header line")
        name = name.lower()
        value = value.strip()
        if name in headers and name == b"content-length" and headers[name] != value:
            raise HttpError(400, "conflicting Content-Length headers")
        headers[name] = value
    connection = headers.get(b"connection", b"").lower()
    keep_alive = b"close" not in connection if version == b"HTTP/1.1" else b"keep-alive" in connection
    try:
        return method.decode("ascii"), target.decode("ascii"), keep_alive, headers, body_start
    except UnicodeDecodeError:
        raise HttpError(400, "the request line must be ASCII") from None


def _content_length(value: bytes | None) -> int:
    if value is None:
        return 0
    if not value.isdigit():
        raise HttpError(400, "Content-Length must be a non-negative integer")
    return int(value)


def _dechunk(buf: bytearray, pos: int, limit: int) -> tuple[bytes, int] | None:
    parts: list[bytes] = []
    total = 0
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if len(buf) - pos > 1024:
                raise HttpError(400, "malformed chunk size line")
            return None
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HttpError(400, "malformed chunk size") from None
        if size < 0 or not size_text.isalnum():
            raise HttpError(400, "malformed chunk size")
        if size == 0:
            if buf[eol + 2 : eol + 4] == b"\r\n":
                return b"".join(parts), eol + 4
            trailer_end = buf.find(b"\r\n\r\n", eol)
            return None if trailer_end < 0 else (b"".join(parts), trailer_end + 4)
        total += size
        if total > limit:
            raise HttpError(413, f"body over the limit of {limit} bytes")
        start, stop = eol + 2, eol + 2 + size
        if len(buf) < stop + 2:
            return None
        if buf[stop : stop + 2] != b"\r\n":
            raise HttpError(400, "malformed chunk")
        parts.append(bytes(buf[start:stop]))
        pos = stop + 2


# --- the application ------------------------------------------------------------------


class App:
    """Routes, the model in use, the registry watch and the connections."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        model_dir: str | None = None,
        registry: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
        container: Settings | None = None,
    ):
        if (model_dir is None) == (registry is None):
            raise ValueError("give exactly one of model_dir or registry")
        self.loop = loop
        # Inside Vertex AI: its predict and health routes too, and bare {"predictions": [...]} answers.
        self.container = container
        self.model_dir, self.max_body_bytes, self.poll_seconds = model_dir, max_body_bytes, poll_seconds
        self.registry: Any = None
        if registry is not None:
            from taxifare.registry.local import LocalRegistry

            self.registry = LocalRegistry(registry)
        self.model: LoadedModel | None = None
        self.load_failed: str | None = None
        self.connections: set[_Connection] = set()
        self.batcher = Batcher(loop, lambda: self.model, max_batch_rows)
        self.loader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="taxifare-load")
        self.loading = False
        self.alias_stamp: tuple | None = None
        self.clock = time.monotonic()
        self.date = email.utils.formatdate(usegmt=True)
        self.fatal: asyncio.Future = loop.create_future()
        self._tick_timer: asyncio.TimerHandle | None = None
        self._poll_timer: asyncio.TimerHandle | None = None
        self.draining = False  # stopping: answer what is in flight, with Connection: close

    # lifecycle

    def start(self) -> None:
        if self.registry is not None:
            self._poll()
        else:
            assert self.model_dir is not None
            self._load(self.model_dir, None, None, {"source": "model_dir"})
        self._tick()

    def _tick(self) -> None:
        """Once a second: the Date header, idle connections, and (at its own pace) the registry."""
        now = time.monotonic()
        self.clock = now
        self.date = email.utils.formatdate(usegmt=True)
        for conn in list(self.connections):
            if not conn.busy and now - conn.last_active > KEEPALIVE_SECONDS:
                conn.close()
        self._tick_timer = self.loop.call_later(1.0, self._tick)

    def _poll(self) -> None:
        """Check the registry every poll_seconds; each poll schedules the next."""
        self._check_registry()
        self._poll_timer = self.loop.call_later(self.poll_seconds, self._poll)

    def stop(self) -> None:
        for timer in (self._tick_timer, self._poll_timer):
            if timer is not None:
                timer.cancel()
        self.batcher.executor.shutdown(wait=False)
        self.loader.shutdown(wait=False)

    # models

    def _check_registry(self) -> None:
        if self.loading:
            return
        try:
            st = os.stat(self.registry.aliases_path)
            stamp: tuple | None = (st.st_mtime_ns, st.st_ino, st.st_size)
        except OSError:
            stamp = None
        if stamp == self.alias_stamp:
            return
        self.alias_stamp = stamp
        try:
            champion = self.registry.champion()
        except (LookupError, OSError, ValueError) as err:
            log.error("cannot read the registry's champion: %s", err)
            return
        if champion is None:
            log.warning("no champion in %s yet: not ready until one is promoted", self.registry.root)
            return
        if self.model is not None and self.model.version == champion.name:
            return
        source = {"source": "registry", "registry": self.registry.root}
        self._load(champion.model_dir, champion.name, champion.metadata, source)

    def _load(self, model_dir: str, version: str | None, metadata: dict | None, source: dict) -> None:
        self.loading = True
        future = self.loop.run_in_executor(self.loader, load_model, model_dir, version, metadata, source)
        future.add_done_callback(partial(self._loaded, model_dir))

    def _loaded(self, model_dir: str, future: asyncio.Future) -> None:
        self.loading = False
        try:
            model = future.result()
        except Exception as err:
            self.load_failed = f"{model_dir}: {err}"
            log.error("could not load %s: %s", model_dir, err)
            if self.registry is None and not self.fatal.done():
                self.fatal.set_exception(NotServable(f"could not load {model_dir}: {err}"))
            return
        old, self.model, self.load_failed = self.model, model, None
        # TensorFlow leaves ~10^5 long-lived objects; a full collection walking them all stalls
        # every request for tens of milliseconds. Freeze them out of the collector's sight.
        # Unfreezing first lets the replaced model's cycles be collected.
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        log.info("serving %s (%s)%s", model.version, model.model_dir, f", replacing {old.version}" if old else "")
        if self.batcher.queue and not self.batcher.running:
            self.batcher._dispatch()

    # routes

    def handle(self, conn: _Connection, request: Request) -> None:
        try:
            self._route(conn, request)
        except HttpError as err:
            _send_error(conn, err, request.keep_alive)
        except Exception:
            log.exception("error answering %s %s", request.method, request.path)
            conn.busy = False
            conn.send(500, HttpError(500, "internal error; see the server log").body(), keep_alive=False)

    def _route(self, conn: _Connection, request: Request) -> None:
        path = request.path.split("?", 1)[0]
        method = request.method
        if self.container is not None:
            if path == self.container.predict_route:
                self._expect(method, "POST")
                return self._predict(conn, request, None)
            if path == self.container.health_route:
                self._expect(method, "GET", "HEAD")
                status, body = self._get(READY_ROUTE)
                return conn.send(status, b"" if method == "HEAD" else _encoder.encode(body), request.keep_alive)
        if path == PREDICT_ROUTE:
            self._expect(method, "POST")
            return self._predict(conn, request, MODEL_NAME)
        if path.startswith("/v1/"):
            match = VERTEX_ROUTE.fullmatch(unquote(path))
            if match:
                self._expect(method, "POST")
                project, location, _ = match.groups()
                return self._predict(conn, request, f"projects/{project}/locations/{location}/models/{MODEL_NAME}")
        if path in GET_ROUTES:
            self._expect(method, "GET", "HEAD")
            status, body = self._get(path)
            return conn.send(status, b"" if method == "HEAD" else _encoder.encode(body), request.keep_alive)
        extra = (self.container.predict_route, self.container.health_route) if self.container else ()
        routes = ", ".join((*extra, PREDICT_ROUTE, VERTEX_ROUTE.pattern, *GET_ROUTES))
        raise HttpError(404, f"no route {path!r}; routes: {routes}")

    @staticmethod
    def _expect(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise _MethodNotAllowed(method, allowed)

    def _get(self, path: str) -> tuple[int, dict]:
        model = self.model
        if path == LIVE_ROUTE:
            return 200, {"status": "alive"}
        if model is None:
            why = self.load_failed or ("loading" if self.loading else "no champion promoted yet")
            return 503, {"status": "unavailable", "reason": why}
        if path == READY_ROUTE:
            return 200, {"status": "ready", "modelVersionId": model.version}
        return 200, model.describe()

    def _predict(self, conn: _Connection, request: Request, model_name: str | None) -> None:
        if self.model is None:
            why = self.load_failed or ("the model is loading" if self.loading else "no champion promoted yet")
            raise HttpError(503, f"no model to serve: {why}")
        raw, keys = parse_instances(request.body)
        conn.busy = True
        future = self.batcher.submit(raw)
        future.add_done_callback(partial(self._answer, conn, keys, model_name, request.keep_alive))

    def _answer(
        self,
        conn: _Connection,
        keys: list[str | None],
        model_name: str | None,
        keep_alive: bool,
        future: asyncio.Future,
    ) -> None:
        conn.busy = False
        try:
            fares, model = future.result()
            conn.send(200, encode_predictions(fares, keys, model, model_name), keep_alive)
        except Exception:
            log.exception("prediction failed")
            conn.send(500, HttpError(500, "prediction failed; see the server log").body(), keep_alive=False)
        conn.process()


class _MethodNotAllowed(HttpError):
    def __init__(self, method: str, allowed: tuple[str, ...]):
        super().__init__(405, f"{method} not allowed here; use {' or '.join(allowed)}")
        self.allowed = allowed


def _send_error(conn: _Connection, err: HttpError, keep_alive: bool) -> None:
    headers = (("Allow", ", ".join(err.allowed)),) if isinstance(err, _MethodNotAllowed) else ()
    conn.send(err.status, err.body(), keep_alive, headers)


# --- running --------------------------------------------------------------------------


async def serve(
    *,
    model_dir: str | None = None,
    registry: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
    container: Settings | None = None,
    drain_seconds: float = DEFAULT_DRAIN_SECONDS,
    on_listening: Callable[[str, int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until `stop` is set (SIGINT/SIGTERM when run()); then drain: see `_drain`."""
    loop = asyncio.get_running_loop()
    app = App(
        loop,
        model_dir=model_dir,
        registry=registry,
        max_body_bytes=max_body_bytes,
        poll_seconds=poll_seconds,
        max_batch_rows=max_batch_rows,
        container=container,
    )
    server = await loop.create_server(lambda: _Connection(app), host, port, backlog=1024, reuse_address=True)
    bound = server.sockets[0].getsockname()
    if on_listening:
        on_listening(bound[0], bound[1])
    app.start()
    stop = stop or asyncio.Event()
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([stopping, app.fatal], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        server.close()
        await _drain(app, drain_seconds)
        app.stop()
    if app.fatal.done():
        app.fatal.result()  # re-raise the load error of a --model-dir server


def _in_flight(conn: _Connection) -> bool:
    """A request has begun arriving, or is being answered, on this connection."""
    return not conn.closed and not conn.lingering and (conn.busy or conn.head is not None or bool(conn.buf))


async def _drain(app: App, seconds: float) -> None:
    """No new connections; idle ones closed now; requests already arriving are answered, then closed.

    Vertex AI (like Kubernetes) sends SIGTERM and waits a grace period before SIGKILL: a
    request it routed here just before then still gets its answer.
    """
    app.draining = True
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for conn in list(app.connections):
            if not _in_flight(conn) and not conn.lingering:
                conn.close()
        if not any(_in_flight(c) for c in app.connections) and not (app.batcher.running or app.batcher.queue):
            break
        await asyncio.sleep(0.01)
    for conn in list(app.connections):
        conn.close()


def run(
    *,
    model_dir: str | None = None,
    registry: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
    tf_threads: int = 1,
    container: Settings | None = None,
    drain_seconds: float = DEFAULT_DRAIN_SECONDS,
) -> int:
    """Serve in the foreground until SIGINT or SIGTERM; print the bound address to stderr."""
    configure_tensorflow(tf_threads)

    def listening(bound_host: str, bound_port: int) -> None:
        what = f"model {model_dir}" if model_dir else f"the champion of {registry}"
        routes = f"; Vertex AI routes {container.predict_route}, {container.health_route}" if container else ""
        print(
            f"taxifare serve: listening on http://{bound_host}:{bound_port} ({what}{routes})",
            file=sys.stderr,
            flush=True,
        )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await serve(
            model_dir=model_dir,
            registry=registry,
            host=host,
            port=port,
            max_body_bytes=max_body_bytes,
            poll_seconds=poll_seconds,
            max_batch_rows=max_batch_rows,
            container=container,
            drain_seconds=drain_seconds,
            on_listening=listening,
            stop=stop,
        )
        print("taxifare serve: stopped", file=sys.stderr, flush=True)

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
