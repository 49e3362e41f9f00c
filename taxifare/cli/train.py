"""`taxifare train`: the trainer with the lab's flags (parsed by trainer.task itself: see taxifare.cli.main)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    # Listed here for --help; `taxifare train ...` goes to trainer.task before argparse sees it.
    sub.add_parser("train", help="train and export (the lab's flags; see `taxifare train --help`)", add_help=False)
