"""The options of the commands that send a pipeline to the cloud (`submit`, `schedule`): where it
runs (Vertex AI or a Kubeflow host), what it runs (data, parameters, image, machines), and their checks.

Everything a user can get wrong (names, region, parameters and their values, data paths) is
checked before credentials are looked up or any request is sent.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from taxifare.cli import args as cli_args
from taxifare.errors import UsageError

KUBEFLOW_EXPERIMENT = "taxifare"
# Options only Vertex AI acts on: refused with --host rather than ignored.
VERTEX_ONLY = ("service_account", "label", "wait", "gpu_image", "notify_emails", "tensorboard", "encryption_key",
               "network")  # fmt: skip


def add_target(p: argparse.ArgumentParser, runs: bool = True) -> None:
    """Where: Vertex AI (project, region, bucket) or a Kubeflow host, and who runs it."""
    g = p.add_argument_group("Vertex AI")
    g.add_argument("--project", help="Google Cloud project id")
    g.add_argument("--region", help="Vertex AI region, e.g. us-central1")
    g.add_argument("--bucket", help="bucket for the pipeline root (gs://BUCKET/pipeline-root) and uploaded data")
    g.add_argument("--api-endpoint", "--api_endpoint", default="", help="the Vertex AI API endpoint (regional/private)")
    if runs:
        g.add_argument(
            "--service-account",
            "--service_account",
            default="",
            help="the account the pipeline job and its training custom job run as (see `taxifare setup`)",
        )
    k = p.add_argument_group("Kubeflow Pipelines (--host)")
    k.add_argument("--host", help="a Kubeflow Pipelines host URL instead of Vertex AI")
    k.add_argument("--namespace", default="kubeflow", help="the Kubeflow namespace (multi-user clusters: yours)")
    k.add_argument(
        "--token",
        default="",
        help="an existing bearer token, sent as it is; behind Identity-Aware Proxy an OIDC ID token whose audience is "
        "the proxy's client id, e.g. $(gcloud auth print-identity-token --impersonate-service-account=SA "
        "--audiences=CLIENT_ID --include-email) (an access token is refused by IAP)",
    )
    k.add_argument(
        "--client-id",
        "--client_id",
        default="",
        help="behind Identity-Aware Proxy: the proxy's OAuth client id; kfp gets ID tokens for it from your "
        "service account's credentials (for a user: also KF_PIPELINES_APP_OAUTH2_CLIENT_ID/_SECRET)",
    )
    k.add_argument("--sa-token-path", "--sa_token_path", default="", help="a service-account token file (in a pod)")
    if runs:
        p.add_argument(
            "--experiment",
            default="",
            help="Vertex AI: the Vertex AI Experiments experiment the run joins, with its parameters and metrics "
            f"(created when missing); Kubeflow: the experiment (default there: {KUBEFLOW_EXPERIMENT})",
        )
        k.add_argument(
            "--pipeline-root",
            "--pipeline_root",
            default="",
            help="where artifacts go (default: gs://BUCKET/pipeline-root with --bucket, else the cluster's default)",
        )
        k.add_argument(
            "--registry-pvc",
            "--registry_pvc",
            default="",
            help="a PersistentVolumeClaim holding the local registry: mounted on evaluate and deploy",
        )


def _kubeflow_root(args: argparse.Namespace) -> str:
    """--pipeline-root, else gs://BUCKET/pipeline-root with --bucket, else "" (the cluster's default)."""
    return getattr(args, "pipeline_root", "") or (f"gs://{args.bucket}/pipeline-root" if args.bucket else "")


def _check_sign_in(args: argparse.Namespace) -> None:
    signs_in = [flag for flag, on in (("--token", args.token), ("--client-id", args.client_id),
                                      ("--sa-token-path", args.sa_token_path)) if on]  # fmt: skip
    if len(signs_in) > 1:
        raise UsageError(f"{' and '.join(signs_in)}: give one way to sign in to the Kubeflow host")


def kubeflow_from(args: argparse.Namespace) -> Any:
    from taxifare.cloud import submit

    _check_sign_in(args)
    root = _kubeflow_root(args)
    if hasattr(args, "pipeline_root") and not root:
        print("pipeline root: the cluster's default (give --pipeline-root or --bucket to choose one)")
    return submit.KubeflowTarget(args.host, args.namespace, args.token, args.sa_token_path, root, args.client_id)


def add_run(p: argparse.ArgumentParser) -> None:
    """What a cloud run takes: data, hyperparameters, the gate, serving, --param, labels, caching, image, machines."""
    from trainer import settings
    from trainer.config import DeployTarget

    cli_args.add_pipeline(p)
    cli_args.add_data(p)
    cli_args.add_hparams(p)
    cli_args.add_tuning(p)
    cli_args.add_gate(p)
    serving = [s for s in settings.settings_of(DeployTarget) if s.name.startswith(("serving_", "deploy_timeout"))]
    settings.add_options(p.add_argument_group("serving (deploy_target=vertex)"), serving)
    from trainer.config import Notify, VertexJob

    settings.add_options(p.add_argument_group("when a run fails (an exit handler)"), settings.settings_of(Notify))
    settings.add_options(p.add_argument_group("Vertex AI: TensorBoard, encryption, network"),
                         settings.settings_of(VertexJob))  # fmt: skip
    cli_args.add_params(p)
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="a run label")
    p.add_argument(
        "--cache",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="let Vertex AI / Kubeflow reuse a step's outputs where the step allows it. Off, and no step of the "
        "training pipeline allows it: stage_data, evaluate and deploy read what changes between runs (new rows, "
        "the champion), and train's inputs are the splits stage_data writes anew every run",
    )
    cli_args.add_image(p, gpu=True)
    from pipeline.images import ACCELERATORS

    p.add_argument(
        "--image-accelerator",
        "--image_accelerator",
        choices=ACCELERATORS,
        default="",
        help="what the training image (--gpu-image) was built for, when no podman or docker here has it (read "
        "from its label otherwise)",
    )
    cli_args.add_machines(p)


def target_from(args: argparse.Namespace) -> Any:
    """The Vertex AI target, its names checked (the region against the SDK's list) before any credentials."""
    from taxifare.cloud import submit

    missing = [f"--{n}" for n in ("project", "region", "bucket") if not getattr(args, n)]
    if missing:
        raise UsageError(f"Vertex AI needs {', '.join(missing)}", "or give --host URL for a Kubeflow Pipelines cluster")
    account = getattr(args, "service_account", "")
    return submit.VertexTarget(args.project, args.region, args.bucket, account, args.api_endpoint)


def check_image(args: argparse.Namespace) -> None:
    """Images the cloud can pull, TensorFlow's CUDA build for training on GPUs and the CPU build for every other
    step and for serving (so only training pulls the CUDA image): before any request."""
    from pipeline import images

    where = "a Kubeflow cluster" if args.host else "Vertex AI"
    images.check_pullable(args.image, where)
    cli_args.machines_from(args)  # the machines' own checks
    if args.accelerator_type and not args.gpu_image:
        raise UsageError(
            f"--accelerator-type {args.accelerator_type} needs the training image as --gpu-image (TensorFlow's CUDA "
            "build): with one image, every step and the CPU endpoint would pull the multi-GB CUDA image",
            "pass the CPU image as --image and the GPU one as --gpu-image (make image GPU=1 IMAGE=...-gpu && "
            "make push IMAGE=...-gpu)",
        )
    if args.gpu_image:
        if not args.accelerator_type:
            raise UsageError(
                f"--gpu-image {args.gpu_image} without --accelerator-type: training would pull the CUDA image and "
                "run on CPUs",
                "give --accelerator-type and --accelerator-count, or leave out --gpu-image",
            )
        images.check_pullable(args.gpu_image, where, "--gpu-image")
    images.check_accelerators(images.for_training(args.image, args.gpu_image), args.accelerator_type,
                              args.image_accelerator)  # fmt: skip


def _reserved(args: argparse.Namespace, target: Any, recurring: bool) -> dict[str, str]:
    """The parameters this submission sets itself (a --param naming one is refused), and instead what."""
    reserved: dict[str, str] = {}
    if target is not None:
        reserved.update(
            deploy_target="runs on Vertex AI deploy to its Model Registry and endpoint (or use --host)",
            project="give --project",
            region="give --region",
            service_account="give --service-account (the pipeline job and its training job run as it)",
        )
    if getattr(args, "registry_pvc", ""):
        reserved["registry"] = "--registry-pvc keeps the registry at the claim's mount"
    if target is not None:
        for name in ("encryption_key", "network"):
            flag = "--" + name.replace("_", "-")
            reserved[name] = f"give {flag} (the pipeline job itself takes it too)"
    if recurring:
        reserved["run_id"] = "every scheduled run needs its own (the default: the pipeline job's name)"
    return reserved


def check_target_flags(args: argparse.Namespace) -> None:
    """Flags only Vertex AI acts on, refused with --host rather than ignored."""
    if not args.host:
        return
    _check_sign_in(args)
    given = ["--" + name.replace("_", "-") for name in VERTEX_ONLY if getattr(args, name, None)]
    if given:
        raise UsageError(
            f"{', '.join(given)}: Vertex AI only, not with --host",
            "leave them out (on Kubeflow the pipeline runs as the namespace's service account: see --namespace)",
        )


def run_params(args: argparse.Namespace, target: Any, recurring: bool = False) -> dict[str, Any]:
    """The run's parameters, checked; then local --data uploaded to the bucket (the first request)."""
    from pipeline import training

    if getattr(args, "pipeline", "training") == "batch":
        return batch_params(args, target, recurring)
    names = [*cli_args.hparam_names(), "serving_container", "serving_machine_type", "serving_min_replicas",
             "serving_max_replicas", "deploy_timeout", "notify_emails", "notify_webhook", "tensorboard",
             "encryption_key", "network"]  # fmt: skip

    values: dict[str, Any] = {}
    if target is not None:  # on Vertex AI, blessed models go to its Model Registry in the same region
        values.update(deploy_target="vertex", project=target.project, region=target.region)
        if target.service_account:  # the training custom job runs as the pipeline's account too
            values["service_account"] = target.service_account
    elif getattr(args, "registry_pvc", ""):
        values["registry"] = training.REGISTRY_MOUNT  # the claim's mount on evaluate and deploy
    values.update(cli_args.data_params(args))
    values.update(cli_args.params_from(args, names, _reserved(args, target, recurring)))
    board = values.get("tensorboard", "")
    if target is not None and board and "/" not in board:  # an instance's id: in the run's project and region
        values["tensorboard"] = f"projects/{target.project}/locations/{target.region}/tensorboards/{board}"
    checked = training.check(values, "vertex" if target is not None else "local")
    if target is not None:
        _check_region(target, checked)
    _check_destination(args, target, {**training.defaults("vertex" if target is not None else "local"), **checked})
    source = checked.get("source", "")
    local = [p for p in source.split(",") if p and "://" not in p]
    if local:
        if target is not None:
            target.check_reachable()  # before the upload: the run would fail anyway
        bucket = target.bucket if target is not None else args.bucket
        if not bucket:
            raise UsageError("local --data needs --bucket to upload to", "or pass gs:// paths")
        from taxifare.cloud import uploads

        checked["source"] = uploads.upload_local_data(source, bucket, project=args.project)
        print(f"data: {checked['source']}")
    return checked


def _check_destination(args: argparse.Namespace, target: Any, params: dict[str, Any]) -> None:
    """What a blessed model needs to reach Vertex AI, known before anything is uploaded or trained:
    an image Vertex AI serves from, and (from a Kubeflow host) a gs:// pipeline root to upload from."""
    if params["deploy_target"] != "vertex":
        return
    if params["serving_container"] == "custom":
        from pipeline import images

        images.check_serving(args.image)
    if target is None and not _kubeflow_root(args).startswith("gs://"):
        given = getattr(args, "pipeline_root", "")
        which = (
            f"not --pipeline-root {given}" if given else "and none is given (the cluster's default is not known here)"
        )
        raise UsageError(
            f"deploy_target=vertex from a Kubeflow host needs a gs:// pipeline root, {which}: Model Registry "
            "uploads the model from Cloud Storage",
            "give --bucket BUCKET (its gs://BUCKET/pipeline-root) or --pipeline-root gs://...",
        )


def _check_region(target: Any, params: dict[str, Any]) -> None:
    """A TensorBoard and a Cloud KMS key must be in the run's region: Vertex AI refuses them elsewhere."""
    for name in ("tensorboard", "encryption_key"):
        value = params.get(name, "")
        where = value.split("/locations/", 1)[1].split("/", 1)[0] if "/locations/" in value else ""
        if value and where != target.region:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} {value}: in {where}, not the run's region {target.region}",
                             f"give one in {target.region}")  # fmt: skip


def batch_params(args: argparse.Namespace, target: Any, recurring: bool = False) -> dict[str, Any]:
    """The batch pipeline's: --data is its input (local files uploaded first), --param the rest; on Vertex AI
    the model's copy (under the pipeline root), the input and the output must be in the run's region: checked
    before anything is uploaded or submitted."""
    from pipeline import batch, training

    values: dict[str, Any] = {}
    if target is not None:
        values.update(project=target.project, region=target.region)
        if target.service_account:  # the batch prediction job runs as the pipeline's account too
            values["service_account"] = target.service_account
    elif getattr(args, "registry_pvc", ""):
        values["registry"] = training.REGISTRY_MOUNT
    if args.data:
        values["input"] = cli_args.files("--data", args.data)
    values.update(cli_args.params_from(args, ["drift_threshold"], _reserved(args, target, recurring)))
    local = [p for p in values.get("input", "").split(",") if p and "://" not in p]
    if local and target is None:
        raise UsageError("a Kubeflow cluster cannot read local --data", "pass gs:// paths")
    staged = f"{target.pipeline_root}/uploads" if target is not None else ""
    remote = [p for p in values.get("input", "").split(",") if "://" in p]
    checked = batch.check({**values, "input": ",".join(remote + ([staged] if local else []))},
                          "vertex" if target is not None else "local")  # fmt: skip
    if target is None:
        return {**checked, "input": values.get("input", checked.get("input", ""))}
    from taxifare.batch import vertex

    target.check_reachable()
    # The job reads the run's copy of the model under the pipeline root (in its bucket, where local input goes too).
    first = (remote or [target.pipeline_root])[0]
    vertex.check_regions(target.region, {"model": target.pipeline_root, "input": first,
                                         "output": checked.get("output", "")})  # fmt: skip
    checked["input"] = values.get("input", checked.get("input", ""))
    if local:
        from taxifare.cloud import uploads

        checked["input"] = uploads.upload_local_data(checked["input"], target.bucket, project=args.project)
        print(f"data: {checked['input']}")
    return checked


def labels_from(args: argparse.Namespace) -> dict[str, str]:
    """The run's --label flags, checked by Vertex AI's rules now: before any upload or request."""
    from taxifare.cloud import names

    labels = {}
    for item in args.label:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"--label {item!r}: expected KEY=VALUE")
        labels[key] = value
    return names.labels(labels)


@contextlib.contextmanager
def compiled(args: argparse.Namespace, target: str, values: dict[str, Any] | None = None) -> Iterator[str]:
    """The pipeline compiled for this submission (`values`: its checked parameters), in a temporary file
    removed after. On Vertex AI the exit handler is always in it, with Vertex AI's email when there are
    notify_emails; on a Kubeflow host only with a notify_webhook (older backends refuse the final-status input)."""
    from pipeline import compiler

    machines = cli_args.machines_from(args)
    pvc = getattr(args, "registry_pvc", "")
    given = values or {}
    notify: dict[str, bool] = {}
    if target == "vertex" and given.get("notify_emails"):
        notify["email"] = True
    if target != "vertex" and not given.get("notify_webhook"):
        notify["webhook"] = False
    with tempfile.TemporaryDirectory(prefix="taxifare-") as folder:
        out = os.path.join(folder, "pipeline.yaml")
        which = getattr(args, "pipeline", "training")
        gpu = getattr(args, "gpu_image", "") if which == "training" else ""
        # (positionally up to gpu_image: the build options in `notify` are keywords of their own, the
        # training pipeline's: the batch pipeline has no exit handler)
        yield compiler.compile_pipeline(out, target, args.image, machines, pvc, which, gpu,
                                        **(notify if which == "training" else {}))  # fmt: skip


def service_error(err: Exception) -> str | None:
    """A readable line for the errors cloud SDKs and HTTP clients raise, or None for a bug."""
    kind, module = type(err).__name__, type(err).__module__
    if kind == "DefaultCredentialsError":
        return (
            "no Google Cloud credentials: run `gcloud auth application-default login` "
            "or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file"
        )
    if module.startswith(("google.api_core", "google.auth")):
        return f"Google Cloud refused the request: {err}"
    if module.startswith(("urllib3", "requests")) or isinstance(err, ConnectionError):
        return f"cannot reach the server: {err}"
    return None
