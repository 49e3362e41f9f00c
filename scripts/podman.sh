#!/usr/bin/env bash
# podman with the settings this kind of machine needs:   scripts/podman.sh run --rm IMAGE ...
#
# crun fails on the machine's mixed cgroup v1/v2 layout, and podman's default ulimits
# (nofile 1048576) exceed what it allows, so a containers.conf says runc, cgroupfs and
# limits within the hard ones: taxifare/runs/containers.py writes it (`taxifare run --runner
# container` uses the same file). A CONTAINERS_CONF already set is kept.
set -euo pipefail

if [[ -z "${CONTAINERS_CONF:-}" ]]; then
    CONTAINERS_CONF=$(cd "$(dirname "$0")/.." && python3 -m taxifare.runs.containers podman-conf)
    if [[ ! -f "$CONTAINERS_CONF" ]]; then
        echo "podman.sh: taxifare.runs.containers wrote no containers.conf (got '$CONTAINERS_CONF')" >&2
        exit 1
    fi
    export CONTAINERS_CONF
fi
exec podman "$@"
