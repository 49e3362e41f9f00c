"""`taxifare tensorboard RUN_ID|latest`: TensorBoard on a local run's training logs, one command away."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from taxifare.cli import args as cli_args
from taxifare.errors import UsageError


def log_dir(record: dict) -> str:
    """The train step's TensorBoard artifact (train/ and eval/ event files) of a run record."""
    uri = ((record.get("tasks", {}).get("train-model", {}).get("outputs") or {}).get("tensorboard") or {}).get("uri")
    if not uri:
        raise UsageError(f"run {record['run_id']} has no TensorBoard logs (its train step did not finish)")
    return str(uri)


def _cmd_tensorboard(args: argparse.Namespace) -> int:
    from pipeline import local_run

    logs = log_dir(local_run.load(args.runs_root, args.run_id))
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
