"""`taxifare serve`: the subcommand. Only argparse at import; the server loads in the handler."""

from __future__ import annotations

import argparse
import logging
import os

from serving import DEFAULT_HOST, DEFAULT_MAX_BODY_BYTES, DEFAULT_POLL_SECONDS, DEFAULT_PORT


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve predictions over HTTP (Vertex AI's online prediction REST contract)",
        description="Serve a SavedModel, or a registry's champion (swapped in when a new one is promoted), "
        "at POST /predict and POST /v1/projects/P/locations/R/endpoints/E:predict; "
        "GET /health/live, /health/ready and /model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model-dir", help="a SavedModel export directory or a trainer --output_dir")
    which.add_argument("--registry", help="a local registry directory: serve its champion, follow promotions")
    p.add_argument("--host", default=DEFAULT_HOST, help="address to bind; 0.0.0.0 exposes the server to the network")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to bind; 0 picks a free one (printed)")
    p.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="larger bodies get 413")
    p.add_argument(
        "--poll-seconds", type=float, default=DEFAULT_POLL_SECONDS, help="how often to check the registry's champion"
    )
    p.add_argument("--tf-threads", type=int, default=1, help="TensorFlow intra/inter-op threads (0: TF's default)")
    p.set_defaults(handler=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from pipeline.cli import UsageError

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, not {args.port}")
    if args.max_body_bytes < 1024:
        raise UsageError("--max-body-bytes must be at least 1024")
    if args.poll_seconds <= 0:
        raise UsageError("--poll-seconds must be positive")
    model_dir = registry = None
    if args.model_dir:
        from trainer.predict import resolve_model_dir

        try:
            model_dir = resolve_model_dir(os.path.abspath(os.path.expanduser(args.model_dir)))
        except FileNotFoundError as err:
            raise UsageError(f"--model-dir: {err}") from err
    else:
        registry = os.path.abspath(os.path.expanduser(args.registry))
        if not os.path.isdir(registry):
            raise UsageError(f"--registry {args.registry}: no such directory; register a model there first")

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from serving import server

    try:
        return server.run(
            model_dir=model_dir,
            registry=registry,
            host=args.host,
            port=args.port,
            max_body_bytes=args.max_body_bytes,
            poll_seconds=args.poll_seconds,
            tf_threads=args.tf_threads,
        )
    except server.ModelLoadError as err:
        raise UsageError(f"--model-dir: {err}") from err
    except OSError as err:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port}: {err.strerror or err}; try another --port"
        ) from err
