"""`taxifare run`: a pipeline run on this machine with kfp's local runner, shown as it goes."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from taxifare.cli import args as cli_args
from taxifare.errors import UsageError

LOCAL_RESERVED = {
    "registry": "give --registry",
    "deploy_target": "a local run deploys to its --registry; `taxifare submit` deploys to Vertex AI",
    "run_id": "each run gets its own id (`taxifare runs list` shows them)",
}


def run_params(args: argparse.Namespace) -> dict[str, Any]:
    """`taxifare run`'s (and `schedule run-local`'s) pipeline parameters, checked before anything starts."""
    import pipeline

    if args.pipeline == "batch":
        return batch_params(args)
    given = cli_args.params_from(args, cli_args.hparam_names(), LOCAL_RESERVED)  # before any sample is written
    given.update(reused_hparams(args, given))
    values = {
        **cli_args.data_params(args, args.runs_root),
        **given,
        "registry": args.registry,
        "deploy_target": "local",
    }
    return dict(pipeline.get(args.pipeline).check(values))


def reused_hparams(args: argparse.Namespace, given: dict[str, Any]) -> dict[str, Any]:
    """--hparams: an earlier study's best settings (they replace the hyperparameter flags)."""
    if not getattr(args, "hparams", ""):
        return {}
    if given.get("tune_trials"):
        raise UsageError("--hparams reuses a study's best; --tune-trials runs a new one: give one of them")
    from taxifare.tuning import reuse

    values, where = reuse.resolve(args.hparams, args.runs_root)
    print(f"hyperparameters: {where}: " + " ".join(f"{k}={_shown(v)}" for k, v in values.items()), flush=True)
    return values


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def batch_params(args: argparse.Namespace) -> dict[str, Any]:
    """The batch pipeline's: --data is what it scores (default: the sample data's test split), --registry
    where the champion comes from, --drift-threshold when it is flagged; the rest by --param."""
    from pipeline import batch

    if args.train_data or args.valid_data or args.test_data:
        raise UsageError("the batch pipeline scores one input", "give it with --data FILES")
    given = cli_args.params_from(args, ["drift_threshold"], {"registry": "give --registry"})
    if given.get("output") and getattr(args, "runner", "") == "container":
        raise UsageError("the image cannot write to a local output file", "leave out output: the predictions stay "
                         "in the run's score-batch artifact (`taxifare runs show` says where)")  # fmt: skip
    values = {**given, "registry": args.registry}
    if "input" not in given:
        values["input"] = cli_args.files("--data", args.data) if args.data else _sample_trips(args.runs_root)
    return dict(batch.check(values))


def _sample_trips(runs_root: str) -> str:
    from taxifare.runs import local

    trips = os.path.join(local.sample_data(runs_root), "test.csv")
    print(f"data: the generated sample's test split, {trips} (use --data FILES for your own)")
    return trips


def _cmd_run(args: argparse.Namespace) -> int:
    from taxifare.cli import live, render
    from taxifare.report import run as run_report
    from taxifare.runs import local

    with local.preparing(args.runs_root, args.runner, args.image) as prepared:  # warming up while we check
        values = run_params(args)
        print(f"running the taxifare {args.pipeline} pipeline locally (kfp local runner); registry {args.registry}",
              flush=True)  # fmt: skip
        if args.runner == "container":
            print(f"every step in {args.image} (as its non-root user), through kfp's DockerRunner", flush=True)
        shown = live.watcher(sys.stdout)  # kfp's own output goes to the run's log file
        try:
            record = local.run(args.runs_root, values, shown, image=args.image, pipeline=args.pipeline,
                               prepared=prepared)  # fmt: skip
        finally:
            shown.close()
    run_report.write(record)
    print()
    print(render.summary(record))
    return 0 if str(record.status) == "succeeded" else 1


def add_run_options(p: argparse.ArgumentParser) -> None:
    """What a local pipeline run takes: data, hyperparameters, the gate, registry and runs folders, --param."""
    cli_args.add_pipeline(p)
    cli_args.add_data(p, local_only=True)
    cli_args.add_hparams(p)
    cli_args.add_tuning(p)
    p.add_argument(
        "--hparams",
        default="",
        metavar="best|ID|FILE",
        help="train with an earlier study's best: best (the newest study's), a study or run id, or a JSON file",
    )
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
    p = sub.add_parser("run", help="run a pipeline locally (kfp local runner)")
    add_run_options(p)
    p.set_defaults(handler=_cmd_run)
