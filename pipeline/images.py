"""The one place the pipeline's container images are named, and what the cloud needs of one.

Two images at most: `--image`, TensorFlow's CPU build, which every step runs in and which, on
Vertex AI, serves; and `--gpu-image`, TensorFlow's CUDA build (`make image GPU=1`), for the
training step alone when it runs on GPUs, so no other step and no CPU endpoint pulls the
multi-GB CUDA image. Local runs use `localhost/taxifare:latest` (`make image`); the committed
Vertex AI spec (pipeline.yaml) names a placeholder that cannot be pulled, so `taxifare submit
--image URI` (or `taxifare compile --image URI`) must name a pushed copy, e.g. in Artifact Registry.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

from taxifare.errors import UsageError

DEFAULT_IMAGE = "localhost/taxifare:latest"
# The committed pipeline.yaml's image: Artifact Registry's form with the parts to fill in, in capitals
# (no valid image name has capitals in its path, so it can never be pulled by mistake).
PLACEHOLDER_IMAGE = "REGION-docker.pkg.dev/PROJECT/REPOSITORY/taxifare:TAG"
ACCELERATOR_LABEL = "io.taxifare.accelerator"  # the Dockerfile's LABEL: cpu or gpu
ACCELERATORS = ("cpu", "gpu")
INSPECT_TIMEOUT = 30.0  # seconds for `podman image inspect`: a hung engine is no answer
PUSH_HINT = (
    "push it to a registry the cloud can reach and pass that name, e.g. "
    "make image IMAGE=REGION-docker.pkg.dev/PROJECT/REPO/taxifare:TAG && make push IMAGE=... , then --image ..."
)


def default(target: str) -> str:
    """The image a compile target names unless told: the local build, or for vertex the placeholder."""
    return PLACEHOLDER_IMAGE if target == "vertex" else DEFAULT_IMAGE


def for_training(image: str, gpu_image: str = "") -> str:
    """The training step's image: the GPU build when there is one, else the one image every step runs in."""
    return gpu_image or image


def registry_host(image: str) -> str | None:
    """The registry an image name points at, as Docker reads names; None for a local-only name."""
    first, slash, _ = image.partition("/")
    if not slash or not ("." in first or ":" in first) or first.split(":")[0] == "localhost":
        return None
    return first


# Vertex AI serves a model version only from an image in Artifact Registry (its gcr.io hosts included).
ARTIFACT_REGISTRY = re.compile(r"^[a-z0-9-]+-docker\.pkg\.dev$")
GCR_HOSTS = ("gcr.io", "us.gcr.io", "eu.gcr.io", "asia.gcr.io")


def in_artifact_registry(image: str) -> bool:
    host = registry_host(image) or ""
    return bool(ARTIFACT_REGISTRY.match(host)) or host in GCR_HOSTS


def check_serving(image: str) -> None:
    """The image that serves on Vertex AI (serving_container=custom) must be in Artifact Registry: else
    the model upload fails after stage, train and evaluate have run (and been paid for)."""
    if not in_artifact_registry(image):
        raise UsageError(
            f"--image {image}: Vertex AI serves models only from an image in Artifact Registry "
            "(REGION-docker.pkg.dev/PROJECT/REPOSITORY/...), and serving_container=custom serves from this one",
            "push it there (make image IMAGE=REGION-docker.pkg.dev/PROJECT/REPO/taxifare:TAG && make push "
            "IMAGE=...) and pass that, or serve with Vertex AI's own container: --serving-container prebuilt",
        )


def check_pullable(image: str, where: str, flag: str = "--image") -> None:
    """`where` (Vertex AI, a Kubeflow cluster) must be able to pull the image: a registry host, no placeholder."""
    if registry_host(image) is None:
        raise UsageError(f"{flag} {image}: {where} cannot pull an image that names no registry", PUSH_HINT)
    path = image.partition("/")[2].split("@")[0].rsplit(":", 1)[0] if "/" in image else ""
    if image == PLACEHOLDER_IMAGE or path != path.lower():
        raise UsageError(
            f"{flag} {image}: a placeholder (the committed pipeline.yaml's), not an image: an image's name has no "
            "capitals",
            "pass the image you pushed, e.g. --image us-central1-docker.pkg.dev/my-proj/taxifare/taxifare:1",
        )


def accelerator(image: str) -> str | None:
    """The image's io.taxifare.accelerator label, read from podman or docker on this machine: "" if
    the image is here without a cpu or gpu one (built elsewhere), None if no engine here has the
    image (or answers sensibly: a hung or broken engine is not a verdict)."""
    for engine in ("podman", "docker"):
        if shutil.which(engine) is None:
            continue
        try:
            proc = subprocess.run(
                [engine, "image", "inspect", "--format", "{{json .Config.Labels}}", image],
                capture_output=True, text=True, timeout=INSPECT_TIMEOUT, check=False,
            )  # fmt: skip
            if proc.returncode != 0:
                continue
            labels = json.loads(proc.stdout.strip() or "null") or {}
        except (OSError, subprocess.TimeoutExpired, ValueError):
            continue
        if not isinstance(labels, dict):
            continue
        value = labels.get(ACCELERATOR_LABEL)
        return str(value) if value in ACCELERATORS else ""  # here, but nothing says what it holds
    return None


def check_accelerators(image: str, accelerator_type: str, declared: str = "") -> None:
    """GPUs are paid for by the hour: only with an image that has TensorFlow's CUDA build.

    The label of the image on this machine decides; `declared` (--image-accelerator) speaks for an
    image that is not here (built and pushed by CI), and is refused when the local label disagrees.
    """
    if declared and declared not in ACCELERATORS:
        raise UsageError(f"--image-accelerator {declared!r}: expected one of {', '.join(ACCELERATORS)}")
    if not accelerator_type:
        return
    found = accelerator(image)
    if found and declared and found != declared:
        raise UsageError(
            f"--image-accelerator {declared}, but {image} on this machine is labelled {ACCELERATOR_LABEL}={found}",
            "pass the image that was built for it, or leave out --image-accelerator",
        )
    if (found or declared) == "gpu":
        return
    if found == "cpu" or declared == "cpu":
        what, extra = "is a CPU-only image", ""
    else:
        if found == "":
            what = f"is here without a cpu or gpu {ACCELERATOR_LABEL} label (not built by make image)"
        else:
            what = "cannot be checked here (neither podman nor docker on this machine has it)"
        extra = "; if it was built with TensorFlow's CUDA build, say so with --image-accelerator gpu"
    raise UsageError(
        f"--accelerator-type {accelerator_type} with --image {image}, which {what}: the GPUs would be paid for "
        "and unused",
        "build the GPU image (make image GPU=1 IMAGE=...-gpu && make push IMAGE=...-gpu) and pass it, "
        f"or leave out --accelerator-type{extra}",
    )
