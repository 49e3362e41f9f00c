"""A foreground cron loop for the embedded setup: one local run at a time, each logged."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Callable
from zoneinfo import ZoneInfo

from taxifare.runs.cron import Cron


def run_schedule(
    cron: Cron,
    tz: ZoneInfo,
    run_once: Callable[[], str],
    lock_path: str,
    log: Callable[[str], None],
    max_runs: int | None = None,
    sleep: Callable[[float], None] | None = None,
    now: Callable[[], dt.datetime] | None = None,
) -> int:
    """Run `run_once` at each cron time; return how many runs started.

    Runs never overlap: this loop is sequential, a run that overruns its slot makes the
    missed times be skipped (logged), and a lock file keeps a second scheduler on the same
    runs root from starting a run while one is going.
    """
    import time

    sleep = sleep or time.sleep
    clock = now or (lambda: dt.datetime.now(tz))
    os.makedirs(os.path.dirname(lock_path) or ".", exist_ok=True)
    started = 0
    next_time = cron.next_after(clock())
    log(f"schedule '{cron.expression}' ({tz.key}); next run at {next_time.isoformat()}")
    while max_runs is None or started < max_runs:
        wait = (next_time - clock()).total_seconds()
        while wait > 0:
            sleep(min(wait, 30.0))
            wait = (next_time - clock()).total_seconds()
        with open(lock_path, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"{next_time.isoformat()}: another run of this runs root is going; skipped")
            else:
                started += 1
                log(f"{next_time.isoformat()}: run {started} starting")
                try:
                    status = run_once()
                except Exception as err:  # one bad run (data gone, say) must not end the schedule
                    status = f"could not run: {err}"
                log(f"{clock().isoformat()}: run {started} {status}")
        after = cron.next_after(clock())
        missed = 0
        probe = cron.next_after(next_time)
        while probe < after:
            missed += 1
            probe = cron.next_after(probe)
        if missed:
            log(f"skipped {missed} scheduled time(s) while the last run was going")
        next_time = after
        if max_runs is None or started < max_runs:
            log(f"next run at {next_time.isoformat()}")
    return started
