"""`taxifare`: one command line for training, the pipeline, the registry and serving.

Each subcommand is a thin shell over a plain function; heavy imports (TensorFlow, kfp)
happen inside the handlers so `taxifare --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A command-line mistake: printed as `error: ...` with exit status 2."""


def _cmd_train(args: argparse.Namespace) -> int:
    from trainer import task

    return task.main(args.trainer_args, prog="taxifare train")


def _cmd_predict(args: argparse.Namespace) -> int:
    from trainer import predict

    try:
        with open(args.json_instances) as f:
            instances = predict.read_json_lines(f)
    except FileNotFoundError as err:
        raise UsageError(f"--json-instances file not found: {args.json_instances}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"--json-instances {args.json_instances}: cannot read it as text ({err})") from err
    except predict.InstanceError as err:
        raise UsageError(f"{args.json_instances}: {err}") from err
    if args.endpoint:
        from serving import client

        try:
            predictions = client.predict(args.endpoint, instances)
        except client.EndpointError as err:
            raise UsageError(str(err)) from err
    elif args.model_dir:
        try:
            predictor = predict.Predictor(args.model_dir)
        except FileNotFoundError as err:
            raise UsageError(str(err)) from err
        except (OSError, ValueError) as err:
            raise UsageError(f"--model-dir {args.model_dir}: not a loadable SavedModel ({err})") from err
        predictions = predictor.predict_instances(instances)
    else:
        raise UsageError("give --model-dir DIR (a SavedModel) or --endpoint URL")
    for item in predictions:
        print(json.dumps(item))
    return 0


def _cmd_sample_data(args: argparse.Namespace) -> int:
    from trainer import sample_data

    if args.rows < 10:
        raise UsageError("--rows must be at least 10")
    if args.shards < 1:
        raise UsageError("--shards must be at least 1")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} is a file; give a directory")
    written = sample_data.write_splits(args.out, args.rows, args.seed, shards=args.shards)
    for split, paths in written.items():
        for path in paths:
            print(f"{split}\t{path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taxifare", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train and export (the lab's flags; see `taxifare train --help`)", add_help=False)
    p.add_argument("trainer_args", nargs=argparse.REMAINDER)
    p.set_defaults(handler=_cmd_train)

    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = sub.add_parser("predict", help="predict fares for JSON instances (one per line)", formatter_class=fmt)
    p.add_argument(
        "--json-instances", required=True, help="file with one JSON instance per line, as the lab's test.json"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--model-dir", help="a SavedModel export directory or a trainer --output_dir")
    where.add_argument(
        "--endpoint",
        help="a prediction server URL (taxifare serve) or projects/P/locations/R/endpoints/ID for Vertex AI",
    )
    p.set_defaults(handler=_cmd_predict)

    p = sub.add_parser("sample-data", help="write realistic synthetic train/valid/test CSVs", formatter_class=fmt)
    p.add_argument("--rows", type=int, default=20_000, help="rows in all, split 80/10/10")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0, help="same seed, same files")
    p.add_argument("--shards", type=int, default=1, help="files per split")
    p.set_defaults(handler=_cmd_sample_data)

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    from pipeline import commands

    return commands.REGISTER


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        # The trainer owns its flags (the lab's); argparse's REMAINDER would swallow them.
        from trainer import task

        return task.main(argv[1:], prog="taxifare train")
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        message = service_error(err)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1


def service_error(err: Exception) -> str | None:
    """A readable line for the errors cloud SDKs and HTTP clients raise, or None for a bug."""
    kind, module = type(err).__name__, type(err).__module__
    if kind == "DefaultCredentialsError":
        return (
            "no Google Cloud credentials: run `gcloud auth application-default login` "
            "or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file"
        )
    if module.startswith(("google.api_core", "google.auth")):
        return f"Google Cloud refused the request: {err}"
    if module.startswith(("urllib3", "requests")) or isinstance(err, ConnectionError):
        return f"cannot reach the server: {err}"
    return None


def absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


if __name__ == "__main__":
    sys.exit(main())
