"""Files that are untrusted input (run records, registry files): read only if they are regular files
of sane size, without blocking on a pipe or device and without following a link; and whether the
process such a file names as its owner (a lock, a study) still runs."""

from __future__ import annotations

import os
import stat

from taxifare.errors import TaxifareError


def read_regular(path: str, limit: int, error: type[TaxifareError], fix: str) -> bytes:
    """A regular file's bytes, up to `limit`; `error(message, fix)` naming the file otherwise.
    FileNotFoundError passes through (a missing file often means "none yet")."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError as err:
        why = "is a link, which is not followed" if err.errno == 40 else f"cannot be read ({err.strerror})"
        raise error(f"{path} {why}", fix) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise error(f"{path} is not a regular file", fix)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise error(f"{path} is over {limit:,} bytes: not a file taxifare wrote", fix)
    return data


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (another user's counts: signalling it is refused, not missing). A pid
    read from a file may be anything: 0 or below (a process group, to kill) or too large is no process."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:
        return True
    return True
