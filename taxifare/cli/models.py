"""`taxifare models list | promote`: the local registry's versions and its champion."""

from __future__ import annotations

import argparse
import sys

from taxifare.cli import args as cli_args
from taxifare.errors import RegistryError


def _cmd_list(args: argparse.Namespace) -> int:
    """What is readable, and a mark and the reason on what is not (a damaged registry lists too)."""
    from taxifare.cli import render
    from taxifare.registry.local import CHAMPION, LocalRegistry

    reg = LocalRegistry(args.registry)
    try:
        champion = reg.aliases().get(CHAMPION)
    except RegistryError as err:
        champion = None
        print(f"warning: {err}", file=sys.stderr)
    print(render.models_table(reg.versions(), champion))
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    from taxifare.registry.local import LocalRegistry

    reg = LocalRegistry(args.registry)
    repaired = reg.set_alias("champion", args.version)
    if repaired:
        print(f"repaired: {repaired}; it now holds only the champion")
    version = reg.get(args.version)
    print(f"champion -> {version.name} (a running `taxifare serve` picks it up without a restart)")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from taxifare.cli import render
    from taxifare.errors import UsageError
    from taxifare.registry.local import LocalRegistry
    from taxifare.runs import records

    reg = LocalRegistry(args.registry)
    version = reg.get(args.version)
    champion = reg.champion()
    try:
        run = records.load(args.runs_root, version.metadata.get("run_id", ""))
    except UsageError:  # the run's record is elsewhere (another runs root, a cluster run)
        run = None
    print(render.version_details(version, champion.name if champion else None, run))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("models", help="list registry versions, or promote one to champion")
    actions = cli_args.subparsers(group, "action")
    p = actions.add_parser(
        "list", help="every version, its metrics, data and run; ★ marks the champion, ✘ a damaged one"
    )
    cli_args.add_registry(p)
    p.set_defaults(handler=_cmd_list)
    p = actions.add_parser("show", help="one version: its run, data, parameters and metrics")
    p.add_argument("version", metavar="VERSION", help="a version name, e.g. v0003 (see `taxifare models list`)")
    cli_args.add_registry(p)
    cli_args.add_runs_root(p)
    p.set_defaults(handler=_cmd_show)
    p = actions.add_parser("promote", help="make a version the champion (roll back or forward); repairs aliases.json")
    p.add_argument("version", metavar="VERSION", help="a version name, e.g. v0003 (see `taxifare models list`)")
    cli_args.add_registry(p)
    p.set_defaults(handler=_cmd_promote)
