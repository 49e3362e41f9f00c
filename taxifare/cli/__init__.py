"""`taxifare`: one command line for training, the pipeline, the registry, serving and the cloud.

Each command group is a module with `register(subparsers)` and thin handlers over plain
functions; heavy imports (TensorFlow, kfp, the cloud SDKs) happen inside the handlers so
`taxifare --help` stays instant. Errors are handled here, once: a TaxifareError is one line
and its exit status (2 for usage, 1 for failures); a cloud SDK's refusal or an unreachable
host is one line; anything else is a bug and keeps its traceback (`--debug` shows them all).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from taxifare.cli import (
    args,
    compile,
    completion,
    models,
    params,
    predict,
    run,
    runs,
    sample_data,
    schedule,
    serve,
    setup,
    submit,
    targets,
    tensorboard,
    train,
    tune,
    ui,
)
from taxifare.errors import TaxifareError

COMMANDS = (
    train,
    tune,
    predict,
    sample_data,
    compile,
    run,
    params,
    runs,
    models,
    tensorboard,
    submit,
    schedule,
    serve,
    setup,
    ui,
    completion,
)


def version() -> str:
    """The installed package's version (the checkout's, for an editable install)."""
    from importlib import metadata

    try:
        return metadata.version("taxifare")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> args.Parser:
    parser = args.Parser(prog="taxifare", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--version", action="version", version=f"taxifare {version()}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for every error")
    parser.add_argument("--verbose", action="store_true", help="keep TensorFlow's own log messages")
    sub = args.subparsers(parser, "command")
    for module in COMMANDS:
        module.register(sub)
    parser.set_defaults(root_parser=parser)  # for `taxifare completion`, which describes the whole parser
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("--")), "")
    debug = "--debug" in (argv[: argv.index(first)] if first else argv)  # a global option: before the command
    try:  # argparse exits on bad flags and --help; a plain function returns the status instead
        if first == "train":
            # The trainer owns its flags (the lab's); argparse's REMAINDER would swallow them.
            from trainer import task

            rest = argv[argv.index("train") + 1 :]
            return task.main(rest + (["--verbose"] if "--verbose" in argv[: argv.index("train")] else []),
                             prog="taxifare train")  # fmt: skip
        parsed = build_parser().parse_args(argv)
        from trainer import logs

        logs.quiet_tensorflow(parsed.verbose, load=False)  # the tasks a command starts inherit it
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        return int(parsed.handler(parsed))
    except TaxifareError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `taxifare ... | head`: the reader has gone; nothing more to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush is quiet too
        return 141
    except Exception as err:
        message = targets.service_error(err)
        if message is None or debug:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
