"""The application: routes, the model in use, the registry watch and the open connections.

With a registry, `aliases.json` is checked every poll_seconds; a newly promoted champion is
loaded in the background and swapped in once it predicts. Whatever the registry holds (a
damaged alias file, a version without its metadata, an unreadable folder), the watch goes on
and /health/ready says what is wrong.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import gc
import logging
import os
import re
import time
from functools import partial
from typing import Any
from urllib.parse import unquote

from taxifare.errors import NotServable, TaxifareError
from taxifare.serving import (
    DEFAULT_BODY_SECONDS,
    DEFAULT_HEAD_SECONDS,
    DEFAULT_MAX_BATCH_ROWS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_POLL_SECONDS,
    DEFAULT_SEND_SECONDS,
)
from taxifare.serving.batcher import Batcher
from taxifare.serving.body import SYNC_BODY_BYTES, encode, encode_predictions, parse_instances, parse_instances_async
from taxifare.serving.connections import Connections, Deadlines
from taxifare.serving.container import Settings
from taxifare.serving.messages import HttpError, Request
from taxifare.serving.model import MODEL_NAME, LoadedModel, load_model
from taxifare.serving.protocol import Connection

log = logging.getLogger("taxifare.serve")

PREDICT_ROUTE = "/predict"
LIVE_ROUTE = "/health/live"
READY_ROUTE = "/health/ready"
MODEL_ROUTE = "/model"
VERTEX_ROUTE = re.compile(r"/v1/projects/([^/]+)/locations/([^/]+)/endpoints/([^/:]+):predict")
GET_ROUTES = (LIVE_ROUTE, READY_ROUTE, MODEL_ROUTE)


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
        head_seconds: float = DEFAULT_HEAD_SECONDS,
        body_seconds: float = DEFAULT_BODY_SECONDS,
        send_seconds: float = DEFAULT_SEND_SECONDS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ):
        if (model_dir is None) == (registry is None):
            raise ValueError("give exactly one of model_dir or registry")
        self.loop = loop
        # Inside Vertex AI: its predict and health routes too, and bare {"predictions": [...]} answers.
        self.container = container
        self.model_dir, self.max_body_bytes, self.poll_seconds = model_dir, max_body_bytes, poll_seconds
        self.head_seconds, self.body_seconds, self.send_seconds = head_seconds, body_seconds, send_seconds
        self.registry: Any = None
        if registry is not None:
            from taxifare.registry.local import LocalRegistry

            self.registry = LocalRegistry(registry)
        self.model: LoadedModel | None = None
        self.load_failed: str | None = None
        self.registry_problem: str | None = None
        self.connections = Connections(max_connections)
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
        """Once a second: the Date header, deadlines and idle connections."""
        now = time.monotonic()
        self.clock = now
        self.date = email.utils.formatdate(usegmt=True)
        idle_seconds = self.connections.idle_seconds()
        limits = Deadlines(self.head_seconds, self.body_seconds, self.send_seconds, idle_seconds)
        for conn in self.connections:
            conn.check_deadlines(now, limits)
        self._tick_timer = self.loop.call_later(1.0, self._tick)

    def _poll(self) -> None:
        """Check the registry every poll_seconds; each poll schedules the next, whatever happened."""
        try:
            self._check_registry()
        except Exception as err:  # a damaged registry, or a bug: the watch must go on either way
            self._registry_failed(f"{type(err).__name__}: {err}")
        finally:
            self._poll_timer = self.loop.call_later(self.poll_seconds, self._poll)

    def stop(self) -> None:
        for timer in (self._tick_timer, self._poll_timer):
            if timer is not None:
                timer.cancel()
        self.batcher.shutdown()
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
        if stamp == self.alias_stamp and self.registry_problem is None:
            return
        self.alias_stamp = stamp
        try:
            champion = self.registry.champion()
        except (TaxifareError, OSError, ValueError) as err:
            return self._registry_failed(str(err))
        if self.registry_problem:
            log.info("the registry is readable again")
        self.registry_problem = None
        if champion is None:
            log.warning("no champion in %s yet: not ready until one is promoted", self.registry.root)
            return
        if self.model is not None and self.model.version == champion.name:
            return
        source = {"source": "registry", "registry": self.registry.root}
        self._load(champion.model_dir, champion.name, champion.metadata, source)

    def _registry_failed(self, problem: str) -> None:
        if problem != self.registry_problem:
            log.error("cannot read the registry's champion: %s", problem)
        self.registry_problem = problem

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
        self.batcher.dispatch()

    def unavailable(self) -> str:
        """Why there is no model to serve."""
        return self.load_failed or self.registry_problem or ("loading" if self.loading else "no champion promoted yet")

    # routes

    def handle(self, conn: Connection, request: Request) -> None:
        try:
            self._route(conn, request)
        except HttpError as err:
            conn.send_error(err, request.keep_alive)
        except Exception:
            log.exception("error answering %s %s", request.method, request.path)
            conn.busy = False
            conn.send(500, HttpError(500, "internal error; see the server log").body(), keep_alive=False)

    def _route(self, conn: Connection, request: Request) -> None:
        path, method = request.path, request.method
        if self.container is not None:
            if path == self.container.predict_route:
                _expect(method, "POST")
                return self._predict(conn, request, None)
            if path == self.container.health_route:
                return self._get(conn, request, READY_ROUTE)
        if path == PREDICT_ROUTE:
            _expect(method, "POST")
            return self._predict(conn, request, MODEL_NAME)
        if path.startswith("/v1/"):
            match = VERTEX_ROUTE.fullmatch(unquote(path))
            if match:
                _expect(method, "POST")
                project, location, _ = match.groups()
                return self._predict(conn, request, f"projects/{project}/locations/{location}/models/{MODEL_NAME}")
        if path in GET_ROUTES:
            return self._get(conn, request, path)
        extra = (self.container.predict_route, self.container.health_route) if self.container else ()
        routes = ", ".join((*extra, PREDICT_ROUTE, VERTEX_ROUTE.pattern, *GET_ROUTES))
        raise HttpError(404, f"no route {path!r}; routes: {routes}")

    def _get(self, conn: Connection, request: Request, route: str) -> None:
        _expect(request.method, "GET", "HEAD")
        status, body = self._status(route)
        conn.send(status, encode(body), request.keep_alive)

    def _status(self, route: str) -> tuple[int, dict]:
        model = self.model
        if route == LIVE_ROUTE:
            return 200, {"status": "alive"}
        if model is None:
            return 503, {"status": "unavailable", "reason": self.unavailable()}
        if route == READY_ROUTE:
            ready: dict[str, Any] = {"status": "ready", "modelVersionId": model.version}
            if self.registry_problem:
                ready["registry"] = f"promotions are not followed: {self.registry_problem}"
            return 200, ready
        return 200, model.describe()

    def _predict(self, conn: Connection, request: Request, model_name: str | None) -> None:
        if self.model is None:
            raise HttpError(503, f"no model to serve: {self.unavailable()}")
        if len(request.body) > SYNC_BODY_BYTES:  # checked in slices, other clients answered in between
            conn.busy = True
            task = self.loop.create_task(self._predict_big(request.body))
            task.add_done_callback(partial(self._answer, conn, model_name, request.keep_alive, None))
            return
        raw, keys = parse_instances(request.body)
        conn.busy = True
        future = self.batcher.submit(raw)
        future.add_done_callback(partial(self._answer, conn, model_name, request.keep_alive, keys))

    async def _predict_big(self, body: bytes) -> tuple[Any, LoadedModel, list[str | None]]:
        raw, keys = await parse_instances_async(body)
        fares, model = await self.batcher.submit(raw)
        return fares, model, keys

    def _answer(
        self,
        conn: Connection,
        model_name: str | None,
        keep_alive: bool,
        keys: list[str | None] | None,
        future: asyncio.Future,
    ) -> None:
        """Send the answer (or the error) of a prediction; then the connection's next request."""
        conn.busy = False
        try:
            fares, model, *rest = future.result()
            conn.send(
                200, encode_predictions(fares, rest[0] if keys is None else keys, model.ids, model_name), keep_alive
            )
        except HttpError as err:
            conn.send_error(err, keep_alive)
        except Exception as err:
            log.exception("prediction failed")
            reason = str(err) if isinstance(err, NotServable) else "see the server log"
            conn.send(500, HttpError(500, f"prediction failed: {reason}").body(), keep_alive=False)
        conn.process()


def _expect(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise HttpError(
            405,
            f"{method!a} not allowed here; use {' or '.join(allowed)}",
            headers=(("Allow", ", ".join(allowed)),),
        )
