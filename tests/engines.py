"""A real Docker engine for the image tests: Debian's dockerd on a private socket, started and stopped here.

No bridge and no iptables (nothing changes the host's network), its own data and exec roots
under a short /tmp folder (unix socket paths are limited to 108 bytes), overlay2 where the
kernel allows it, vfs otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

from taxifare.runs import watchdog


@contextlib.contextmanager
def dockerd(timeout: float = 60) -> Iterator[str]:
    root = tempfile.mkdtemp(prefix="tfd-", dir="/tmp")
    sock, exec_root = os.path.join(root, "docker.sock"), os.path.join(root, "exec")
    log = open(os.path.join(root, "dockerd.log"), "w")  # noqa: SIM115 - closed below
    proc = None
    try:
        for driver in ("overlay2", "vfs"):
            proc = subprocess.Popen(
                ["dockerd", "--host", f"unix://{sock}", "--data-root", os.path.join(root, "data"),
                 "--exec-root", exec_root, "--pidfile", os.path.join(root, "docker.pid"), "--iptables=false",
                 "--ip6tables=false", "--bridge=none", f"--storage-driver={driver}"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            if _answers(sock, proc, timeout):
                break
            proc.kill()
            proc.wait()
        else:
            log.flush()
            with open(log.name) as f:
                raise RuntimeError(f"dockerd did not start:\n{f.read()[-3000:]}")
        yield f"unix://{sock}"
    finally:
        if proc is not None:
            watchdog.stop(proc, 30)
        subprocess.run(["umount", os.path.join(exec_root, "netns", "default")], capture_output=True, check=False)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _answers(sock: str, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if (
            subprocess.run(["docker", "-H", f"unix://{sock}", "version"], capture_output=True, check=False).returncode
            == 0
        ):
            return True
        time.sleep(0.2)
    return False
