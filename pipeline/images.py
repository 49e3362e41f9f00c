"""The one place the pipeline's container image is named, and what the cloud needs of one.

Every step runs in this image (built by `make image`) and, on Vertex AI, serves from it;
`taxifare compile/submit --image URI` overrides it for a pushed copy, e.g. in Artifact Registry.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from taxifare.errors import UsageError

DEFAULT_IMAGE = "localhost/taxifare:latest"
ACCELERATOR_LABEL = "io.taxifare.accelerator"  # the Dockerfile's LABEL: cpu or gpu
PUSH_HINT = (
    "push it to a registry the cloud can reach and pass that name, e.g. "
    "make image IMAGE=REGION-docker.pkg.dev/PROJECT/REPO/taxifare:TAG && make push IMAGE=... , then --image ..."
)


def registry_host(image: str) -> str | None:
    """The registry an image name points at, as Docker reads names; None for a local-only name."""
    first, slash, _ = image.partition("/")
    if not slash or not ("." in first or ":" in first) or first.split(":")[0] == "localhost":
        return None
    return first


def check_pullable(image: str, where: str) -> None:
    """`where` (Vertex AI, a Kubeflow cluster) must be able to pull the image: it needs a registry host."""
    if registry_host(image) is None:
        raise UsageError(f"--image {image}: {where} cannot pull an image that names no registry", PUSH_HINT)


def accelerator(image: str) -> str | None:
    """The image's io.taxifare.accelerator label, read from podman or docker on this machine; None if unknown."""
    for engine in ("podman", "docker"):
        if shutil.which(engine) is None:
            continue
        proc = subprocess.run(
            [engine, "image", "inspect", "--format", "{{json .Config.Labels}}", image],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if proc.returncode == 0:
            labels = json.loads(proc.stdout.strip() or "null") or {}
            return labels.get(ACCELERATOR_LABEL)
    return None


def check_accelerators(image: str, accelerator_type: str) -> None:
    """GPUs are paid for by the hour: only with an image that has TensorFlow's CUDA build."""
    if not accelerator_type:
        return
    found = accelerator(image)
    if found == "gpu":
        return
    what = "is a CPU-only image" if found == "cpu" else "cannot be checked here (no podman or docker has it)"
    raise UsageError(
        f"--accelerator-type {accelerator_type} with --image {image}, which {what}: the GPUs would be paid for "
        "and unused",
        "build the GPU image (make image GPU=1 IMAGE=...-gpu && make push IMAGE=...-gpu) and pass it, "
        "or leave out --accelerator-type",
    )
