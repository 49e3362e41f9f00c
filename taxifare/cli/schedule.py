"""`taxifare schedule create | list | pause | resume | delete | run-local`: recurring retraining.

On Vertex AI (or a Kubeflow host with --host), or `run-local`: a foreground scheduler that
runs the local pipeline on the cron. Cron and time zone are checked before any request.
"""

from __future__ import annotations

import argparse
import os
import time

from taxifare.cli import args as cli_args
from taxifare.cli import run, targets
from taxifare.errors import UsageError


def _add_cron(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("when")
    g.add_argument("--cron", required=True, help="five-field cron, e.g. '0 3 * * 1' (Mondays 03:00)")
    g.add_argument("--timezone", default="UTC", help="IANA time zone the cron is read in")
    g.add_argument("--max-runs", "--max_runs", type=int, help="stop after this many runs (default: no limit)")


def _check_cron(args: argparse.Namespace) -> None:
    from taxifare.runs import cron

    cron.parse(args.cron)
    cron.timezone(args.timezone)
    if getattr(args, "max_concurrent", 1) < 1:
        raise UsageError(f"--max-concurrent must be at least 1, got {args.max_concurrent}")
    if args.max_runs is not None and args.max_runs < 1:
        raise UsageError(f"--max-runs must be at least 1, got {args.max_runs}")


def _cmd_create(args: argparse.Namespace) -> int:
    from taxifare.cloud import submit

    _check_cron(args)
    caching = None if args.cache else False
    labels = targets.labels_from(args)
    targets.check_target_flags(args)
    targets.check_image(args)
    if args.host:
        if args.max_runs is not None:
            raise UsageError("--max-runs is not supported by Kubeflow recurring runs", "leave it out with --host")
        if args.timezone != "UTC":
            raise UsageError("Kubeflow recurring runs read cron in UTC", "convert the time and leave out --timezone")
        values = targets.run_params(args, None, recurring=True)
        with targets.compiled(args, "local", values) as spec:
            kubeflow = targets.kubeflow_from(args)
            experiment = args.experiment or targets.KUBEFLOW_EXPERIMENT
            run = submit.kfp_schedule(kubeflow, spec, values, args.cron, args.max_concurrent, caching, experiment)
        print(f"created recurring run {getattr(run, 'recurring_run_id', run)} on {args.host}")
        return 0
    if args.experiment:
        raise UsageError(
            "--experiment: a Vertex AI schedule creates its runs itself, and cannot put them in an experiment",
            "leave it out (submit --experiment puts a run in one)",
        )
    target = targets.target_from(args)
    values = targets.run_params(args, target, recurring=True)
    with targets.compiled(args, "vertex", values) as spec:
        name = "taxifare-batch" if args.pipeline == "batch" else "taxifare-retrain"
        schedule = submit.create_schedule(target, spec, values, args.cron, args.timezone, args.max_concurrent,
                                          args.max_runs, caching, labels=labels, display_name=name)  # fmt: skip
    print(f"created {schedule.resource_name}: '{args.cron}' ({args.timezone})")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from taxifare.cloud import submit

    if args.host:
        for run in submit.kfp_list_schedules(targets.kubeflow_from(args)):
            cron = getattr(getattr(getattr(run, "trigger", None), "cron_schedule", None), "cron", "")
            print(f"{run.recurring_run_id}\t{run.display_name}\t{run.status}\t{cron}")
        return 0
    for s in submit.list_schedules(targets.target_from(args)):
        print(f"{s.resource_name}\t{s.display_name}\t{getattr(s.state, 'name', s.state)}\t{s.cron}")
    return 0


def _cmd_action(args: argparse.Namespace) -> int:
    from taxifare.cloud import submit

    if args.host:
        submit.kfp_schedule_action(targets.kubeflow_from(args), args.schedule_id, args.action)
    else:
        submit.schedule_action(targets.target_from(args), args.schedule_id, args.action)
    print(f"{args.action}d {args.schedule_id}" if args.action != "delete" else f"deleted {args.schedule_id}")
    return 0


def _cmd_run_local(args: argparse.Namespace) -> int:
    from taxifare.cli import render
    from taxifare.runs import cron, local, scheduler

    _check_cron(args)
    run.run_params(args)  # every flag checked now, not at the first run

    def run_once() -> str:
        record = local.run(args.runs_root, run.run_params(args), None, args.runner, args.image, args.pipeline)
        print(render.runs_table([record]).splitlines()[-1], flush=True)
        return str(record.status)

    scheduler.run_schedule(
        cron.parse(args.cron),
        cron.timezone(args.timezone),
        run_once,
        lock_path=os.path.join(args.runs_root, ".scheduler.lock"),
        log=lambda m: print(m, flush=True),
        max_runs=args.max_runs,
        sleep=time.sleep,
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("schedule", help="recurring retraining on Vertex AI, Kubeflow, or this machine")
    actions = cli_args.subparsers(group, "action")

    p = actions.add_parser("create", help="retrain on a cron on Vertex AI (or a Kubeflow host)")
    _add_cron(p)
    p.add_argument("--max-concurrent", "--max_concurrent", type=int, default=1, help="runs of this schedule at once")
    targets.add_target(p)
    targets.add_run(p)
    p.set_defaults(handler=_cmd_create)

    p = actions.add_parser("list", help="the schedules (recurring runs) and their state")
    targets.add_target(p, runs=False)
    p.set_defaults(handler=_cmd_list)

    for action, what in (("pause", "pause"), ("resume", "resume"), ("delete", "delete")):
        p = actions.add_parser(action, help=f"{what} a schedule")
        p.add_argument("schedule_id", metavar="SCHEDULE_ID", help="see `taxifare schedule list`")
        targets.add_target(p, runs=False)
        p.set_defaults(handler=_cmd_action)

    p = actions.add_parser("run-local", help="run the local pipeline on a cron, in the foreground, one at a time")
    _add_cron(p)
    run.add_run_options(p)
    p.set_defaults(handler=_cmd_run_local)
