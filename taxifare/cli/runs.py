"""`taxifare runs list | show | report`: the local runs and their records. `--json` on list and show
gives the same as JSON (keys documented in the README)."""

from __future__ import annotations

import argparse
import json

from taxifare.cli import args as cli_args


def _cmd_list(args: argparse.Namespace) -> int:
    from taxifare.cli import render
    from taxifare.runs import records, summary

    runs = records.list_runs(args.runs_root)
    if args.json:
        print(json.dumps([summary.to_json(r) for r in runs], indent=2))
    else:
        print(render.runs_table(runs))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from taxifare.cli import render
    from taxifare.runs import records

    record = records.load(args.runs_root, args.run_id)
    if args.json:
        print(json.dumps({**records.to_dict(record), "folder": record.folder}, indent=2))
    else:
        print(render.summary(record))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from taxifare.report import run as run_report
    from taxifare.runs import records

    print(run_report.write(records.load(args.runs_root, args.run_id), args.out))
    return 0


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON (stable keys, see the README) instead of a table")


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("runs", help="list local runs, or show one run's DAG and results")
    actions = cli_args.subparsers(group, "action")
    p = actions.add_parser("list", help="every run, newest first: status, time, candidate RMSE, decision")
    cli_args.add_runs_root(p)
    _add_json(p)
    p.set_defaults(handler=_cmd_list)
    p = actions.add_parser("show", help="one run's DAG with each task's state, time, outputs and metrics")
    p.add_argument("run_id", metavar="RUN_ID", help="a run id, a unique prefix of one, or `latest`")
    cli_args.add_runs_root(p)
    _add_json(p)
    p.set_defaults(handler=_cmd_show)
    p = actions.add_parser("report", help="write one self-contained HTML page: the DAG, evaluation, lineage")
    p.add_argument("run_id", metavar="RUN_ID", help="a run id, a unique prefix of one, or `latest`")
    p.add_argument("--out", type=cli_args.path, help="where to write it (default: report.html in the run's folder)")
    cli_args.add_runs_root(p)
    p.set_defaults(handler=_cmd_report)
