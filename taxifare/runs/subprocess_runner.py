"""The default runner: each task a process of this Python, forked from a warm one (zygote.py) that
imported TensorFlow, kfp and the project once for the whole run; kfp's own SubprocessRunner
starts a fresh Python per task instead (`warm=False`, and any command that is not a lightweight
component's)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from taxifare.errors import TaxifareError
from taxifare.runs import environ, kfp_tasks, watchdog, zygote
from taxifare.runs.runner import Runner


class Zygote:
    """The warm Python of one run: started at the run's start, stopped (and its children with it) at its end."""

    def __init__(self, log_path: str) -> None:
        parent, child = socket.socketpair()
        self.sock = parent
        with open(log_path, "ab") as log:  # its own output (TensorFlow's import notices): not the terminal's
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "taxifare.runs.zygote", str(child.fileno())], pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        child.close()
        self.ready = False

    def run(self, full_command: list[str], env: dict[str, str]) -> int:
        """The task's command in a child of the zygote; its output printed line by line (as kfp's runner
        prints a subprocess's), its exit status returned."""
        command = zygote.command_of(full_command)
        assert command is not None
        self.wait_ready()
        read, write = os.pipe()
        status_read, status_write = os.pipe()
        payload = json.dumps({"argv": list(command), "env": env}).encode()
        try:
            socket.send_fds(self.sock, [zygote.HEADER.pack(len(payload))], [write, status_write])
            self.sock.sendall(payload)
        finally:
            os.close(write)
            os.close(status_write)
        with os.fdopen(read, "r", errors="replace") as out:
            for line in iter(out.readline, ""):
                print(line, end="")
        print("\n")
        with os.fdopen(status_read, "rb") as status:
            said = status.read(zygote.HEADER.size)
        # Nothing said: the child died without a word (a signal, the zygote gone): a failure.
        return int(zygote.HEADER.unpack(said)[0]) if len(said) == zygote.HEADER.size else 1

    def wait_ready(self) -> None:
        """Until its imports are done (once; they overlap the run's set-up)."""
        if not self.ready:
            if self._read_line() != b"ready\n":
                raise TaxifareError("the warm Python of this run did not start", "rerun; --runner container also works")
            self.ready = True

    def _read_line(self) -> bytes:
        line = b""
        while not line.endswith(b"\n"):
            chunk = self.sock.recv(1)
            if not chunk:
                break
            line += chunk
        return line

    def stop(self) -> None:
        self.sock.close()  # the zygote's loop ends when its end closes
        watchdog.stop(self.proc, 10)


def handler_class(warm: Zygote) -> type:
    """kfp's SubprocessTaskHandler, running lightweight components' commands in the warm Python."""
    from kfp.local import status, subprocess_task_handler

    class WarmTaskHandler(subprocess_task_handler.SubprocessTaskHandler):
        def run(self) -> Any:
            if zygote.command_of(self.full_command) is None or self.runner.use_venv:
                return super().run()
            code = warm.run(self.full_command, {**os.environ, **self.env_vars})
            return status.Status.SUCCESS if code == 0 else status.Status.FAILURE

    return WarmTaskHandler


class SubprocessRunner(Runner):
    name = "subprocess"

    def __init__(self, warm: bool = True):
        self.warm = warm
        self.zygote: Zygote | None = None

    def warm_up(self, log_path: str) -> None:
        """The warm Python imports TensorFlow and the project while the run is set up (its output to `log_path`)."""
        if self.warm and self.zygote is None:
            self.zygote = Zygote(log_path)

    def ready(self) -> None:
        if self.zygote is not None:
            self.zygote.wait_ready()

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.stop()
            self.zygote = None

    @contextlib.contextmanager
    def prepared(self, run_dir: str, pipeline_root: str, params: dict[str, Any]) -> Iterator[Any]:
        """Each task's temporary folders (kfp's `mktemp -d` per task) go under <run_dir>/tmp, removed
        at the end, and so never outlive a run (a killed run's are removed by the next). The warm
        Python starts here, inside the run's watchdog: its children die with the run."""
        from kfp import local

        tmp = os.path.join(run_dir, "tmp")
        os.makedirs(tmp, exist_ok=True)
        try:
            with environ.overridden(TMPDIR=tmp), contextlib.ExitStack() as stack:
                if self.warm:
                    self.warm_up(os.path.join(run_dir, "warm.log"))
                    assert self.zygote is not None
                    stack.callback(self.close)
                    stack.enter_context(kfp_tasks.subprocess_handler(handler_class(self.zygote)))
                yield local.SubprocessRunner(use_venv=False)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
