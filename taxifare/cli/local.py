"""`taxifare compile | run | params`: the pipeline compiled, run on this machine, and its parameters."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from taxifare.cli import args as cli_args


def _cmd_compile(args: argparse.Namespace) -> int:
    from pipeline import compiler

    machines = cli_args.machines_from(args)
    out = compiler.compile_pipeline(args.out, target=args.target, image=args.image, machines=machines)
    print(f"wrote {out} (target {args.target}, image {args.image})")
    return 0


LOCAL_RESERVED = {
    "registry": "give --registry",
    "deploy_target": "a local run deploys to its --registry; `taxifare submit` deploys to Vertex AI",
    "run_id": "each run gets its own id (`taxifare runs list` shows them)",
}


def run_params(args: argparse.Namespace) -> dict[str, Any]:
    """`taxifare run`'s (and `schedule run-local`'s) pipeline parameters, checked before anything starts."""
    from pipeline import params

    given = cli_args.params_from(args, cli_args.hparam_names(), LOCAL_RESERVED)  # before any sample is written
    values = {
        **cli_args.data_params(args, args.runs_root),
        **given,
        "registry": args.registry,
        "deploy_target": "local",
    }
    return params.check(values)


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline import local_run
    from taxifare.cli import live, render

    values = run_params(args)
    print(f"running the taxifare pipeline locally (kfp local runner); registry {values['registry']}", flush=True)
    if args.runner == "container":
        print(f"every step in {args.image} (as its non-root user), through kfp's DockerRunner", flush=True)
    shown = live.watcher(sys.stdout)  # kfp's own output goes to the run's log file
    try:
        record = local_run.run(args.runs_root, values, shown, runner=args.runner, image=args.image)
    finally:
        shown.close()
    from taxifare.report import run as run_report

    run_report.write(record)
    print()
    print(render.summary(record))
    return 0 if record["status"] == "succeeded" else 1


def _cmd_params(args: argparse.Namespace) -> int:
    from pipeline import params

    for s in params.all_settings():
        default = " ".join(map(str, s.default)) if s.is_list else s.default
        print(f"{s.name:<22} {default!s:<16} {s.help}")
    return 0


def add_run_options(p: argparse.ArgumentParser) -> None:
    """What a local pipeline run takes: data, hyperparameters, the gate, registry and runs folders, --param."""
    cli_args.add_data(p, local_only=True)
    cli_args.add_hparams(p)
    cli_args.add_gate(p)
    g = p.add_argument_group("where")
    cli_args.add_runs_root(g)
    cli_args.add_registry(g, help="the local model registry (deploy target)")
    cli_args.add_params(p)
    g = p.add_argument_group("how")
    g.add_argument(
        "--runner",
        choices=("subprocess", "container"),
        default="subprocess",
        help="subprocess: each step a process of this Python; container: each step's own command in --image "
        "(Docker, or podman started for the run)",
    )
    cli_args.add_image(g)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile the pipeline to YAML")
    p.add_argument("--out", type=cli_args.path, default="pipeline.yaml", help="output file")
    p.add_argument("--target", default="vertex", choices=("vertex", "local"), help="where training runs")
    cli_args.add_image(p)
    cli_args.add_machines(p)
    p.set_defaults(handler=_cmd_compile)

    p = sub.add_parser("run", help="run the whole pipeline locally (kfp local runner)")
    add_run_options(p)
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser("params", help="list the pipeline's parameters, their defaults and what they do")
    p.set_defaults(handler=_cmd_params)
