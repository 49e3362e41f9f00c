"""`taxifare compile`: a pipeline compiled to YAML (no cloud account, no environment read)."""

from __future__ import annotations

import argparse

from taxifare.cli import args as cli_args


def _cmd_compile(args: argparse.Namespace) -> int:
    from pipeline import compiler

    machines = cli_args.machines_from(args)
    out = compiler.compile_pipeline(args.out, target=args.target, image=args.image, machines=machines,
                                    pipeline=args.pipeline)  # fmt: skip
    print(f"wrote {out} ({args.pipeline} pipeline, target {args.target}, image {args.image})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile a pipeline to YAML")
    p.add_argument("--out", type=cli_args.path, default="pipeline.yaml", help="output file")
    p.add_argument("--target", default="vertex", choices=("vertex", "local"), help="where training runs")
    cli_args.add_pipeline(p)
    cli_args.add_image(p)
    cli_args.add_machines(p)
    p.set_defaults(handler=_cmd_compile)
