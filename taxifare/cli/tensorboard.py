"""`taxifare tensorboard RUN_ID|latest`: TensorBoard on a local run's training logs, one command away."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from typing import TYPE_CHECKING

from taxifare.cli import args as cli_args
from taxifare.errors import UsageError

if TYPE_CHECKING:
    from taxifare.runs.records import RunRecord


def log_dir(record: RunRecord) -> str:
    """The run's TensorBoard logs (an artifact with a log_dir: train/ and eval/ event files), inside its
    folder (a record is untrusted input: a path it names elsewhere is refused)."""
    root = os.path.realpath(record.folder)
    for task in record.tasks.values():
        for out in task.outputs.values():
            uri = out.get("uri") if isinstance(out, dict) and out.get("log_dir") else None
            if isinstance(uri, str) and os.path.realpath(uri).startswith(root + os.sep):
                return uri
    raise UsageError(f"run {record.run_id} has no TensorBoard logs (its train step did not finish)")


def _cmd_tensorboard(args: argparse.Namespace) -> int:
    from taxifare.runs import records

    logs = log_dir(records.load(args.runs_root, args.run_id))
    # This Python's own TensorBoard (an un-activated venv's bin/ is not on PATH).
    if importlib.util.find_spec("tensorboard") is None:
        raise UsageError("TensorBoard is not installed", "pip install 'taxifare[tensorboard]' (`make install` does)")
    print(f"tensorboard --logdir {logs}", flush=True)
    command = [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        logs,
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    # TensorBoard takes this process's place: a signal to it (SIGTERM, a closed terminal) stops
    # TensorBoard itself, where a child would outlive a parent killed that way.
    os.execv(sys.executable, command)
    return 0  # not reached


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tensorboard", help="TensorBoard on a run's training logs (loss and RMSE, train and eval)")
    p.add_argument("run_id", metavar="RUN_ID", help="a run id, a unique prefix of one, or `latest`")
    cli_args.add_runs_root(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    p.add_argument("--port", type=int, default=6006, help="port to bind; 0 picks a free one")
    p.set_defaults(handler=_cmd_tensorboard)
