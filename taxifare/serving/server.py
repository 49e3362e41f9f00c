"""`taxifare serve`: Vertex AI's online-prediction REST contract over asyncio and llhttp.

Routes:
    POST /v1/projects/{project}/locations/{location}/endpoints/{endpoint}:predict
    POST /predict                    the same, short
    GET  /health/live                liveness: the process answers
    GET  /health/ready               readiness: 200 once a model is loaded, 503 before
    GET  /model                      the loaded model: version, metrics, signature

The pieces: `protocol` (HTTP/1.1 connections: llhttp through httptools, limits, deadlines),
`body` (request bodies checked without TensorFlow, answers encoded), `batcher` (one prediction
thread; requests that queue meanwhile share its next call), `model` (loading and checking a
SavedModel) and `app` (routes, the model in use, the registry watch and hot swap). This
module starts them, and on SIGTERM drains: answers what is in flight, then exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from taxifare.serving import (
    DEFAULT_DRAIN_SECONDS,
    DEFAULT_HOST,
    DEFAULT_PORT,
)
from taxifare.serving.app import App
from taxifare.serving.container import Settings
from taxifare.serving.model import configure_tensorflow
from taxifare.serving.protocol import Connection

log = logging.getLogger("taxifare.serve")
SPARE_FILES = 64  # file descriptors kept for the model, logs and the registry
SWITCH_SECONDS = 0.0005


async def serve(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    drain_seconds: float = DEFAULT_DRAIN_SECONDS,
    on_listening: Callable[[str, int], None] | None = None,
    stop: asyncio.Event | None = None,
    **options: Any,
) -> None:
    """Serve until `stop` is set (SIGINT/SIGTERM when run()); then drain: see `_drain`.

    `options` are App's: model_dir or registry, max_body_bytes, poll_seconds, max_batch_rows,
    container, head_seconds, body_seconds, send_seconds, max_connections.
    """
    loop = asyncio.get_running_loop()
    app = App(loop, **options)
    app.connections.cap = _connection_cap(app.connections.cap)
    server = await loop.create_server(lambda: Connection(app), host, port, backlog=1024, reuse_address=True)
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


def _connection_cap(wanted: int) -> int:
    """At most `wanted` connections, and fewer than the open-files limit allows (then 503, not EMFILE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted + SPARE_FILES:
        raise_to = hard if hard == resource.RLIM_INFINITY else min(hard, wanted + SPARE_FILES)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raise_to, hard))
            soft = raise_to
    if soft == resource.RLIM_INFINITY:
        return wanted
    cap = max(1, min(wanted, soft - SPARE_FILES))
    if cap < wanted:
        log.warning("at most %d connections (the open-files limit is %d)", cap, soft)
    return cap


async def _drain(app: App, seconds: float) -> None:
    """No new connections; idle ones closed now; requests already arriving are answered, then closed.

    Vertex AI (like Kubernetes) sends SIGTERM and waits a grace period before SIGKILL: a
    request it routed here just before then still gets its answer.
    """
    app.draining = True
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for conn in app.connections:
            if not conn.in_flight() and not conn.lingering:
                conn.close()
        if not any(c.in_flight() for c in app.connections) and app.batcher.idle:
            break
        await asyncio.sleep(0.01)
    for conn in app.connections:
        conn.close()


def run(*, tf_threads: int = 1, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, **options: Any) -> int:
    """Serve in the foreground until SIGINT or SIGTERM; print the bound address to stderr.

    `options` are serve()'s and App's (model_dir or registry, container, drain_seconds, ...).
    """
    configure_tensorflow(tf_threads)
    # The prediction thread hands results back to the event loop: while the loop is busy (a big
    # body, a client's 1-byte chunks) it waits for the GIL up to the switch interval, 5 ms by default.
    sys.setswitchinterval(SWITCH_SECONDS)
    container: Settings | None = options.get("container")

    def listening(bound_host: str, bound_port: int) -> None:
        model_dir, registry = options.get("model_dir"), options.get("registry")
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
        await serve(host=host, port=port, on_listening=listening, stop=stop, **options)
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
