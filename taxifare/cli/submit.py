"""`taxifare submit`: a pipeline on Vertex AI Pipelines or a Kubeflow Pipelines host."""

from __future__ import annotations

import argparse

from taxifare.cli import targets


def _cmd_submit(args: argparse.Namespace) -> int:
    from taxifare.cloud import submit

    caching = None if args.cache else False
    labels = targets.labels_from(args)
    if args.experiment and not args.host:
        from taxifare.cloud import experiments

        experiments.check_name(args.experiment)
    targets.check_target_flags(args)
    targets.check_image(args)
    if args.host:
        values = targets.run_params(args, None)
        kubeflow = targets.kubeflow_from(args)
        with targets.compiled(args, "local", values) as spec:
            run_id, url = submit.kfp_submit(
                kubeflow, spec, values, caching, args.experiment or targets.KUBEFLOW_EXPERIMENT
            )
        print(f"submitted run {run_id}\n{url}")
        return 0
    target = targets.target_from(args)
    values = targets.run_params(args, target)
    with targets.compiled(args, "vertex", values) as spec:
        job, url = submit.submit(target, spec, values, caching, labels=labels, experiment=args.experiment)
    print(f"submitted {job.resource_name}\nDAG: {url}")
    if args.experiment:
        print(submit.join_experiment(target, job, args.experiment))
    if not args.wait:
        return 0
    state = submit.wait(job, print, poll_seconds=args.poll_seconds)
    print(f"run ended: {state}")
    return 0 if state == "PIPELINE_STATE_SUCCEEDED" else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="run the pipeline on Vertex AI Pipelines (or a Kubeflow host)")
    targets.add_target(p)
    targets.add_run(p)
    p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=False, help="follow the run to its end")
    p.add_argument("--poll-seconds", type=float, default=20.0, help=argparse.SUPPRESS)
    p.set_defaults(handler=_cmd_submit)
