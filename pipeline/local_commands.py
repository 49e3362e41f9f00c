"""`taxifare compile | run | runs | models`: the pipeline and the local registry."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import IO, Any

from pipeline.cli import UsageError, absolute
from pipeline.images import DEFAULT_IMAGE
from pipeline.machines import TrainingMachines
from trainer.features import CHAMPION_TOLERANCE, DEFAULTS

DEFAULT_RUNS_ROOT = "runs"
DEFAULT_REGISTRY = os.path.join("runs", "registry")


def _cmd_compile(args: argparse.Namespace) -> int:
    from pipeline import compiler

    out = compiler.compile_pipeline(args.out, target=args.target, image=args.image, machines=machines_from(args))
    print(f"wrote {out} (target {args.target}, image {args.image})")
    return 0


def add_image_and_machines(p: argparse.ArgumentParser) -> None:
    """Compile-time options: the image and the training step's Vertex AI machines."""
    m = TrainingMachines()
    p.add_argument("--image", default=DEFAULT_IMAGE, help="container image every step runs in")
    p.add_argument("--machine-type", default=m.machine_type, help="training machine type (vertex)")
    p.add_argument("--accelerator-type", default=m.accelerator_type, help="e.g. NVIDIA_TESLA_T4 (vertex)")
    p.add_argument("--accelerator-count", type=int, default=m.accelerator_count, help="accelerators per machine")
    p.add_argument("--replica-count", type=int, default=m.replica_count, help="training machines; >1: multi-worker")
    p.add_argument("--boot-disk-gb", type=int, default=m.boot_disk_size_gb, help="boot disk per training machine")
    p.add_argument("--training-service-account", default="", help="service account the training job runs as")


def machines_from(args: argparse.Namespace) -> TrainingMachines:
    try:
        return TrainingMachines(
            machine_type=args.machine_type,
            accelerator_type=args.accelerator_type,
            accelerator_count=args.accelerator_count,
            replica_count=args.replica_count,
            boot_disk_size_gb=args.boot_disk_gb,
            service_account=args.training_service_account,
        )
    except ValueError as err:
        raise UsageError(str(err)) from err


def _progress(stream: IO[str]) -> Callable[[Any], None]:
    """Task events to the terminal (kfp's own output goes to the run's log file)."""
    from pipeline import render

    def show(task: Any) -> None:
        if task.state == "running":
            stream.write(f"  … {task.name} started\n")
        else:
            stream.write("  " + render.task_line(task.name, task.state, task.seconds) + "\n")
        stream.flush()

    return show


def _data_params(args: argparse.Namespace, runs_root: str) -> dict:
    from pipeline import local_run

    separate = {"train": args.train_data, "valid": args.valid_data, "test": args.test_data}
    if args.data and any(separate.values()):
        raise UsageError("give --data (split by key) or --train-data/--valid-data/--test-data, not both")
    if any(separate.values()):
        if not all(separate.values()):
            raise UsageError("--train-data, --valid-data and --test-data go together")
        return {f"{split}_source": _files(f"--{split}-data", spec) for split, spec in separate.items()}
    if args.data:
        return {"source": _files("--data", args.data)}
    sample = local_run.sample_data(runs_root)
    print(f"data: generated sample in {sample} (use --data FILES for your own)")
    return {s + "_source": os.path.join(sample, f"{s}.csv") for s in ("train", "valid", "test")}


def _files(flag: str, spec: str) -> str:
    """Check that the files exist now (not inside a task later); local paths made absolute."""
    from trainer import sources

    try:
        files = sources.expand_paths(spec)
    except sources.DataError as err:
        raise UsageError(f"{flag}: {err}") from err
    return ",".join(f if "://" in f else absolute(f) for f in files)


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _tolerance(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline import local_run, render

    runs_root = absolute(args.runs_root)
    params = _data_params(args, runs_root)
    params.update(
        train_steps=args.train_steps,
        train_batch_size=args.train_batch_size,
        hidden_units=list(args.hidden_units),
        learning_rate=args.learning_rate,
        seed=args.seed,
        tolerance=args.tolerance,
    )
    print(f"running the taxifare pipeline locally (kfp local runner); registry {absolute(args.registry)}", flush=True)
    record = local_run.run(runs_root, args.registry, params, progress=_progress(sys.stdout))
    print()
    print(render.summary(record))
    return 0 if record["status"] == "succeeded" else 1


def _cmd_runs(args: argparse.Namespace) -> int:
    from pipeline import local_run, render

    runs_root = absolute(args.runs_root)
    if args.action == "list":
        print(render.runs_table(local_run.list_runs(runs_root)))
        return 0
    if not args.run_id:
        raise UsageError("taxifare runs show RUN_ID (see `taxifare runs list`)")
    try:
        record = local_run.load(runs_root, args.run_id)
    except FileNotFoundError as err:
        raise UsageError(str(err)) from err
    print(render.summary(record))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from pipeline import render
    from registry.local import LocalRegistry, RegistryError

    reg = LocalRegistry(absolute(args.registry))
    if args.action == "list":
        champion = reg.champion()
        print(render.models_table(reg.versions(), champion.name if champion else None))
        return 0
    if not args.version:
        raise UsageError("taxifare models promote VERSION (see `taxifare models list`)")
    try:
        version = reg.promote(args.version)
    except RegistryError as err:
        raise UsageError(str(err)) from err
    print(f"champion -> {version.name} (a running `taxifare serve` picks it up without a restart)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter

    p = sub.add_parser("compile", help="compile the pipeline to YAML", formatter_class=fmt)
    p.add_argument("--out", default="pipeline.yaml", help="output file")
    p.add_argument("--target", default="vertex", choices=("vertex", "local"), help="where training runs")
    add_image_and_machines(p)
    p.set_defaults(handler=_cmd_compile)

    p = sub.add_parser("run", help="run the whole pipeline locally (kfp local runner)", formatter_class=fmt)
    p.add_argument("--data", help="CSV file(s) to split by key: a file, glob or comma-separated list; "
                   "default: generated sample data")  # fmt: skip
    p.add_argument("--train-data", help="instead of --data: training CSV(s) as given")
    p.add_argument("--valid-data", help="with --train-data: validation CSV(s)")
    p.add_argument("--test-data", help="with --train-data: test CSV(s)")
    p.add_argument("--runs-root", default=DEFAULT_RUNS_ROOT, help="where runs are kept")
    p.add_argument("--registry", default=DEFAULT_REGISTRY, help="the local model registry (deploy target)")
    p.add_argument("--train-steps", type=_positive(int), default=DEFAULTS.train_steps)
    p.add_argument("--train-batch-size", type=_positive(int), default=DEFAULTS.train_batch_size)
    p.add_argument("--hidden-units", type=_positive(int), nargs="+", default=list(DEFAULTS.hidden_units))
    p.add_argument("--learning-rate", type=_positive(float), default=DEFAULTS.learning_rate)
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument(
        "--tolerance",
        type=_tolerance,
        default=CHAMPION_TOLERANCE,
        help="how much worse (relative RMSE) than the champion a candidate may be and still deploy",
    )
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser("runs", help="list runs, or show one run's DAG and results", formatter_class=fmt)
    p.add_argument("action", choices=("list", "show"))
    p.add_argument("run_id", nargs="?")
    p.add_argument("--runs-root", default=DEFAULT_RUNS_ROOT)
    p.set_defaults(handler=_cmd_runs)

    p = sub.add_parser("models", help="list registry versions, or promote one to champion", formatter_class=fmt)
    p.add_argument("action", choices=("list", "promote"))
    p.add_argument("version", nargs="?")
    p.add_argument("--registry", default=DEFAULT_REGISTRY)
    p.set_defaults(handler=_cmd_models)
