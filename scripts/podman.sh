#!/usr/bin/env bash
# podman with the settings this kind of machine needs:   scripts/podman.sh run --rm IMAGE ...
#
# crun fails on the machine's mixed cgroup v1/v2 layout, and podman's default ulimits
# (nofile 1048576) exceed what it allows, so a containers.conf says runc, cgroupfs and
# limits within the hard ones. A CONTAINERS_CONF already set is kept.
set -euo pipefail

if [[ -z "${CONTAINERS_CONF:-}" ]]; then
    conf_dir="${TAXIFARE_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taxifare-image}"
    mkdir -p "$conf_dir"
    nofile=$(ulimit -Hn)
    [[ $nofile == unlimited ]] && nofile=1048576
    nproc=$(ulimit -Hu)
    if [[ $nproc == unlimited ]] || ((nproc > 32768)); then nproc=32768; fi
    conf="# written by scripts/podman.sh for this machine
[containers]
default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\"
"
    # Rewrite only when it changed, so concurrent callers never read half a file.
    if [[ ! -f "$conf_dir/containers.conf" ]] || [[ "$(cat "$conf_dir/containers.conf")" != "${conf%$'\n'}" ]]; then
        tmp=$(mktemp "$conf_dir/containers.conf.XXXXXX")
        printf '%s' "$conf" >"$tmp"
        mv -f "$tmp" "$conf_dir/containers.conf"
    fi
    export CONTAINERS_CONF="$conf_dir/containers.conf"
fi
exec podman "$@"
