"""`python -m trainer.task`: the lab's command line over train.train_and_evaluate."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from trainer.features import DEFAULTS

if TYPE_CHECKING:
    from trainer.train import TrainConfig


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def build_parser(prog: str = "python -m trainer.task") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train the taxi-fare model and export a SavedModel (the lab's flags).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--train_data_paths",
        required=True,
        help="training CSV: a file, a glob, or a comma-separated list; local paths, gs:// or https://",
    )
    p.add_argument("--eval_data_paths", required=True, help="evaluation CSV, in the same forms")
    p.add_argument(
        "--output_dir",
        help="where checkpoints, tensorboard/, export/exporter/<timestamp>/ and metrics.json go "
        "(defaults to --job-dir)",
    )
    p.add_argument(
        "--job-dir",
        "--job_dir",
        dest="job_dir",
        help="accepted as on Cloud ML Engine; the output when --output_dir is absent",
    )
    p.add_argument(
        "--train_steps",
        type=_positive_int,
        default=DEFAULTS.train_steps,
        help="optimizer steps in total (a rerun resumes up to this)",
    )
    p.add_argument(
        "--train_batch_size", type=_positive_int, default=DEFAULTS.train_batch_size, help="examples per step"
    )
    p.add_argument(
        "--eval_steps",
        type=_non_negative_int,
        default=DEFAULTS.eval_steps,
        help="evaluate on this many batches of 8192 rows; 0 = the whole eval set",
    )
    p.add_argument(
        "--hidden_units",
        type=_positive_int,
        nargs="+",
        default=list(DEFAULTS.hidden_units),
        help="sizes of the hidden layers, space-separated, e.g. --hidden_units 64 16 4",
    )
    p.add_argument(
        "--learning_rate",
        type=float,
        default=DEFAULTS.learning_rate,
        help="AdamW peak learning rate (cosine-decayed to 0)",
    )
    p.add_argument("--weight_decay", type=float, default=DEFAULTS.weight_decay, help="AdamW decoupled weight decay")
    p.add_argument(
        "--huber_delta",
        type=float,
        default=DEFAULTS.huber_delta,
        help="fare error ($) past which the loss grows linearly",
    )
    p.add_argument(
        "--seed", type=int, default=DEFAULTS.seed, help="seed for initialisation and shuffling: same seed, same model"
    )
    p.add_argument(
        "--max_bad_fraction",
        type=_fraction,
        default=DEFAULTS.max_bad_fraction,
        help="fail when a file has a larger share of invalid rows",
    )
    p.add_argument(
        "--checkpoint_every",
        type=_non_negative_int,
        default=0,
        help="steps between checkpoints/evaluations; 0 = about ten per run",
    )
    p.add_argument(
        "--input_mode",
        choices=("auto", "memory", "stream"),
        default="auto",
        help="hold training data in memory, or stream it from the files (auto: stream above 2 GiB)",
    )
    return p


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> TrainConfig:
    """Flags plus the directories Vertex AI sets for custom jobs (AIP_*)."""
    from trainer import train

    output_dir = args.output_dir or args.job_dir
    if not output_dir:
        raise SystemExit("error: give --output_dir (or --job-dir): where to write the model")
    return train.TrainConfig(
        train_data_paths=args.train_data_paths,
        eval_data_paths=args.eval_data_paths,
        output_dir=output_dir,
        train_steps=args.train_steps,
        train_batch_size=args.train_batch_size,
        eval_steps=args.eval_steps,
        hidden_units=tuple(args.hidden_units),
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        huber_delta=args.huber_delta,
        seed=args.seed,
        max_bad_fraction=args.max_bad_fraction,
        checkpoint_every=args.checkpoint_every,
        input_mode=args.input_mode,
        model_dir=environ.get("AIP_MODEL_DIR") or None,
        checkpoint_dir=environ.get("AIP_CHECKPOINT_DIR") or None,
        tensorboard_dir=environ.get("AIP_TENSORBOARD_LOG_DIR") or None,
    )


def main(argv: Sequence[str] | None = None, prog: str = "python -m trainer.task") -> int:
    args = build_parser(prog).parse_args(argv)
    cfg = config_from_args(args, os.environ)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    from trainer import sources, train

    try:
        result = train.train_and_evaluate(cfg)
    except sources.DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ValueError as err:  # settings that do not fit the data or an earlier run's checkpoint
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({k: result[k] for k in ("rmse", "mae", "steps", "examples_per_sec", "export_dir")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
