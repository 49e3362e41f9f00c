"""`python -m trainer.task`: the lab's command line over train.train_and_evaluate."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from taxifare.errors import TaxifareError, UsageError
from trainer import logs, settings

if TYPE_CHECKING:
    from trainer.train import TrainConfig


def build_parser(prog: str = "python -m trainer.task") -> argparse.ArgumentParser:
    from trainer.config import HParams, RunOptions

    p = argparse.ArgumentParser(
        prog=prog, description="Train the taxi-fare model and export a SavedModel (the lab's flags)."
    )
    p.add_argument(
        "--train_data_paths",
        "--train-data-paths",
        required=True,
        help="training CSV: a file, a glob, or a comma-separated list; local paths, gs:// or https://",
    )
    p.add_argument("--eval_data_paths", "--eval-data-paths", required=True, help="evaluation CSV, in the same forms")
    p.add_argument(
        "--output_dir",
        "--output-dir",
        help="where checkpoints, tensorboard/, export/exporter/<timestamp>/ and metrics.json go (default: --job-dir)",
    )
    p.add_argument(
        "--job-dir",
        "--job_dir",
        dest="job_dir",
        help="accepted as on Cloud ML Engine; the output when --output_dir is absent",
    )
    settings.add_options(p.add_argument_group("hyperparameters"), settings.settings_of(HParams), lab_first=True)
    settings.add_options(p.add_argument_group("run"), settings.settings_of(RunOptions), lab_first=True)
    p.add_argument("--verbose", action="store_true", help="keep TensorFlow's own log messages (start-up, checkpoints)")
    return p


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> TrainConfig:
    """Flags plus the directories Vertex AI sets for custom jobs (AIP_*)."""
    from trainer import train

    output_dir = args.output_dir or args.job_dir
    if not output_dir and environ.get("AIP_MODEL_DIR"):
        # A Vertex AI tuning trial: each trial's AIP_MODEL_DIR is its own (<base>/<trial>/model).
        output_dir = os.path.dirname(environ["AIP_MODEL_DIR"].rstrip("/"))
    if not output_dir:
        raise UsageError("no output directory", "give --output_dir (or --job-dir): where to write the model")
    values = {s.name: getattr(args, s.name) for s in settings.settings_of(train.TrainConfig)}
    values["hidden_units"] = tuple(values["hidden_units"])
    return train.TrainConfig(
        train_data_paths=args.train_data_paths,
        eval_data_paths=args.eval_data_paths,
        output_dir=output_dir,
        model_dir=environ.get("AIP_MODEL_DIR") or None,
        checkpoint_dir=environ.get("AIP_CHECKPOINT_DIR") or None,
        tensorboard_dir=environ.get("AIP_TENSORBOARD_LOG_DIR") or None,
        **values,
    ).check()


def main(argv: Sequence[str] | None = None, prog: str = "python -m trainer.task") -> int:
    args = build_parser(prog).parse_args(argv)
    logs.quiet_tensorflow(args.verbose)
    try:
        cfg = config_from_args(args, os.environ)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
        from trainer import train, tuning_metric

        # A Vertex AI tuning trial also reports its metric (cloudml-hypertune) after each evaluation.
        say = logging.getLogger("trainer.train").info
        on_progress = tuning_metric.reporter(say) if tuning_metric.active(os.environ) else None
        result = train.train_and_evaluate(cfg, on_progress=on_progress)
    except TaxifareError as err:  # what the user can fix; anything else is a bug and keeps its traceback
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(json.dumps({k: result[k] for k in ("rmse", "mae", "steps", "examples_per_sec", "export_dir")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
