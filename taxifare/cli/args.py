"""The options the commands share, each defined once, and a parser that suggests what was meant.

Groups: data (`--data` or `--train-data/--valid-data/--test-data`), hyperparameters (from
trainer.config.HParams), the gate, the registry and runs folders, the cloud target, the
training machines, serving and `--param`. Paths are normalised one way (`path`).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

from taxifare.errors import UsageError

DEFAULT_RUNS_ROOT = "runs"
DEFAULT_REGISTRY = os.path.join("runs", "registry")


def path(text: str) -> str:
    """Every local path flag means the same thing everywhere: `~` expanded, made absolute."""
    return os.path.abspath(os.path.expanduser(text))


class _Help(argparse.HelpFormatter):
    """Every option's help ends with its default (once), unless it has none worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = "(default:" in text or "%(default)" in text
        if shown or action.default in (None, False, [], argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that name the fix: the nearest option or command for a typo."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)
        self.set_defaults(_parser=self)  # the deepest (sub)command parsed names itself in the result

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        """Unknown options are reported by the subcommand that was given them, with its usage and a hint."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            getattr(parsed, "_parser", self).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def error(self, message: str) -> NoReturn:
        hint = self._suggest(message)
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}{hint}\n")

    def _suggest(self, message: str) -> str:
        if m := re.match(r"unrecognized arguments: (.+)", message):
            options = [o for a in self._actions for o in a.option_strings]
            for word in m.group(1).split():
                near = difflib.get_close_matches(word.split("=")[0], options, n=1)
                if word.startswith("-") and near:
                    return f" (did you mean {near[0]}?)"
        if m := re.match(r"argument \S+: invalid choice: '([^']*)' \(choose from (.+)\)", message):
            choices = [c.strip(" '") for c in m.group(2).split(",")]
            near = difflib.get_close_matches(m.group(1), choices, n=1)
            if near:
                return f" (did you mean {near[0]}?)"
        return ""


def subparsers(parser: argparse.ArgumentParser, dest: str) -> Any:
    return parser.add_subparsers(dest=dest, required=True, metavar="COMMAND", parser_class=Parser)


def add_data(p: argparse.ArgumentParser, local_only: bool = False) -> None:
    g = p.add_argument_group("data")
    where = "local files" if local_only else "local files (uploaded to --bucket first) or gs:// paths"
    g.add_argument("--data", help=f"CSV to split by key: a file, glob or comma-separated list of {where}")
    for split, what in (("train", "training"), ("valid", "validation"), ("test", "test")):
        g.add_argument(
            f"--{split}-data", f"--{split}_data", dest=f"{split}_data", help=f"instead of --data: {what} CSV"
        )


def add_pipeline(p: argparse._ActionsContainer) -> None:
    from pipeline import PIPELINES

    p.add_argument("--pipeline", choices=PIPELINES, default=PIPELINES[0], help="which pipeline")


def add_hparams(p: argparse.ArgumentParser) -> None:
    from pipeline.params import hparams
    from trainer import settings

    settings.add_options(p.add_argument_group("hyperparameters"), hparams())


def add_tuning(p: argparse.ArgumentParser) -> None:
    """The pipeline's tuning stage: --tune-trials N (0: off), --tune-parallel-trials."""
    from trainer import settings
    from trainer.config import Tuning

    settings.add_options(p.add_argument_group("tuning"), settings.settings_of(Tuning))


def add_gate(p: argparse.ArgumentParser) -> None:
    from trainer import settings
    from trainer.config import Drift, Gate

    settings.add_options(p.add_argument_group("gate"), settings.settings_of(Gate) + settings.settings_of(Drift))


def add_registry(p: argparse._ActionsContainer, help: str = "the local model registry") -> None:
    p.add_argument("--registry", type=path, default=path(DEFAULT_REGISTRY), help=help)


def add_runs_root(p: argparse._ActionsContainer) -> None:
    p.add_argument("--runs-root", "--runs_root", type=path, default=path(DEFAULT_RUNS_ROOT), help="where runs are kept")


def add_params(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any pipeline parameter (see `taxifare params`); JSON values, e.g. --param bq_sample=1000",
    )


def params_from(
    args: argparse.Namespace, names: list[str], reserved: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The flags among `names` that the parser knows, then every --param (which wins).

    `reserved`: parameters this command sets itself, each with what to do instead; a --param naming
    one is refused rather than silently replaced."""
    values = {n: getattr(args, n) for n in names if hasattr(args, n)}
    values = {n: list(v) if isinstance(v, tuple) else v for n, v in values.items()}  # list flags: hidden_units, ...
    for item in getattr(args, "param", None) or []:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise UsageError(f"--param {item!r}: expected NAME=VALUE", "e.g. --param train_steps=5000")
        if reserved and name in reserved:
            raise UsageError(f"--param {name}: this command sets it", reserved[name])
        values[name] = _literal(value)
    return values


def _literal(value: str) -> Any:
    import json

    try:
        return json.loads(value)
    except ValueError:
        return value


def hparam_names() -> list[str]:
    """The options `add_hparams` and `add_gate` define, by parameter name."""
    from pipeline.params import PIPELINE_HPARAMS
    from trainer import settings
    from trainer.config import Gate, Tuning

    return [
        *PIPELINE_HPARAMS,
        *(s.name for s in settings.settings_of(Tuning)),
        *(s.name for s in settings.settings_of(Gate)),
        "drift_threshold",
    ]


def add_image(p: argparse._ActionsContainer, by_target: bool = False, gpu: bool = False) -> None:
    """--image (every step, and serving); with `gpu`, --gpu-image (the training step alone, on GPUs).
    `by_target`: the default depends on --target (compile: vertex names a placeholder to replace)."""
    from pipeline.images import DEFAULT_IMAGE, PLACEHOLDER_IMAGE

    what = "container image every step runs in (and that serves)"
    if by_target:
        what += f" (default: {DEFAULT_IMAGE} for --target local, the placeholder {PLACEHOLDER_IMAGE} for vertex)"
    p.add_argument("--image", default="" if by_target else DEFAULT_IMAGE, help=what)
    if gpu:
        p.add_argument(
            "--gpu-image",
            "--gpu_image",
            default="",
            help="TensorFlow's CUDA build (make image GPU=1) for the training step alone, with --accelerator-type: "
            "the other steps and the endpoint keep --image",
        )


def add_machines(p: argparse.ArgumentParser) -> None:
    """The training step's Vertex AI machines (a compile-time choice)."""
    from pipeline.machines import TrainingMachines

    m = TrainingMachines()
    g = p.add_argument_group("training machines (Vertex AI)")
    g.add_argument("--machine-type", "--machine_type", default=m.machine_type, help="training machine type")
    g.add_argument("--accelerator-type", "--accelerator_type", default=m.accelerator_type, help="e.g. NVIDIA_TESLA_T4")
    g.add_argument(
        "--accelerator-count", "--accelerator_count", type=int, default=m.accelerator_count, help="per machine"
    )
    g.add_argument(
        "--replica-count", "--replica_count", type=int, default=m.replica_count, help="machines; >1: multi-worker"
    )
    g.add_argument("--boot-disk-gb", "--boot_disk_gb", type=int, default=m.boot_disk_size_gb, help="per machine")


def machines_from(args: argparse.Namespace) -> Any:
    from pipeline.machines import TrainingMachines

    return TrainingMachines(
        machine_type=args.machine_type,
        accelerator_type=args.accelerator_type,
        accelerator_count=args.accelerator_count,
        replica_count=args.replica_count,
        boot_disk_size_gb=args.boot_disk_gb,
    )


def data_params(args: argparse.Namespace, runs_root: str | None = None) -> dict[str, Any]:
    """--data or the three split flags as pipeline parameters; local files checked now, made absolute.

    With neither and a `runs_root`, generated sample data (written once under it).
    """
    separate = {"train": args.train_data, "valid": args.valid_data, "test": args.test_data}
    if args.data and any(separate.values()):
        raise UsageError("give --data (split by key) or --train-data/--valid-data/--test-data, not both")
    if any(separate.values()):
        if not all(separate.values()):
            missing = ", ".join(f"--{k}-data" for k, v in separate.items() if not v)
            raise UsageError(f"--train-data, --valid-data and --test-data go together (missing {missing})")
        return {f"{split}_source": files(f"--{split}-data", spec) for split, spec in separate.items()}
    if args.data:
        return {"source": files("--data", args.data)}
    if runs_root is None:
        return {}
    from taxifare.runs import local

    sample = local.sample_data(runs_root)
    print(f"data: generated sample in {sample} (use --data FILES for your own)")
    return {s + "_source": os.path.join(sample, f"{s}.csv") for s in ("train", "valid", "test")}


def files(flag: str, spec: str) -> str:
    """Local files must exist now (not inside a task later), made absolute; remote ones pass as they are
    (listing a bucket needs credentials: the pipeline's stage_data does it)."""
    from trainer import data_files

    out = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if "://" in part:
            out.append(part)
            continue
        try:
            out.extend(path(f) for f in data_files.expand_paths(part))
        except UsageError as err:  # it names the pattern; say which flag it came from
            raise UsageError(f"{flag}: {err.message}", err.fix) from err
    if not out:
        raise UsageError(f"{flag}: no path given", "pass a file, a glob or a comma-separated list")
    return ",".join(out)


def saved_model(text: str) -> str:
    """A --model-dir: an export directory, a trainer --output_dir (its newest export), or a gs:// folder."""
    if text.startswith("gs://"):
        return text  # fetched (and checked) by the server in the background
    from trainer.predict import resolve_model_dir

    try:
        return resolve_model_dir(path(text))
    except UsageError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
