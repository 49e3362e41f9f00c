"""What the image is built from, checked without building it: the pinned dependency set,
the Dockerfile's contract, and the build script's arguments (the GPU variant need not build here)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parent.parent
LINUX_311 = {"sys_platform": "linux", "python_version": "3.11", "platform_system": "Linux"}


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "image.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line}"
            pins[canonicalize_name(name)] = version
    return pins


def test_the_lock_pins_everything_pyproject_asks_for():
    """A dependency added to pyproject.toml without `make lock` would be missing from the image."""
    pins = _lock()
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for text in deps:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(LINUX_311):
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements/image.lock: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} does not satisfy {req}"


def test_the_dockerfile_installs_the_lock_alone_and_has_no_entrypoint():
    text = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements/image.lock" in text
    assert "pip install --no-deps -r image.lock" in text  # nothing beyond the pins
    assert not re.search(r"^\s*ENTRYPOINT", text, re.M)
    assert 'LABEL io.taxifare.accelerator="${ACCELERATOR}"' in text
    assert "USER 10001:10001" in text
    assert "!requirements/" in (ROOT / ".dockerignore").read_text()


def _dry_run(**env: str) -> str:
    full = {**os.environ, "DRY_RUN": "1", **env}
    return subprocess.run(
        [str(ROOT / "scripts" / "build_image.sh"), "registry.example/p/taxifare:1"],
        capture_output=True, text=True, check=True, env=full,
    ).stdout  # fmt: skip


def test_make_image_builds_cpu_by_default_and_cuda_with_gpu_1():
    assert "--build-arg ACCELERATOR=cpu" in _dry_run()
    assert "--build-arg ACCELERATOR=gpu" in _dry_run(GPU="1")
    assert "-t registry.example/p/taxifare:1" in _dry_run()


def test_the_local_base_root_is_made_world_readable():
    """debootstrap's folder comes from mktemp -d (0700): non-root users could not run anything."""
    script = (ROOT / "scripts" / "build_image.sh").read_text()
    made = script.index('rootfs=$(mktemp -d "${TMPDIR:-/tmp}/taxifare-rootfs.XXXXXX")')
    assert script.index('chmod 0755 "$rootfs"') > made
    assert 'LOCAL_BASE="localhost/taxifare-base:bookworm-py311-r2"' in script
