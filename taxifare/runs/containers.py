"""Local runs with every step in the project image: a container engine and kfp's DockerRunner.

`taxifare run --runner container` runs each compiled task's own command in the image, as the
image's non-root user, with its outputs in the pipeline root: what Kubeflow and Vertex AI do
with the same image. The engine is the Docker engine when one answers (DOCKER_HOST, or
/var/run/docker.sock); otherwise podman's Docker-compatible API, started on a private socket
for the run and stopped after it. No engine: one UsageError saying how to get one.

kfp 2.17's DockerRunner is used with its container start replaced (`run_docker_container`,
below): the stock one auto-removes containers and then asks for their exit status, which
podman answers with a 500 (the run dies) and dockerd with a 404 that kfp counts as success (a
failed task passes); and it hands the task's command to Docker as CMD, which an image
ENTRYPOINT would swallow, where Kubernetes' `command` replaces the ENTRYPOINT.

`podman_conf` writes the containers.conf podman needs on this kind of machine; scripts/podman.sh
uses it too (`python3 -m taxifare.runs.containers podman-conf`). Standard library only at import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from taxifare.errors import UsageError
from taxifare.runs import environ, watchdog

IMAGE_UID = 10001  # the Dockerfile's USER
DOCKER_SOCKET = "/var/run/docker.sock"


def podman_conf(cache_dir: str | None = None) -> str:
    """A containers.conf fitted to this machine (runc, cgroupfs, ulimits within the hard limits); its path.

    crun fails on mixed cgroup v1/v2 hosts and podman's default nofile (1048576) can exceed
    the hard limit, which makes every `podman run` fail. Rewritten only when it changes.
    """
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    cache = cache_dir or os.environ.get("TAXIFARE_IMAGE_CACHE") or os.path.join(xdg, "taxifare-image")
    os.makedirs(cache, exist_ok=True)
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nofile = 1048576 if nofile == resource.RLIM_INFINITY else nofile
    nproc = 32768 if nproc == resource.RLIM_INFINITY or nproc > 32768 else nproc
    conf = (
        "# written by taxifare/runs/containers.py for this machine\n[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n\n'
        '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
    )
    path = os.path.join(cache, "containers.conf")
    try:
        with open(path) as f:
            if f.read() == conf:
                return path
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=cache, prefix="containers.conf.")
    with os.fdopen(fd, "w") as f:
        f.write(conf)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)  # concurrent readers never see half a file
    return path


@dataclasses.dataclass(frozen=True)
class Engine:
    host: str  # DOCKER_HOST for the docker SDK
    kind: str  # docker | podman


def _answers(host: str) -> bool:
    """A Docker API on this unix socket answers GET /_ping with 200 (TCP hosts: left to the SDK)."""
    if not host.startswith("unix://"):
        return True
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(host.removeprefix("unix://"))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: engine\r\n\r\n")
            return s.recv(64).split(b" ")[1:2] == [b"200"]
    except (OSError, IndexError):
        return False


@contextlib.contextmanager
def engine() -> Iterator[Engine]:
    """The Docker engine that answers, else podman's API on a private socket for as long as this lasts."""
    given = os.environ.get("DOCKER_HOST")
    if given:
        yield Engine(given, "docker")
        return
    if os.path.exists(DOCKER_SOCKET) and _answers(f"unix://{DOCKER_SOCKET}"):
        yield Engine(f"unix://{DOCKER_SOCKET}", "docker")
        return
    podman = shutil.which("podman")
    if podman is None:
        raise UsageError(
            "--runner container needs a container engine, and none answers here",
            "start Docker (or set DOCKER_HOST), or install podman: sudo apt-get install podman runc",
        )
    with _podman_service(podman) as host:
        yield Engine(host, "podman")


@contextlib.contextmanager
def _podman_service(podman: str) -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="taxifare-podman-")
    sock = os.path.join(folder, "podman.sock")
    env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF") or podman_conf()}
    log = open(os.path.join(folder, "service.log"), "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [podman, "system", "service", "--time=0", f"unix://{sock}"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        # Ctrl-C reaches the run, which then stops the service itself; if the run dies instead,
        # the run's watchdog kills the service (it carries the run's token in its environment).
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (os.path.exists(sock) and _answers(f"unix://{sock}")):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                with open(log.name) as f:
                    reason = f.read().strip().splitlines()[-1:] or ["no output"]
                raise UsageError(f"podman's Docker API did not start ({reason[0]})", "check `podman info`")
            time.sleep(0.05)
        yield f"unix://{sock}"
    finally:
        watchdog.stop(proc, 15)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def check_image(image: str, eng: Engine) -> None:
    """The image must be in the engine already: a local image is never pulled."""
    import docker

    try:
        client = docker.DockerClient(base_url=eng.host)
    except docker.errors.DockerException as err:  # the SDK asks the engine's version on connecting
        raise UsageError(f"the {eng.kind} engine at {eng.host} does not answer ({err})",
                         "start it, or unset DOCKER_HOST to use podman") from None  # fmt: skip
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        how = "make image" if eng.kind == "podman" else f"docker build -t {image} ."
        raise UsageError(f"image {image} is not in the {eng.kind} engine at {eng.host}", f"build it: {how}") from None
    finally:
        client.close()


def run_docker_container(client: Any, image: str, command: list[str], volumes: dict[str, Any], **run_args: Any) -> int:
    """kfp's container start, fixed (see the module docstring): create, start, follow, wait, then remove.

    The command runs as Kubernetes runs a pod's `command`: its first word replaces the image's
    ENTRYPOINT, the rest are the arguments.
    """
    import docker

    run_args.pop("auto_remove", None)
    run_args.pop("remove", None)
    entrypoint, args = command[:1], command[1:]
    container = client.containers.create(image=image, entrypoint=entrypoint, command=args, volumes=volumes, **run_args)
    try:
        container.start()
        for chunk in container.logs(stream=True, follow=True):
            sys.stdout.write(chunk.decode(errors="replace"))
        return int(container.wait()["StatusCode"])
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)


def prepare(pipeline_root: str, registry: str, eng: Engine, image: str) -> list[Any]:
    """Make the run's folders usable by the image's user; return the extra mount (the registry).

    The pipeline root is kfp's own mount (made writable for uid 10001, sticky, for this run only);
    the registry is mounted read-write at its own path. A registry the image's user cannot write
    (a new one, or one the subprocess runner made) is shared, never opened to every user: it goes
    to uid 10001 and the user's group, group-writable (`share_registry`).
    """
    import docker

    os.makedirs(pipeline_root, exist_ok=True)
    os.chmod(pipeline_root, 0o1777)
    os.makedirs(registry, exist_ok=True)
    if not _writable_by_image_user(registry):
        share_registry(eng, image, registry)
    return [docker.types.Mount(target=registry, source=registry, type="bind", read_only=False)]


# Run as root inside the engine: the registry and all in it to uid 10001 and the user's group, folders
# group-writable and setgid (what either makes joins the group), files group-writable.
_SHARE = """
chown -R "$2" "$1" && find "$1" -type d -exec chmod g+rwxs {} + && find "$1" -type f -exec chmod g+rw {} +
"""


def share_registry(eng: Engine, image: str, registry: str) -> None:
    """The registry writable by the image's user (its owner) and the user who runs us (its group), not by others."""
    import docker

    _, gid = host_owner(eng)
    client = docker.DockerClient(base_url=eng.host)
    try:
        mount = docker.types.Mount(target=registry, source=registry, type="bind")
        client.containers.run(image, entrypoint=["sh", "-c", _SHARE, "share", registry, f"{IMAGE_UID}:{gid}"],
                              user="0", mounts=[mount], network_mode="none", remove=True)  # fmt: skip
    except docker.errors.DockerException as err:
        raise UsageError(
            f"--runner container runs every step as the image's user (uid {IMAGE_UID}), which cannot write "
            f"the registry {registry}, and handing it over failed ({err})",
            f"sudo chown -R {IMAGE_UID}:$(id -g) {registry} && sudo chmod -R g+rwX {registry}, or give --registry "
            "a new folder",
        ) from None
    finally:
        client.close()


def stage_inputs(spec: str, folder: str) -> str:
    """Local input files linked (or copied) into `folder` under the pipeline root; the new comma-list.

    The image's user must read them, and the folders they come from may not let it in (a home
    directory, pytest's 0700 temp dirs); the pipeline root is mounted and readable. Hard links
    cost nothing on the same file system; each file keeps its name (rows without a key column
    are keyed by file name), in a folder of its own so that names never clash.
    """
    out = []
    for i, path in enumerate(p for p in spec.split(",") if p):
        if "://" in path:
            out.append(path)
            continue
        target = os.path.join(folder, str(i), os.path.basename(path))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        # A hard link shares the file's mode: link only what others may already read, and copy the
        # rest (chmod on a link would open the user's own file to everyone).
        if not (os.stat(path).st_mode & 0o004 and _linked(path, target)):
            shutil.copyfile(path, target)
            os.chmod(target, 0o644)
        out.append(target)
    return ",".join(out)


def _linked(path: str, target: str) -> bool:
    try:
        os.link(path, target)
        return True
    except OSError:  # another file system, or links not allowed
        return False


def _writable_by_image_user(path: str) -> bool:
    st = os.stat(path)
    return bool(st.st_mode & 0o002) or st.st_uid == IMAGE_UID


@contextlib.contextmanager
def docker_runner(image: str, pipeline_root: str, registry: str) -> Iterator[Any]:
    """kfp's DockerRunner on an engine (started here if need be), with the fixed container start."""
    from kfp import local
    from kfp.local import docker_task_handler

    with engine() as eng:
        check_image(image, eng)
        mounts = prepare(pipeline_root, registry, eng, image)
        # A module attribute that DockerTaskHandler.run looks up at call time: no installed file changes.
        original = docker_task_handler.run_docker_container
        docker_task_handler.run_docker_container = run_docker_container
        try:
            with environ.overridden(DOCKER_HOST=eng.host):  # kfp's handler calls docker.from_env()
                yield local.DockerRunner(mounts=mounts, network_mode="host")
        finally:
            docker_task_handler.run_docker_container = original
            if os.getuid() != 0:  # root can remove anything; anyone else gets their files back
                hand_back(eng, image, pipeline_root, registry)


def host_owner(eng: Engine) -> tuple[int, int]:
    """The uid:gid, inside the engine's containers, that is this host user: root for a rootless
    engine (its uid 0 is the user who runs it), the user's own ids for a rootful one."""
    import docker

    client = docker.DockerClient(base_url=eng.host)
    try:
        options = client.info().get("SecurityOptions") or []
    finally:
        client.close()
    if any("rootless" in str(o) for o in options):
        return 0, 0
    return os.getuid(), os.getgid()


# Run as root inside the engine, the one user there who may change any file on the mounts.
# The run's own folder changes hands. The registry is shared by the runs to come, which write as
# uid 10001 again: its files keep their owner, and what 10001 made joins the user's group
# instead (its folders group-writable and setgid, for adding and deleting versions; the lock,
# which every deploy opens for writing), never opened to every user of the machine.
# Arguments: run folder, registry, user:group, the image's uid. Each step is tried; the status
# says whether all went through.
_HAND_BACK = """
rc=0
if [ -d "$1" ]; then find "$1" -uid "$4" -exec chown -h "$3" {} + || rc=1; fi
if [ -d "$2" ]; then
    group=${3#*:}
    find "$2" -uid "$4" -type d -exec chgrp "$group" {} + -exec chmod g+rwxs {} + || rc=1
    find "$2" -uid "$4" -type f -name .lock -exec chgrp "$group" {} + -exec chmod g+rw {} + || rc=1
fi
exit $rc
"""


def hand_back(eng: Engine, image: str, pipeline_root: str, registry: str, owner: tuple[int, int] | None = None) -> None:
    """What the image's user wrote, usable again by the user who ran `taxifare run` (`owner`, by
    default the host user as the engine sees it); a failure here is a warning, never the run's outcome.

    Files a step writes belong to uid 10001 (or, rootless, to one of the user's sub-uids), which
    the user could then neither delete (`rm -rf runs/`) nor replace.
    """
    import docker
    import requests

    try:
        uid, gid = owner or host_owner(eng)
        mounts = [docker.types.Mount(target=p, source=p, type="bind") for p in (pipeline_root, registry)
                  if os.path.isdir(p)]  # fmt: skip
        script = ["sh", "-c", _HAND_BACK, "hand-back", pipeline_root, registry, f"{uid}:{gid}", str(IMAGE_UID)]
        client = docker.DockerClient(base_url=eng.host)
        try:
            client.containers.run(
                image,
                entrypoint=script,
                user="0",
                mounts=mounts,
                network_mode="none",
                remove=True,
            )
        finally:
            client.close()
    # An engine gone or refusing (its API, its socket, the connection): say how to fix ownership.
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as err:
        run, reg = shlex.quote(pipeline_root), shlex.quote(registry)
        print(f"warning: could not give {pipeline_root} and {registry} back to you: {err}; fix: "
              f"sudo chown -R $(id -u) {run} && sudo chgrp -R $(id -g) {reg} && sudo chmod -R g+rwX {reg}",
              file=sys.stderr)  # fmt: skip


if __name__ == "__main__":  # scripts/podman.sh: `python3 -m taxifare.runs.containers podman-conf`
    if sys.argv[1:] != ["podman-conf"]:
        sys.exit("usage: python3 -m taxifare.runs.containers podman-conf")
    print(podman_conf())
