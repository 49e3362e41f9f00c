"""Processes of a local run end with it: a watchdog kills them once the run's process is gone.

kfp's local runner starts each task as a process of its own; killed with SIGKILL, `taxifare
run` would leave them running (a deploy task would still register and promote a model with no
run record). So a run marks its environment with TOKEN_VAR=<token>, which every task process
inherits, and starts `python -m taxifare.runs.watchdog` holding the read end of a pipe. When the
pipe closes (the run ended, or was killed however) the watchdog kills, with SIGKILL, every
process whose environment carries the token, until none is left. Linux (/proc) only; elsewhere
the run goes on without one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

TOKEN_VAR = "TAXIFARE_RUN_TOKEN"
SWEEPS = 50  # rounds of killing: a task may start a process while the first round runs


def processes_with(token: str) -> list[int]:
    """Pids of this user's processes whose environment holds TOKEN_VAR=token (not this one)."""
    marker = f"{TOKEN_VAR}={token}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    found.append(int(name))
        except OSError:  # gone, or not ours
            continue
    return found


def sweep(token: str) -> int:
    """Kill every process carrying the token, round after round until none is left; how many were killed."""
    killed = 0
    for _ in range(SWEEPS):
        pids = processes_with(token)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        time.sleep(0.02)
    return killed


def stop(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM, then SIGKILL if it has not ended within `grace` seconds; reaped either way."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def new_token() -> str:
    return secrets.token_hex(8)


@contextlib.contextmanager
def guarded(token: str) -> Iterator[None]:
    """Within this block, processes started from here carry `token`; they are killed when it ends or we die."""
    if not os.path.isdir("/proc/self"):
        yield
        return
    read, write = os.pipe()
    env = {k: v for k, v in os.environ.items() if k != TOKEN_VAR}
    dog = subprocess.Popen(
        [sys.executable, "-m", "taxifare.runs.watchdog", token],
        stdin=read,
        env=env,
        close_fds=True,
        start_new_session=True,  # not in the terminal's process group: Ctrl-C there does not stop it
    )
    os.close(read)
    before = os.environ.get(TOKEN_VAR)
    os.environ[TOKEN_VAR] = token
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(TOKEN_VAR, None)
        else:
            os.environ[TOKEN_VAR] = before
        os.close(write)  # the watchdog sweeps and exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            dog.wait(timeout=30)


def main(argv: list[str]) -> int:
    token = argv[0]
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # whatever stops the run, this must outlive it to clean up
    while os.read(0, 4096):  # returns b"" once every writer is gone
        pass
    sweep(token)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
