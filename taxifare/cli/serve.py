"""`taxifare serve`: the subcommand. Only argparse at import; the server loads in the handler."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os

from taxifare.cli import args as cli_args
from taxifare.errors import UsageError
from taxifare.serving import DEFAULT_HOST, DEFAULT_PORT


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve predictions over HTTP (Vertex AI's online prediction REST contract)",
        description="Serve a SavedModel, or a registry's champion (swapped in when a new one is promoted), "
        "at POST /predict and POST /v1/projects/P/locations/R/endpoints/E:predict; "
        "GET /health/live, /health/ready and /model. Inside a Vertex AI serving container "
        "(AIP_HTTP_PORT set) it listens on 0.0.0.0:$AIP_HTTP_PORT, adds $AIP_PREDICT_ROUTE and "
        "$AIP_HEALTH_ROUTE, and serves the model at $AIP_STORAGE_URI unless told otherwise.",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--model-dir",
        "--model_dir",
        type=cli_args.saved_model,
        help="a SavedModel export directory, a trainer --output_dir, or a gs:// folder holding one",
    )
    which.add_argument(
        "--registry", type=cli_args.path, help="a local registry directory: serve its champion, follow promotions"
    )
    p.add_argument(
        "--host", help=f"address to bind; 0.0.0.0 exposes the server (default {DEFAULT_HOST}; 0.0.0.0 on Vertex AI)"
    )
    p.add_argument(
        "--port", type=int, help=f"port to bind; 0 picks a free one, printed (default {DEFAULT_PORT}; $AIP_HTTP_PORT)"
    )
    _add_limits(p)
    p.set_defaults(handler=_cmd_serve)


def _add_limits(p: argparse.ArgumentParser) -> None:
    """How the server treats its clients: sizes, deadlines, connections, threads (serving/options.py)."""
    from taxifare.serving.options import ServeOptions
    from trainer import settings

    settings.add_options(p.add_argument_group("limits"), settings.settings_of(ServeOptions))


def _cmd_serve(args: argparse.Namespace) -> int:
    from taxifare.serving import container

    settings = container.settings(os.environ) if container.in_container(os.environ) else None
    host = args.host or (settings.host if settings else DEFAULT_HOST)
    port = args.port if args.port is not None else (settings.port if settings else DEFAULT_PORT)
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, not {port}")
    from taxifare.serving.options import ServeOptions
    from trainer import settings as setting_defs

    options = setting_defs.check(setting_defs.from_args(ServeOptions, args))  # finite, in range: one line each
    model_dir = registry = None
    if args.registry:
        registry = args.registry
        if not os.path.isdir(registry):
            raise UsageError(f"--registry {args.registry}: no such directory; register a model there first")
    else:
        model_dir = args.model_dir or (settings.model_uri if settings else None)
        if not model_dir:
            hint = f"{container.STORAGE_URI} is empty" if settings else "give --model-dir DIR or --registry DIR"
            raise UsageError(f"no model to serve: {hint}")
        if not args.model_dir and not model_dir.startswith("gs://"):  # AIP_STORAGE_URI as a local path
            from trainer.predict import resolve_model_dir

            model_dir = resolve_model_dir(cli_args.path(model_dir))

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from trainer import logs

    logs.quiet_tensorflow(args.verbose)
    from taxifare.serving import server

    try:
        return server.run(
            model_dir=model_dir,
            registry=registry,
            host=host,
            port=port,
            container=settings,
            **dataclasses.asdict(options),
        )
    except OSError as err:
        raise UsageError(f"cannot listen on {host}:{port}: {err.strerror or err}; try another --port") from err
