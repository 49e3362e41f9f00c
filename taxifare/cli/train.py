"""`taxifare train | predict | sample-data`: the trainer, predictions from a model, synthetic data."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from functools import partial

from taxifare.cli import args as cli_args
from taxifare.errors import DataError, UsageError


def _cmd_predict(args: argparse.Namespace) -> int:
    """Read, predict and print BATCH_LINES instances at a time: memory stays flat however long the file."""
    from trainer import predict

    if not args.endpoint and not args.model_dir:
        raise UsageError("no model", "give --model-dir DIR (a SavedModel) or --endpoint URL")
    try:
        f = open(args.json_instances, encoding="utf-8")  # noqa: SIM115 - closed below
    except FileNotFoundError as err:
        raise UsageError(f"--json-instances {args.json_instances}: no such file") from err
    except OSError as err:
        raise DataError(f"--json-instances {args.json_instances}: cannot read it ({err})") from err
    with f:
        answer: Callable[[list], list]
        if args.endpoint:
            from taxifare.serving import client

            answer = partial(client.predict, args.endpoint)
        else:
            from trainer import logs

            logs.quiet_tensorflow(args.verbose)
            answer = predict.Predictor(args.model_dir).predict_instances
        try:
            for chunk in predict.iter_json_lines(f):
                sys.stdout.write("".join(json.dumps(item, allow_nan=False) + "\n" for item in answer(chunk)))
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"--json-instances {args.json_instances}: cannot read it as UTF-8 text ({err})") from err
        except DataError as err:
            raise DataError(f"{args.json_instances}: {err}") from err
    return 0


def _cmd_sample_data(args: argparse.Namespace) -> int:
    from trainer import sample_data

    if args.rows < 10:
        raise UsageError(f"--rows must be at least 10, got {args.rows}")
    if args.shards < 1:
        raise UsageError(f"--shards must be at least 1, got {args.shards}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} is a file", "give a directory")
    written = sample_data.write_splits(args.out, args.rows, args.seed, shards=args.shards)
    for split, paths in written.items():
        for path in paths:
            print(f"{split}\t{path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    # Parsed by trainer.task itself (see taxifare.cli.main); listed here for --help.
    sub.add_parser("train", help="train and export (the lab's flags; see `taxifare train --help`)", add_help=False)

    p = sub.add_parser("predict", help="predict fares for JSON instances (one per line)")
    p.add_argument(
        "--json-instances",
        "--json_instances",
        required=True,
        help="file with one JSON instance per line, as the lab's test.json",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--model-dir",
        "--model_dir",
        type=cli_args.saved_model,
        help="a SavedModel export directory or a trainer --output_dir",
    )
    where.add_argument(
        "--endpoint",
        help="a prediction server URL (taxifare serve) or projects/P/locations/R/endpoints/ID for Vertex AI",
    )
    p.set_defaults(handler=_cmd_predict)

    p = sub.add_parser("sample-data", help="write realistic synthetic train/valid/test CSVs")
    p.add_argument("--rows", type=int, default=20_000, help="rows in all, split 80/10/10")
    p.add_argument("--out", type=cli_args.path, required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0, help="same seed, same files")
    p.add_argument("--shards", type=int, default=1, help="files per split")
    p.set_defaults(handler=_cmd_sample_data)
