"""A warm Python for a local run's tasks: it imports TensorFlow, kfp and the project once, then forks
a child per task, which runs the task's own command in-process (kfp's executor on the component).

Every task of a subprocess run used to start a new Python and import TensorFlow again (seconds
each: most of a local run's overhead over the bare trainer). Importing TensorFlow does not start
its runtime (that happens at the first op, in the child), so a fork after the import is safe:
tests/test_runs_warm.py runs every step this way, and the whole pipeline suite goes through it.

Protocol, over the socket whose fd it is given (`python -m taxifare.runs.zygote FD`): the zygote sends
b"ready\\n" once its first imports are done; then per task the parent sends an 8-byte length with
the write ends of two pipes attached (the task's output, and its exit status), then that many
bytes of JSON {"argv", "env"}. The child writes its 8-byte exit status itself as it ends, so the
parent learns it at once, while the zygote may still be importing the next stage. Standard library only
until `preload`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import sys
import traceback

HEADER = struct.Struct("!q")
# In stages: the first (TensorFlow with it) while the run is set up, before any task starts, so each
# task's time is its own work (a first stage without TensorFlow made the run no shorter: the import
# then held up the second task instead); each later stage while the task before runs.
PRELOAD: tuple[tuple[str, ...], ...] = (
    ("kfp.dsl.executor_main", "pyarrow.csv", "taxifare.staging", "tensorflow", "keras", "trainer.train",
     "trainer.predict"),
    ("matplotlib.pyplot", "trainer.servable", "taxifare.evaluation.gate", "taxifare.deployment",
     "taxifare.report.evaluation", "taxifare.report.plots", "taxifare.serving.server"),
)  # fmt: skip


def command_of(full_command: list[str]) -> tuple[str, list[str]] | None:
    """(component source, executor arguments) of a lightweight component's command, as kfp compiles it
    (`sh -ec '<write $0 to ephemeral_component.py; python3 -m kfp.dsl.executor_main ...>' SOURCE ARGS...`),
    or None for any other command (the caller runs those as kfp does)."""
    if len(full_command) < 4 or full_command[0] != "sh" or full_command[1] not in ("-c", "-ec"):
        return None
    script = full_command[2]
    if "kfp.dsl.executor_main" not in script or "ephemeral_component.py" not in script or "pip install" in script:
        return None
    return full_command[3], full_command[4:]


def preload(names: tuple[str, ...]) -> None:
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except Exception as err:  # a task that needs it will fail on its own, with its own traceback
            print(f"zygote: could not preload {name}: {err}", file=sys.stderr, flush=True)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def run_task(source: str, args: list[str]) -> int:
    """In the forked child: what the compiled command's shell script does, without a new Python."""
    import tempfile

    from kfp.dsl import executor_main

    tempfile.tempdir = None  # TMPDIR may differ from the zygote's
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "ephemeral_component.py")
    with open(path, "w") as f:
        f.write(source)
    sys.argv = ["kfp.dsl.executor_main", "--component_module_path", path, *args]
    try:
        executor_main.executor_main()
        return 0
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException:
        traceback.print_exc()
        return 1


def _child(out_fd: int, status_fd: int, request: dict) -> None:
    """The forked task: its output to the pipe, its environment as the parent gave it, its exit status
    to the status pipe; never returns."""
    code = 1
    try:
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        os.environ.clear()
        os.environ.update(request["env"])
        source, args = request["argv"]
        code = run_task(source, args)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed pipe: nobody to tell
                stream.flush()
        try:
            os.write(status_fd, HEADER.pack(code))
        finally:
            os._exit(code)


def serve(sock: socket.socket, later: list[tuple[str, ...]]) -> None:
    """Fork a child per task; import the next stage of `later` while it runs (a child forked before a
    stage is in imports what it needs itself)."""
    sock.sendall(b"ready\n")
    while True:
        try:
            header, fds, _, _ = socket.recv_fds(sock, HEADER.size, 2)
        except OSError:
            return
        if len(header) < HEADER.size or len(fds) != 2:
            return  # the run closed its end: done
        (size,) = HEADER.unpack(header)
        request = json.loads(_recv_exact(sock, size))
        pid = os.fork()
        if pid == 0:
            sock.close()
            _child(fds[0], fds[1], request)
        for fd in fds:
            os.close(fd)
        if later:
            preload(later.pop(0))
        os.waitpid(pid, 0)


def main() -> int:
    sock = socket.socket(fileno=int(sys.argv[1]))
    os.environ["_KFP_RUNTIME"] = "true"  # as the compiled command sets it: kfp imports its runtime path
    os.environ.setdefault("MPLBACKEND", "Agg")
    preload(PRELOAD[0])
    serve(sock, list(PRELOAD[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
