"""`taxifare submit` and `taxifare schedule ...`: the compiled DAG on Vertex AI or Kubeflow."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

from pipeline.cli import UsageError
from pipeline.local_commands import DEFAULT_REGISTRY, DEFAULT_RUNS_ROOT, add_image_and_machines, machines_from
from trainer.features import DEFAULTS


def _target(args: argparse.Namespace):
    from pipeline import vertex

    missing = [f"--{n}" for n in ("project", "region", "bucket") if not getattr(args, n)]
    if missing:
        raise UsageError(f"Vertex AI needs {', '.join(missing)} (or --host URL for a Kubeflow Pipelines cluster)")
    try:
        return vertex.VertexTarget(
            args.project, args.region, args.bucket, args.service_account or "", args.api_endpoint
        )
    except vertex.CloudConfigError as err:
        raise UsageError(str(err)) from err


def _cron(args: argparse.Namespace) -> None:
    from pipeline import cron

    try:
        cron.parse(args.cron)
        cron.timezone(args.timezone)
    except cron.CronError as err:
        raise UsageError(f"--cron/--timezone: {err}") from err
    if args.max_concurrent < 1:
        raise UsageError("--max-concurrent must be at least 1")
    if args.max_runs is not None and args.max_runs < 1:
        raise UsageError("--max-runs must be at least 1")


def _parameters(args: argparse.Namespace, bucket: str | None, target: Any = None) -> dict[str, Any]:
    """Pipeline parameters: data, then defaults for where it deploys, then any --param."""
    params: dict[str, Any] = {}
    if target is not None:
        # On Vertex AI the model goes to its Model Registry and an endpoint in the same region.
        params.update(deploy_target="vertex", project=target.project, region=target.region)
    params.update(
        serving_container=args.serving_container,
        serving_machine_type=args.serving_machine_type,
        serving_min_replicas=args.serving_min_replicas,
        serving_max_replicas=args.serving_max_replicas,
        deploy_timeout=args.deploy_timeout,
    )
    data = args.data
    if data:
        local = [p for p in data.split(",") if "://" not in p]
        if local:
            if not bucket:
                raise UsageError("local --data needs --bucket to upload to (or pass gs:// paths)")
            from cloud import staging

            data = staging.stage_local_data(data, bucket, project=getattr(args, "project", None))
            print(f"data: {data}")
        params["source"] = data
    for item in args.param or []:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"--param {item!r}: expected NAME=VALUE")
        params[key] = _literal(value)
    if "source" not in params and not any(k.endswith("_source") or k.startswith("bq_") for k in params):
        raise UsageError("no data: give --data (gs:// or local files to upload) or --param bq_table=...")
    params.setdefault("train_steps", args.train_steps)
    return params


def _host_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """On a Kubeflow cluster a pod's disk is gone after the run: deployment must name a lasting place."""
    params = _parameters(args, args.bucket)
    if params.get("deploy_target") != "vertex" and not str(params.get("registry", "")).startswith("/"):
        raise UsageError(
            "on a Kubeflow cluster, say where blessed models go: --param deploy_target=vertex "
            "--param project=P --param region=R, or --param registry=/path/on/a/shared/volume"
        )
    return params


def _literal(value: str) -> Any:
    import json

    try:
        return json.loads(value)
    except ValueError:
        return value


def _compile(args: argparse.Namespace, target: str) -> str:
    from pipeline import compiler

    out = os.path.join(tempfile.mkdtemp(prefix="taxifare-"), "pipeline.yaml")
    return compiler.compile_pipeline(out, target=target, image=args.image, machines=machines_from(args))


def _cmd_submit(args: argparse.Namespace) -> int:
    from pipeline import vertex

    caching = None if args.cache else False
    if args.host:
        params = _host_parameters(args)
        run_id, url = vertex.kfp_submit(args.host, _compile(args, "local"), params, caching, args.experiment)
        print(f"submitted run {run_id}\n{url}")
        return 0
    target = _target(args)
    params = _parameters(args, target.bucket, target)
    job, url = vertex.submit(target, _compile(args, "vertex"), params, caching, labels=_labels(args))
    print(f"submitted {job.resource_name}\nDAG: {url}")
    if not args.wait:
        return 0
    state = vertex.wait(job, print, poll_seconds=args.poll_seconds)
    print(f"run ended: {state}")
    return 0 if state == "PIPELINE_STATE_SUCCEEDED" else 1


def _labels(args: argparse.Namespace) -> dict[str, str]:
    labels = {}
    for item in args.label or []:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"--label {item!r}: expected KEY=VALUE")
        labels[key] = value
    return labels


def _cmd_schedule(args: argparse.Namespace) -> int:
    from pipeline import vertex

    if args.action == "run-local":
        return _run_local_schedule(args)
    if args.action == "create":
        if not args.cron:
            raise UsageError("schedule create needs --cron, e.g. --cron '0 3 * * 1'")
        _cron(args)
        caching = None if args.cache else False
        if args.host:
            if args.max_runs is not None:
                raise UsageError("--max-runs is not supported by Kubeflow recurring runs; leave it out with --host")
            if args.timezone != "UTC":
                raise UsageError("Kubeflow recurring runs read cron in UTC: convert the time and leave out --timezone")
            params = _host_parameters(args)
            run = vertex.kfp_schedule(args.host, _compile(args, "local"), params, args.cron, args.max_concurrent,
                                      caching, args.experiment)  # fmt: skip
            print(f"created recurring run {getattr(run, 'recurring_run_id', run)} on {args.host}")
            return 0
        target = _target(args)
        params = _parameters(args, target.bucket, target)
        schedule = vertex.create_schedule(target, _compile(args, "vertex"), params, args.cron, args.timezone,
                                          args.max_concurrent, args.max_runs, caching)  # fmt: skip
        print(f"created {schedule.resource_name}: '{args.cron}' ({args.timezone})")
        return 0
    if args.host:
        return _kfp_schedule_action(args)
    target = _target(args)
    if args.action == "list":
        for s in vertex.list_schedules(target):
            print(f"{s.resource_name}\t{s.display_name}\t{getattr(s.state, 'name', s.state)}\t{s.cron}")
        return 0
    if not args.schedule_id:
        raise UsageError(f"schedule {args.action} needs SCHEDULE_ID (see `taxifare schedule list`)")
    vertex.schedule_action(target, args.schedule_id, args.action)
    print(f"{args.action}d {args.schedule_id}" if args.action != "delete" else f"deleted {args.schedule_id}")
    return 0


def _kfp_schedule_action(args: argparse.Namespace) -> int:
    from pipeline import vertex

    if args.action == "list":
        for run in vertex.kfp_list_schedules(args.host):
            cron = getattr(getattr(getattr(run, "trigger", None), "cron_schedule", None), "cron", "")
            print(f"{run.recurring_run_id}\t{run.display_name}\t{run.status}\t{cron}")
        return 0
    if not args.schedule_id:
        raise UsageError(f"schedule {args.action} needs RECURRING_RUN_ID (see `taxifare schedule list --host ...`)")
    vertex.kfp_schedule_action(args.host, args.schedule_id, args.action)
    print(f"{args.action}d {args.schedule_id}" if args.action != "delete" else f"deleted {args.schedule_id}")
    return 0


def _run_local_schedule(args: argparse.Namespace) -> int:
    from pipeline import cron, local_run, render, scheduler
    from pipeline.local_commands import _data_params

    if not args.cron:
        raise UsageError("schedule run-local needs --cron, e.g. --cron '*/30 * * * *'")
    _cron(args)
    runs_root = os.path.abspath(args.runs_root)

    def run_once() -> str:
        params = {**_data_params(args, runs_root), "train_steps": args.train_steps}
        record = local_run.run(runs_root, args.registry, params)
        print(render.runs_table([record]).splitlines()[-1], flush=True)
        return str(record["status"])

    scheduler.run_schedule(
        cron.parse(args.cron),
        cron.timezone(args.timezone),
        run_once,
        lock_path=os.path.join(runs_root, ".scheduler.lock"),
        log=lambda m: print(m, flush=True),
        max_runs=args.max_runs,
        sleep=time.sleep,
    )
    return 0


def _cloud_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", help="Google Cloud project id")
    p.add_argument("--region", help="Vertex AI region, e.g. us-central1")
    p.add_argument("--bucket", help="bucket for the pipeline root (gs://BUCKET/pipeline-root) and uploaded data")
    p.add_argument("--service-account", help="service account the pipeline runs as")
    p.add_argument("--api-endpoint", default="", help="override the Vertex AI API endpoint (regional/private)")
    p.add_argument("--host", help="submit to this Kubeflow Pipelines host instead of Vertex AI")
    p.add_argument("--experiment", default="taxifare", help="Kubeflow experiment (with --host)")


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="gs:// CSV glob(s), or local files to upload to the bucket first")
    p.add_argument("--param", action="append", help="any pipeline parameter as NAME=VALUE (JSON values)")
    p.add_argument("--label", action="append", help="run label KEY=VALUE")
    p.add_argument("--train-steps", type=int, default=DEFAULTS.train_steps)
    p.add_argument(
        "--cache",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="let Vertex AI / Kubeflow reuse unchanged steps' outputs (--no-cache: run every step)",
    )
    add_image_and_machines(p)
    from registry import vertex

    g = p.add_argument_group("serving (deploy_target=vertex)")
    g.add_argument(
        "--serving-container",
        choices=vertex.SERVING_CONTAINERS,
        default="custom",
        help="custom: the pipeline image runs `taxifare serve` (the server the tests run); "
        "prebuilt: Vertex AI's TF2 container (TF Serving " + vertex.SERVING_TF_VERSION.replace("-", ".") + ")",
    )
    g.add_argument("--serving-machine-type", default=vertex.DEFAULT_MACHINE_TYPE, help="the endpoint's machine type")
    g.add_argument("--serving-min-replicas", type=int, default=1, help="fewest serving machines")
    g.add_argument("--serving-max-replicas", type=int, default=1, help="most serving machines (autoscaling)")
    g.add_argument(
        "--deploy-timeout",
        type=float,
        default=vertex.DEFAULT_DEPLOY_TIMEOUT,
        help="seconds each deploy operation (upload, deploy, undeploy) may take",
    )


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = sub.add_parser("submit", help="run the pipeline on Vertex AI Pipelines (or a Kubeflow host)",
                       formatter_class=fmt)  # fmt: skip
    _cloud_args(p)
    _run_args(p)
    p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=False, help="follow the run to its end")
    p.add_argument("--poll-seconds", type=float, default=20.0, help=argparse.SUPPRESS)
    p.set_defaults(handler=_cmd_submit)

    p = sub.add_parser("schedule", help="recurring retraining: create|list|pause|resume|delete|run-local",
                       formatter_class=fmt)  # fmt: skip
    p.add_argument("action", choices=("create", "list", "pause", "resume", "delete", "run-local"))
    p.add_argument("schedule_id", nargs="?")
    p.add_argument("--cron", help="five-field cron, e.g. '0 3 * * 1' (Mondays 03:00)")
    p.add_argument("--timezone", default="UTC", help="IANA time zone the cron is read in")
    p.add_argument("--max-concurrent", type=int, default=1, help="runs of this schedule at once")
    p.add_argument("--max-runs", type=int, help="stop after this many runs")
    p.add_argument("--runs-root", default=DEFAULT_RUNS_ROOT, help="run-local: where runs are kept")
    p.add_argument("--registry", default=DEFAULT_REGISTRY, help="run-local: the local registry")
    p.add_argument("--train-data", help=argparse.SUPPRESS)
    p.add_argument("--valid-data", help=argparse.SUPPRESS)
    p.add_argument("--test-data", help=argparse.SUPPRESS)
    _cloud_args(p)
    _run_args(p)
    p.set_defaults(handler=_cmd_schedule)
