#!/usr/bin/env bash
# Pin the image's dependency set: requirements/image.lock, every package the image installs at
# an exact version, resolved in a clean Python 3.11 venv from pyproject.toml's dependencies.
#
#   scripts/lock_image.sh            (make lock)
#
# The image installs from the lock with --no-deps, so a rebuild months later gets the same
# packages; tests/test_image_build.py fails when pyproject.toml asks for something the lock
# does not satisfy. The GPU image (make image GPU=1) installs the same lock with TensorFlow's
# CUDA build in place of tensorflow-cpu (its CUDA wheels are pinned by TensorFlow itself).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/taxifare-lock.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$tmp/venv/bin/python" -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
    >"$tmp/requirements.txt"
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check wheel -r "$tmp/requirements.txt"
{
    echo "# The image's packages, pinned: written by scripts/lock_image.sh (make lock) from pyproject.toml."
    echo "# Linux x86_64, CPython $("$tmp/venv/bin/python" -c 'import sys; print(*sys.version_info[:2], sep=".")'). Do not edit by hand."
    # --all: pip, setuptools and wheel too (astunparse needs wheel; kfp-server-api is an sdist to build).
    "$tmp/venv/bin/python" -m pip freeze --all --disable-pip-version-check --exclude-editable | LC_ALL=C sort -f
} >requirements/image.lock
echo "wrote requirements/image.lock ($(grep -vc '^#' requirements/image.lock) packages)"
