"""`taxifare runs list | show`: the local runs and their records."""

from __future__ import annotations

import argparse

from taxifare.cli import args as cli_args


def _cmd_list(args: argparse.Namespace) -> int:
    from taxifare.cli import render
    from taxifare.runs import records

    print(render.runs_table(records.list_runs(args.runs_root)))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from taxifare.cli import render
    from taxifare.runs import records

    print(render.summary(records.load(args.runs_root, args.run_id)))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from taxifare.report import run as run_report
    from taxifare.runs import records

    print(run_report.write(records.load(args.runs_root, args.run_id), args.out))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("runs", help="list local runs, or show one run's DAG and results")
    actions = cli_args.subparsers(group, "action")
    p = actions.add_parser("list", help="every run, newest first: status, time, candidate RMSE, decision")
    cli_args.add_runs_root(p)
    p.set_defaults(handler=_cmd_list)
    p = actions.add_parser("show", help="one run's DAG with each task's state, time, outputs and metrics")
    p.add_argument("run_id", metavar="RUN_ID", help="a run id, a unique prefix of one, or `latest`")
    cli_args.add_runs_root(p)
    p.set_defaults(handler=_cmd_show)
    p = actions.add_parser("report", help="write one self-contained HTML page: the DAG, evaluation, lineage")
    p.add_argument("run_id", metavar="RUN_ID", help="a run id, a unique prefix of one, or `latest`")
    p.add_argument("--out", type=cli_args.path, help="where to write it (default: report.html in the run's folder)")
    cli_args.add_runs_root(p)
    p.set_defaults(handler=_cmd_report)
