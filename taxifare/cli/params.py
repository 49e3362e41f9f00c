"""`taxifare params`: a pipeline's parameters, their defaults and what they do."""

from __future__ import annotations

import argparse

from taxifare.cli import args as cli_args


def _cmd_params(args: argparse.Namespace) -> int:
    import pipeline

    for s in pipeline.get(args.pipeline).parameters():
        default = " ".join(map(str, s.default)) if s.is_list else s.default
        print(f"{s.name:<22} {default!s:<16} {s.help}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("params", help="list a pipeline's parameters, their defaults and what they do")
    cli_args.add_pipeline(p)
    p.set_defaults(handler=_cmd_params)
