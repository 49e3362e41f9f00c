"""Vertex AI's custom serving container contract, as `taxifare serve` reads it and the deploy writes it.

Vertex AI starts the container of a model version with the `command`, `args`, `ports`, routes
and `env` of its ModelContainerSpec, and tells the server what it needs in AIP_* variables:

    AIP_HTTP_PORT      the port to listen on, on 0.0.0.0 (the spec's first port; 8080 by default)
    AIP_HEALTH_ROUTE   GET here answers 200 once predictions can be served, anything else before
    AIP_PREDICT_ROUTE  POST {"instances": [...], "parameters": {...}} here -> {"predictions": [...]}
    AIP_STORAGE_URI    gs:// copy of the version's artifact_uri (the SavedModel) made by Vertex AI

Vertex AI also probes the container (startup_probe, then health_probe) on the readiness route.
`container_spec()` is what the deploy uploads and `settings()` is what the server does with it,
so the deploy's pre-flight check (which runs the server with the spec's own variables) and
the server that runs on Vertex AI are the same code. The spec passes no --max-body-bytes: the
server's default is Vertex AI's request limit (`taxifare.serving.VERTEX_REQUEST_BYTES`), so the
container takes all that Vertex AI lets through, and a local server refuses what it would not.
No TensorFlow here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from taxifare.errors import UsageError

PORT = "AIP_HTTP_PORT"
HEALTH_ROUTE = "AIP_HEALTH_ROUTE"
PREDICT_ROUTE = "AIP_PREDICT_ROUTE"
STORAGE_URI = "AIP_STORAGE_URI"

# What the uploaded container spec asks for (Vertex then sets the AIP_* variables to these).
SERVE_COMMAND = ("taxifare", "serve")
CONTAINER_PORT = 8080
CONTAINER_PREDICT_ROUTE = "/predict"
CONTAINER_HEALTH_ROUTE = "/health/ready"
# TensorFlow's C++ start-up chatter is noise in Cloud Logging; warnings and errors stay.
CONTAINER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "1"}
# Vertex AI's probes, both on the readiness route: a start-up probe that allows for importing TensorFlow
# and fetching the model from Cloud Storage (up to PROBE_PERIOD_S * STARTUP_FAILURES = 10 minutes), then a
# health probe that takes a replica out of service after HEALTH_FAILURES misses in a row.
PROBE_PERIOD_S = 10
PROBE_TIMEOUT_S = 5
STARTUP_FAILURES = 60
HEALTH_FAILURES = 3


@dataclasses.dataclass(frozen=True)
class Settings:
    """Where and how `taxifare serve` listens when Vertex AI runs it."""

    host: str
    port: int
    predict_route: str
    health_route: str
    model_uri: str | None


def in_container(environ: Mapping[str, str]) -> bool:
    """Vertex AI sets AIP_HTTP_PORT for every serving container; nothing else does."""
    return bool(environ.get(PORT))


def settings(environ: Mapping[str, str]) -> Settings:
    """The server's settings from the AIP_* variables; UsageError for unusable ones."""
    text = environ.get(PORT, "")
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"Vertex AI's container variable {PORT}={text!r} is not a port number (1-65535)")
    routes = {}
    for name, default in ((PREDICT_ROUTE, CONTAINER_PREDICT_ROUTE), (HEALTH_ROUTE, CONTAINER_HEALTH_ROUTE)):
        route = environ.get(name) or default
        if not route.startswith("/") or any(c.isspace() for c in route) or "?" in route:
            raise UsageError(
                f"Vertex AI's container variable {name}={route!r} is not a URL path (it must start with '/')"
            )
        routes[name] = route
    if routes[PREDICT_ROUTE] == routes[HEALTH_ROUTE]:
        raise UsageError(f"{PREDICT_ROUTE} and {HEALTH_ROUTE} are both {routes[PREDICT_ROUTE]!r}")
    return Settings(
        host="0.0.0.0",  # the contract: Vertex AI's probes come from outside the container
        port=int(text),
        predict_route=routes[PREDICT_ROUTE],
        health_route=routes[HEALTH_ROUTE],
        model_uri=environ.get(STORAGE_URI) or None,
    )


def container_spec(image: str) -> dict[str, Any]:
    """ModelContainerSpec fields (REST names) for a version served by this project's image."""
    return {
        "image_uri": image,
        "command": list(SERVE_COMMAND),
        "ports": [{"container_port": CONTAINER_PORT}],
        "predict_route": CONTAINER_PREDICT_ROUTE,
        "health_route": CONTAINER_HEALTH_ROUTE,
        "env": [{"name": k, "value": v} for k, v in CONTAINER_ENV.items()],
        "startup_probe": _probe(STARTUP_FAILURES),
        "health_probe": _probe(HEALTH_FAILURES),
    }


def _probe(failures: int) -> dict[str, Any]:
    """A ModelContainerSpec probe (REST names): GET the readiness route on the container's port."""
    return {
        "http_get": {"path": CONTAINER_HEALTH_ROUTE, "port": CONTAINER_PORT},
        "period_seconds": PROBE_PERIOD_S,
        "timeout_seconds": PROBE_TIMEOUT_S,
        "failure_threshold": failures,
    }


def environ_for(spec: Mapping[str, Any], storage_uri: str, port: int | None = None) -> dict[str, str]:
    """The AIP_* variables (and the spec's env) Vertex AI gives a container started from `spec`."""
    env = {e["name"]: e["value"] for e in spec.get("env", [])}
    env.update(
        {
            PORT: str(port if port is not None else spec["ports"][0]["container_port"]),
            PREDICT_ROUTE: spec["predict_route"],
            HEALTH_ROUTE: spec["health_route"],
            STORAGE_URI: storage_uri,
        }
    )
    return env
