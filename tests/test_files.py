"""taxifare/files.py: what a file names as its owner's pid is untrusted input."""

import os
import subprocess
import sys

from taxifare.files import pid_alive


def test_a_pid_read_from_a_file_is_alive_only_if_that_process_runs():
    assert pid_alive(os.getpid())
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not pid_alive(int(done.stdout))  # exited and reaped
    # 0 and negative pids name process groups (os.kill would reach them); huge ones overflow: no process.
    for hostile in (0, -1, -os.getpgrp(), 2**31, 2**70):
        assert not pid_alive(hostile)
