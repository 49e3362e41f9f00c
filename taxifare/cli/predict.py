"""`taxifare predict`: fares for a table of trips (`--data`, batch), or for JSON instances from a
SavedModel or a prediction server (`--json-instances`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from functools import partial

from taxifare.cli import args as cli_args
from taxifare.errors import DataError, UsageError


def _cmd_predict(args: argparse.Namespace) -> int:
    if args.data:
        return _batch(args)
    if not args.json_instances:
        raise UsageError("nothing to predict", "give --data FILES --out FILE (a table of trips) or --json-instances")
    return _instances(args)


def _batch(args: argparse.Namespace) -> int:
    """Score the table: read, predict and write in blocks (memory stays flat), then say what was done."""
    import numpy as np

    from taxifare.batch import inputs, models, scoring
    from trainer import drift, logs
    from trainer.features import CENTER_LAT, CENTER_LON

    if args.json_instances or args.endpoint:
        raise UsageError("--data scores with a model here", "leave out --json-instances and --endpoint")
    if not args.out:
        raise UsageError("--data needs --out FILE: where the predictions go")
    paths = inputs.expand(args.data)
    chosen = models.local(args.model or args.model_dir or "", args.registry)
    logs.quiet_tensorflow(args.verbose)
    from trainer.predict import Predictor

    predictor = Predictor(chosen.model_dir)
    probe = np.array([[CENTER_LON, CENTER_LAT, CENTER_LON + 0.02, CENTER_LAT + 0.02, 1.0]], np.float32)
    predictor.predict(np.repeat(probe, 1 << 16, axis=0))  # warmed up at a block's size before the clock starts
    result = scoring.score(paths, args.out, predictor.predict, fmt=args.format, errors=args.errors or "",
                           input_format=args.input_format, reference=drift.load(chosen.model_dir),
                           threshold=args.drift_threshold, model=chosen.name)  # fmt: skip
    lines = result.summary() + drift.summary(result.drift, chosen.name)
    print("\n".join(lines))
    return 0


def _instances(args: argparse.Namespace) -> int:
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
    from trainer import settings
    from trainer.config import BATCH_FORMATS, BATCH_INPUT_FORMATS, Drift

    p = sub.add_parser("predict", help="predict fares: a table of trips (--data) or JSON instances")
    table = p.add_argument_group("a table of trips (batch)")
    table.add_argument(
        "--data",
        help="CSV (the lab's layout, or a header naming the columns; gzip too) or JSON lines: a file, glob or "
        "comma-separated list (local, gs://, https://), or - for standard input",
    )
    table.add_argument("--out", type=cli_args.path, help="the predictions: key and fare, in input order")
    table.add_argument("--format", choices=BATCH_FORMATS, default="", help="of --out (default: from its name; csv)")
    table.add_argument("--input-format", "--input_format", choices=BATCH_INPUT_FORMATS, default="auto",
                       help="of --data (auto: JSON lines if the data starts with '{')")  # fmt: skip
    table.add_argument("--errors", type=cli_args.path, default=None,
                       help="the rejected rows with their row number and reason (default: beside --out, "
                       "NAME.errors.csv)")  # fmt: skip
    table.add_argument(
        "--model", default="", help="a registry version (v0003) or an export folder (default: the --registry champion)"
    )
    cli_args.add_registry(table, help="the registry the champion (or --model VERSION) comes from")
    settings.add_options(table, settings.settings_of(Drift))
    p.add_argument(
        "--json-instances",
        "--json_instances",
        help="file with one JSON instance per line, as the lab's test.json (answers printed)",
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
