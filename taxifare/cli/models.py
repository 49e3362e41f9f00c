"""`taxifare models list | show | history | promote`: the local registry's versions, its champion and
the champion's moves. `--json` gives the same as JSON (keys documented in the README)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from taxifare.cli import args as cli_args
from taxifare.errors import RegistryError

if TYPE_CHECKING:
    from taxifare.registry.local import LocalRegistry


def _champion(reg: LocalRegistry) -> str | None:
    """The champion's name, or None with a warning when aliases.json cannot be read (the list still shows)."""
    from taxifare.registry.local import CHAMPION

    try:
        return reg.aliases().get(CHAMPION)
    except RegistryError as err:
        print(f"warning: {err}", file=sys.stderr)
        return None


def _cmd_list(args: argparse.Namespace) -> int:
    """What is readable, and a mark and the reason on what is not (a damaged registry lists too)."""
    from taxifare.cli import render
    from taxifare.registry.local import LocalRegistry

    reg = LocalRegistry(args.registry)
    champion, versions = _champion(reg), reg.versions()
    if args.json:
        print(json.dumps([render.version_json(v, champion) for v in versions], indent=2))
    else:
        print(render.models_table(versions, champion))
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    """Only a version that serves becomes the champion: its files as registered, then the same serving
    check deploy runs (the model answers over HTTP through `taxifare serve`)."""
    from taxifare import deployment
    from taxifare.registry.local import LocalRegistry

    reg = LocalRegistry(args.registry)
    version = reg.get(args.version)
    reg.verify(version)
    deployment.check_servable(version.model_dir, "local", None)
    repaired = reg.set_alias("champion", version.name, reason=args.reason or "promoted by hand")
    if repaired:
        print(f"repaired: {repaired}; it now holds only the champion")
    print(f"champion -> {version.name} (a running `taxifare serve` picks it up without a restart)")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from taxifare.cli import render
    from taxifare.errors import UsageError
    from taxifare.registry.local import LocalRegistry
    from taxifare.runs import records

    reg = LocalRegistry(args.registry)
    version = reg.resolve(args.version)
    champion = _champion(reg)
    if args.json:
        print(json.dumps(render.version_json(version, champion), indent=2))
        return 0
    try:
        run = records.load(args.runs_root, str(version.metadata.get("run_id", "")))
    except UsageError:  # the run's record is elsewhere (another runs root, a cluster run)
        run = None
    print(render.version_details(version, champion, run))
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    from taxifare.cli import render
    from taxifare.registry import history
    from taxifare.registry.local import LocalRegistry

    moves, problems = LocalRegistry(args.registry).history()
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps([history.to_json(m) for m in moves], indent=2))
    else:
        print(render.history_table(moves))
    return 0


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON (stable keys, see the README) instead of a table")


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("models", help="list registry versions, show one, its champion's history, or promote one")
    actions = cli_args.subparsers(group, "action")
    p = actions.add_parser(
        "list", help="every version, its metrics, data and run; ★ marks the champion, ✘ a damaged one"
    )
    cli_args.add_registry(p)
    _add_json(p)
    p.set_defaults(handler=_cmd_list)
    p = actions.add_parser("show", help="one version: its run, data, parameters and metrics")
    p.add_argument("version", metavar="VERSION", help="a version name (v0003), `champion` or `latest`")
    cli_args.add_registry(p)
    cli_args.add_runs_root(p)
    _add_json(p)
    p.set_defaults(handler=_cmd_show)
    p = actions.add_parser("history", help="every move of the champion: when, by which run, from what to what, why")
    cli_args.add_registry(p)
    _add_json(p)
    p.set_defaults(handler=_cmd_history)
    p = actions.add_parser(
        "promote", help="make a version the champion (roll back or forward), once it serves; repairs aliases.json"
    )
    p.add_argument("version", metavar="VERSION", help="a version name, e.g. v0003 (see `taxifare models list`)")
    p.add_argument("--reason", default="", help="why, for the champion's history (default: promoted by hand)")
    cli_args.add_registry(p)
    p.set_defaults(handler=_cmd_promote)
