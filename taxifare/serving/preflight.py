"""Before a model takes traffic: ask `taxifare serve` for predictions over HTTP, as clients will.

The server runs in this process on a loopback port, configured exactly as Vertex AI configures
the container (the AIP_* variables `container.environ_for` derives from the uploaded spec), or
as `taxifare serve --registry` serves locally when no spec is given. Its answers must match
what the Python loader gives for the same trips: what evaluate scored is what gets served.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from taxifare.errors import NotServable
from taxifare.serving import container
from trainer import features as F
from trainer.servable import PROBE, TOLERANCE

ROUNDING = 5e-5  # the server rounds fares to 4 decimals


def probe_instances() -> list[dict[str, float]]:
    return [dict(zip(F.FEATURES, map(float, row), strict=True)) for row in PROBE]


class _ServerThread:
    """`server.serve` on its own event loop in a daemon thread; `stop()` drains and joins it."""

    def __init__(self, model_uri: str, settings: container.Settings | None):
        self.model_uri, self.settings = model_uri, settings
        self.port: int | None = None
        self.error: BaseException | None = None
        self._listening = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="taxifare-preflight", daemon=True)

    def _run(self) -> None:
        from taxifare.serving import server

        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()

            def listening(_host: str, port: int) -> None:
                self.port = port
                self._listening.set()

            await server.serve(
                model_dir=self.model_uri,
                host="127.0.0.1",
                port=0,
                container=self.settings,
                drain_seconds=1.0,
                on_listening=listening,
                stop=self._stop,
            )

        try:
            asyncio.run(main())
        except BaseException as err:  # reported by the caller, which names the model
            self.error = err
        finally:
            self._listening.set()

    def __enter__(self) -> _ServerThread:
        self._thread.start()
        self._listening.wait(60)
        if self.port is None:
            raise NotServable(f"{self.model_uri}: the server did not start: {self.error}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self.port is not None
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, data, {"Content-Type": "application/json"})
            response = conn.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
        finally:
            conn.close()


def check_server(
    model_uri: str, spec: Mapping[str, Any] | None = None, expected: np.ndarray | None = None, timeout: float = 120
) -> np.ndarray:
    """Serve `model_uri` as `spec` says (None: as `taxifare serve` locally) and predict PROBE over HTTP.

    Returns the fares; NotServable says what failed (never ready, an error status, a bad answer,
    answers that differ from `expected`).
    """
    settings = container.settings(container.environ_for(spec, model_uri)) if spec is not None else None
    health = settings.health_route if settings else "/health/ready"
    predict = settings.predict_route if settings else "/predict"
    with _ServerThread(model_uri, settings) as srv:
        deadline = time.monotonic() + timeout
        status, body = 0, None
        while time.monotonic() < deadline and srv.error is None:
            try:
                status, body = srv.call("GET", health)
            except OSError as err:  # the server is going away (a failed load ends it): say why below
                status, body = 0, {"reason": f"connection failed ({err})"}
            if status == 200:
                break
            time.sleep(0.05)
        if status != 200:
            why = srv.error or (body or {}).get("reason") or f"status {status}"
            raise NotServable(f"{model_uri}: the server never became ready on GET {health}: {why}")
        status, body = srv.call("POST", predict, {"instances": probe_instances()})
    if status != 200:
        raise NotServable(f"{model_uri}: POST {predict} answered {status}: {body}")
    try:
        fares = np.array([p[F.LABEL] for p in body["predictions"]], np.float64)
    except (KeyError, TypeError) as err:
        raise NotServable(f"{model_uri}: POST {predict} answered without one fare per instance: {body}") from err
    if fares.shape != (len(PROBE),) or not np.isfinite(fares).all():
        raise NotServable(f"{model_uri}: POST {predict} answered {fares.tolist()} for {len(PROBE)} trips")
    if expected is not None and not np.allclose(fares, expected, rtol=0, atol=TOLERANCE + ROUNDING):
        raise NotServable(
            f"{model_uri}: the server answers {fares.tolist()}, the Python loader {np.asarray(expected).tolist()}"
        )
    return fares
