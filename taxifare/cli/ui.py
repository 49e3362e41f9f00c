"""`taxifare ui`: a local web console over the runs and the registry (taxifare/ui/)."""

from __future__ import annotations

import argparse
import sys

from taxifare.cli import args as cli_args

DEFAULT_PORT = 8765


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535; 0 picks a free one)")
    return port


def _cmd_ui(args: argparse.Namespace) -> int:
    from taxifare.ui import server

    sock = server.bind(args.host, args.port, args.allow_remote)
    loopback = server.is_loopback(args.host)
    if not loopback:
        print(f"warning: {server.NO_AUTH.format(host=args.host, port=sock.getsockname()[1])}", file=sys.stderr)

    def ready(url: str) -> None:
        print(
            f"taxifare console: {url}  (runs {args.runs_root}, registry {args.registry}; Ctrl-C stops it)", flush=True
        )

    try:
        server.serve(sock, args.runs_root, args.registry, loopback_only=loopback, on_ready=ready)
    finally:
        sock.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ui",
        help="a local web console: runs, live DAGs, logs, comparisons, charts and the model registry",
        description="A read-only web console over the runs under --runs-root and the registry: a run started "
        "from the command line shows up while it runs. It listens on 127.0.0.1 only, unless --host and "
        "--allow-remote say otherwise (it has no authentication).",
    )
    p.add_argument("--port", type=_port, default=DEFAULT_PORT, help="the port to listen on (0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other than loopback, knowing the console has no authentication",
    )
    cli_args.add_runs_root(p)
    cli_args.add_registry(p)
    p.set_defaults(handler=_cmd_ui)
