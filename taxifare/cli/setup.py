"""`taxifare setup`: the Cloud Storage bucket and its bucket-level access, idempotently."""

from __future__ import annotations

import argparse


def _cmd_setup(args: argparse.Namespace) -> int:
    from taxifare.cloud import setup

    report = setup.setup(args.project, args.region, args.bucket or "", args.service_account or "")
    for line in report.lines():
        print(line)
    print(f"bucket: gs://{report.bucket} (pipeline root gs://{report.bucket}/pipeline-root)")
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
    p.set_defaults(handler=_cmd_setup)
