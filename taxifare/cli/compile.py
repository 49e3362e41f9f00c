"""`taxifare compile`: a pipeline compiled to YAML (no cloud account, no environment read)."""

from __future__ import annotations

import argparse

from taxifare.cli import args as cli_args


def _cmd_compile(args: argparse.Namespace) -> int:
    from pipeline import compiler, images

    machines = cli_args.machines_from(args)
    image = args.image or images.default(args.target)
    out = compiler.compile_pipeline(args.out, target=args.target, image=image, machines=machines,
                                    pipeline=args.pipeline, gpu_image=args.gpu_image)  # fmt: skip
    gpu = f", training image {args.gpu_image}" if args.gpu_image else ""
    print(f"wrote {out} ({args.pipeline} pipeline, target {args.target}, image {image}{gpu})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile a pipeline to YAML")
    p.add_argument("--out", type=cli_args.path, default="pipeline.yaml", help="output file")
    p.add_argument("--target", default="vertex", choices=("vertex", "local"), help="where training runs")
    cli_args.add_pipeline(p)
    cli_args.add_image(p, by_target=True, gpu=True)
    cli_args.add_machines(p)
    p.set_defaults(handler=_cmd_compile)
