"""`taxifare setup`: the Cloud Storage bucket and its bucket-level access, idempotently."""

from __future__ import annotations

import argparse


def _cmd_setup(args: argparse.Namespace) -> int:
    from taxifare.cloud import access, setup

    endpoints = access.Endpoints(*(args.api_endpoint,) * 5) if args.api_endpoint else None
    report = setup.setup(args.project, args.region, args.bucket or "", args.service_account or "", grant=args.grant,
                         bigquery=args.bigquery, caller=args.caller, images=tuple(args.image),
                         tensorboard=args.tensorboard, endpoints=endpoints)  # fmt: skip
    for line in report.lines():
        print(line)
    print(f"bucket: gs://{report.bucket} (pipeline root gs://{report.bucket}/pipeline-root)")
    if report.tensorboard:
        print(
            f"tensorboard: {report.tensorboard} (taxifare submit --tensorboard {report.tensorboard.rsplit('/', 1)[-1]})"
        )
    if report.missing:
        print(f"{len(report.missing)} thing(s) the first run needs are missing: run the fixes above, or rerun with "
              "--grant (it grants exactly these, never Owner or Editor)")  # fmt: skip
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "setup",
        help="create the Cloud Storage bucket and grant bucket-level access (safe to rerun)",
    )
    p.add_argument("--project", required=True, help="Google Cloud project id")
    p.add_argument(
        "--region",
        required=True,
        help="Vertex AI region for the bucket (us-central1), or a multi-region (us, eu, asia)",
    )
    p.add_argument("--bucket", help="bucket name; default: the project id, as in the lab")
    p.add_argument(
        "--service-account",
        "--service_account",
        help="the account the pipeline runs as; default: the Compute Engine default service account",
    )
    p.add_argument(
        "--grant",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="enable the missing APIs and grant the missing roles (otherwise: check and say how)",
    )
    p.add_argument("--bigquery", action="store_true", help="the runs read from BigQuery: its API and job role too")
    p.add_argument(
        "--caller", default="", help="who submits runs, e.g. user:you@example.com (default: the credentials' account)"
    )
    p.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="URI",
        help="an image the runs use (--image, --gpu-image): kept in another project's Artifact Registry, Vertex AI's "
        "agents must be able to read it (repeatable)",
    )
    p.add_argument(
        "--tensorboard",
        default="",
        metavar="NAME",
        help="a Vertex AI TensorBoard instance with this display name, created in --region when missing (its id "
        "is what submit --tensorboard takes)",
    )
    p.add_argument("--api-endpoint", "--api_endpoint", default="", help=argparse.SUPPRESS)  # the tests' recorder
    p.set_defaults(handler=_cmd_setup)
