"""`taxifare sample-data`: realistic synthetic trips, as CSV."""

from __future__ import annotations

import argparse
import os

from taxifare.cli import args as cli_args
from taxifare.errors import UsageError


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
    p = sub.add_parser("sample-data", help="write realistic synthetic train/valid/test CSVs")
    p.add_argument("--rows", type=int, default=20_000, help="rows in all, split 80/10/10")
    p.add_argument("--out", type=cli_args.path, required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0, help="same seed, same files")
    p.add_argument("--shards", type=int, default=1, help="files per split")
    p.set_defaults(handler=_cmd_sample_data)
