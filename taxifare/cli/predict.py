"""`taxifare predict`: fares for instances, from a SavedModel or a prediction server."""

from __future__ import annotations

import argparse
import json
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


def register(sub: argparse._SubParsersAction) -> None:
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
