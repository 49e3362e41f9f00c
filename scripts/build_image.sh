#!/usr/bin/env bash
# Build the one container image every pipeline step uses, with podman and no registry.
#
#   scripts/build_image.sh [IMAGE]        IMAGE defaults to pipeline/images.py's DEFAULT_IMAGE
#   GPU=1 scripts/build_image.sh IMAGE    TensorFlow's CUDA build (labelled io.taxifare.accelerator=gpu)
#
# Without a Docker engine or a reachable container registry, the base image is made here:
# `debootstrap` lays a minimal Debian bookworm (which ships Python 3.11) and `podman import`
# turns it into localhost/taxifare-base:bookworm-py311, built once and then reused. The
# Dockerfile's default base, python:3.11-slim, is what a cloud build (docker, Cloud Build) uses.
#
# Environment:
#   BASE_IMAGE         use this base instead of the local one (e.g. python:3.11-slim where a registry is reachable)
#   CA_BUNDLE          CA certificates pip trusts inside the build, given as a build secret so they never
#                      reach an image layer (default /etc/ssl/certs/ca-certificates.crt; "" to give none)
#   DEBIAN_MIRROR      Debian mirror for debootstrap (default http://deb.debian.org/debian)
#   TAXIFARE_IMAGE_CACHE  where containers.conf and the debootstrap log go (default ~/.cache/taxifare-image)
#   CONTAINERS_CONF    kept when set; otherwise scripts/podman.sh writes one fitted to this machine
#   DRY_RUN=1          print the podman build command instead of running it
set -euo pipefail

cd "$(dirname "$0")/.."
IMAGE="${1:-${IMAGE:-$(python3 -c 'from pipeline.images import DEFAULT_IMAGE; print(DEFAULT_IMAGE)')}}"
# -r2: the root directory is 0755 (r1's came from mktemp -d, 0700: a non-root user could not
# even exec sh under Docker, Kubernetes or Vertex AI; podman hides it). A new tag rebuilds it.
LOCAL_BASE="localhost/taxifare-base:bookworm-py311-r2"
ACCELERATOR=$([[ ${GPU:-0} == 1 ]] && echo gpu || echo cpu)
CA_BUNDLE="${CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${TAXIFARE_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taxifare-image}"
podman() { scripts/podman.sh "$@"; }

log() { printf '[build_image] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

ensure_tools() {
    local missing=()
    type -P podman >/dev/null || missing+=(podman)
    type -P runc >/dev/null || missing+=(runc)
    if [[ -z "${BASE_IMAGE:-}" ]]; then type -P debootstrap >/dev/null || missing+=(debootstrap); fi
    ((${#missing[@]} == 0)) && return 0
    [[ $(id -u) == 0 ]] || die "missing ${missing[*]}: install them (sudo apt-get install ${missing[*]}) or run as root"
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A python:3.11-slim stand-in: Debian bookworm minbase, python3 (3.11) with venv, CA certificates.
build_local_base() {
    if podman image exists "$LOCAL_BASE"; then
        log "base $LOCAL_BASE exists (podman rmi it to rebuild)"
        return 0
    fi
    [[ $(id -u) == 0 ]] || die "debootstrap needs root; or set BASE_IMAGE to a base podman can pull"
    local rootfs
    rootfs=$(mktemp -d "${TMPDIR:-/tmp}/taxifare-rootfs.XXXXXX")
    chmod 0755 "$rootfs" # the image's / : mktemp makes it 0700, and tar records that
    # shellcheck disable=SC2064
    trap "rm -rf '$rootfs'" EXIT
    log "debootstrap bookworm into $rootfs (a few minutes, once)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" "$DEBIAN_MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
        die "debootstrap failed; see $CACHE/debootstrap.log"
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/tmp/*
    tar -C "$rootfs" --numeric-owner -c . |
        podman import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$LOCAL_BASE" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
    log "base $LOCAL_BASE: $(podman image inspect --format '{{.Size}}' "$LOCAL_BASE" | numfmt --to=iec) "
}

main() {
    local start=$SECONDS
    if [[ -n ${DRY_RUN:-} ]]; then
        echo podman build "$(build_args "${BASE_IMAGE:-$LOCAL_BASE}")" .
        return 0
    fi
    ensure_tools
    mkdir -p "$CACHE"
    local base="${BASE_IMAGE:-}"
    if [[ -z $base ]]; then
        build_local_base
        base=$LOCAL_BASE
    fi
    local args
    read -ra args <<<"$(build_args "$base")"
    if [[ -n $CA_BUNDLE ]]; then
        [[ -r $CA_BUNDLE ]] || die "CA_BUNDLE=$CA_BUNDLE is not readable (set CA_BUNDLE= to give none)"
        args+=(--secret "id=pip_ca,src=$CA_BUNDLE")
    fi
    log "podman build ${args[*]} ."
    podman build "${args[@]}" .
    local size
    size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
    log "built $IMAGE in $((SECONDS - start))s, $(numfmt --to=iec "$size") ($size bytes)"
}

build_args() {
    local base=$1
    local args=(--network=host --build-arg "BASE_IMAGE=$base" --build-arg "ACCELERATOR=$ACCELERATOR" -t "$IMAGE")
    if [[ $base == localhost/* ]]; then args+=(--pull=never); fi
    echo "${args[*]}"
}

main
